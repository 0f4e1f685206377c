"""The frozen rates' Jacobian at the substrate pairs, and the drift's Jacobian from it (sysid.stage1.drift_jacobian):
the pairs hold every derivative that is not zero, and the sparse product is S @ (dv/dc)."""

import numpy as np
import torch

from sysid.config import Config
from sysid.phase1.from_truth import model_from_truth
from sysid.simulation import simulate
from sysid.stage1.drift_jacobian import DriftJacobian
from sysid.stage1.shooting import rates_and_jacobian, rates_and_pair_jacobian, substrate_colouring, substrate_pairs

REGIME = {"n_metabolites": 12, "n_reactions": 30, "n_frames": 40, "seed": 2}


def _case():
    cfg = Config().replace("simulation", **REGIME)
    sim = simulate(cfg.simulation)
    model = model_from_truth(sim.network, sim.truth.log_k, cfg.graph_model, log_k_noise=0.1, seed=1,
                             concentrations=sim.concentrations)
    return sim, model, sim.concentrations[::8].astype(np.float64)


def test_the_pairs_hold_every_derivative_of_the_rates():
    """The derivatives at the pairs are the frozen rates' whole Jacobian (autograd) there, and it is zero
    elsewhere."""
    sim, model, x = _case()
    colour = substrate_colouring(sim.network.substrates)
    rxn, met = substrate_pairs(model)
    v, at_pairs, _ = rates_and_pair_jacobian(model, x, colour, (rxn, met))
    whole = torch.func.vmap(torch.func.jacrev(lambda c: model.rates(c)))(torch.as_tensor(x, dtype=model.dtype))
    whole = whole.double().numpy()  # (B, J, M)
    np.testing.assert_allclose(at_pairs, whole[:, rxn, met], rtol=1e-4, atol=1e-6 * np.abs(whole).max())
    outside = np.ones(whole.shape[1:], bool)
    outside[rxn, met] = False
    assert np.abs(whole[:, outside]).max() <= 1e-6 * np.abs(whole).max()
    v_dense, dense, _ = rates_and_jacobian(model, x, colour)
    np.testing.assert_array_equal(v_dense, v)
    np.testing.assert_array_equal(dense[:, rxn, met], at_pairs)
    assert not dense[:, outside].any()


def test_the_drift_jacobian_is_the_stoichiometry_times_the_rates_jacobian():
    sim, model, x = _case()
    S = sim.network.S.astype(np.float64)
    rxn, met = substrate_pairs(model)
    at_pairs = np.random.default_rng(0).standard_normal((len(x), len(rxn)))
    dense = np.zeros((len(x), S.shape[1], S.shape[0]))
    dense[:, rxn, met] = at_pairs
    np.testing.assert_allclose(DriftJacobian(S, rxn, met)(at_pairs), S @ dense, rtol=1e-13, atol=1e-13)
