"""The model from the truth stays finite when the data hold clamped zeros (noisy records)."""

import numpy as np
import torch

from sysid.config import Config
from sysid.phase1.from_truth import model_from_truth
from sysid.simulation import simulate


def test_clamped_zeros_give_a_finite_mass_action_model():
    cfg = Config().replace("simulation", n_metabolites=12, n_reactions=16, n_frames=300)
    sim = simulate(cfg.simulation)
    assert (sim.network.substrates == 2).any()  # the fitted correction for |s| = 2 is exercised
    conc = sim.concentrations.copy()
    conc[: len(conc) // 10] = 0.0  # 10% clamped zeros: the 1% quantile is 0
    model = model_from_truth(sim.network, sim.truth.log_k, cfg.graph_model, log_k_noise=0.0, seed=0,
                             concentrations=conc)
    with torch.no_grad():
        rates = model.rates(torch.as_tensor(sim.concentrations)).double().numpy()
    assert np.all(np.isfinite(rates))
    c = sim.concentrations.astype(np.float64)
    truth = 10.0 ** sim.truth.log_k.astype(np.float64) * np.prod(c[:, :, None] ** sim.network.substrates[None], axis=1)
    big = truth > 1e-3 * truth.max()
    assert np.median(np.abs(rates - truth)[big] / truth[big]) < 0.05
