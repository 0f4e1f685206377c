"""The model from the truth gives every stoichiometric coefficient its own mass-action law, switched exactly."""

import numpy as np
import torch

from sysid.config import Config
from sysid.network import Network
from sysid.phase1.from_truth import build_mass_action, message_scale, model_from_truth

# one substrate per reaction with coefficients as in genome-scale models (fractional, integer powers); the
# last reaction has 20 substrates, like salmonella's lumped peptide step
COEFFICIENTS = [1.0, 0.0172, 0.0879, 0.0874, 0.25, 0.5, 0.7484, 1.499, 1.5, 2.0, 3.0]
N_MET = 24


def _network() -> Network:
    n_rxn = len(COEFFICIENTS) + 1
    substrates = np.zeros((N_MET, n_rxn))
    for j, s in enumerate(COEFFICIENTS):
        substrates[j, j] = s
    substrates[3 : 3 + 20, -1] = np.resize(COEFFICIENTS[1:7], 20)  # order 5.6, as the peptide step
    S = -substrates.copy()
    S[-1, :] = 1.0  # every reaction makes the last metabolite, which is no substrate
    return Network(S=S, substrates=substrates)


def _model(conc: np.ndarray, log_k_noise: float = 0.0):
    network = _network()
    log_k = np.full(network.n_reactions, -1.0)
    return network, model_from_truth(network, log_k, Config().graph_model, log_k_noise=log_k_noise, seed=0,
                                     concentrations=conc)


def _messages(mlp, c: np.ndarray, s: float) -> np.ndarray:
    inputs = torch.as_tensor(np.stack([c, np.full_like(c, s)], 1), dtype=torch.float32)
    with torch.no_grad():
        return mlp(inputs).squeeze(1).double().numpy()


def test_every_coefficient_follows_its_own_power_of_c():
    conc = np.random.default_rng(0).uniform(0.5, 8.0, (400, N_MET))
    network, model = _model(conc)
    scale = message_scale(network.substrates, conc)
    c = np.linspace(0.6, 7.9, 500)
    for s in COEFFICIENTS:
        rel = np.abs(_messages(model.substrate_func, c, s) / (scale * c**s) - 1.0)
        # |s| = 3 spans 2000x over the range: at its low end the float32 rounding of the correction
        # (~1e-6 of its largest value) is ~1% of the message
        assert np.median(rel) < 2e-3 and rel.max() < (0.05 if s > 2 else 0.01), (s, rel.max())


def test_the_linear_law_is_untouched_by_the_corrections():
    conc = np.random.default_rng(1).uniform(0.5, 8.0, (400, N_MET))
    network, model = _model(conc)
    plain = type(model.substrate_func)(*[type(m)(m.in_features, m.out_features) if isinstance(m, torch.nn.Linear)
                                         else m for m in model.substrate_func])
    build_mass_action(plain, float(conc.max()), scale=message_scale(network.substrates, conc))  # no corrections at all
    c = np.linspace(0.0, 20.0, 300)  # beyond the data too
    np.testing.assert_array_equal(_messages(model.substrate_func, c, 1.0), _messages(plain, c, 1.0))


def test_a_reaction_of_twenty_substrates_has_finite_accurate_rates():
    conc = np.random.default_rng(2).uniform(0.5, 8.0, (400, N_MET))
    network, model = _model(conc)
    assert message_scale(network.substrates, conc) < 100.0  # lowered so that M**20 stays in float32 range
    with torch.no_grad():
        rates = model.rates(torch.as_tensor(conc, dtype=torch.float32)).double().numpy()
    truth = 0.1 * np.prod(conc[:, :, None] ** network.substrates[None], axis=1)
    assert np.all(np.isfinite(rates))
    rel = np.abs(rates / truth - 1.0)
    assert np.median(rel) < 1e-3 and rel[:, -1].max() < 0.01 and rel.max() < 0.05
