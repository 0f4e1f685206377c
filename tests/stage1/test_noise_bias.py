"""Second-order bias of the frozen rates at noisy states: the colouring gives the exact sum of the diagonal
second differences, and the debiased rates are unbiased on average over the noise."""

from __future__ import annotations

import numpy as np

from sysid.config import Config
from sysid.network import Network
from sysid.phase1.from_truth import model_from_truth
from sysid.stage1.noise_bias import debiased, rate_bias
from sysid.stage1.residuals import evaluate_frozen

# m0 + m3 -> m1, m0 -> m1, 2 m1 -> m2 (curved: c1^2), m2 -> m3, m1 + m2 -> m0
S = np.array([
    [-1, -1, 0, 0, 1],
    [1, 1, -2, 0, -1],
    [0, 0, 1, -1, -1],
    [-1, 0, 0, 1, 0],
], dtype=np.float64)
SUBSTRATES = np.array([
    [1, 1, 0, 0, 0],
    [0, 0, 2, 0, 1],
    [0, 0, 0, 1, 1],
    [1, 0, 0, 0, 0],
], dtype=np.float64)
NETWORK = Network(S=S, substrates=SUBSTRATES)
LOG_K = np.array([-1.0, -1.5, -1.2, -1.0, -1.3])


def _model(conc):
    return model_from_truth(NETWORK, LOG_K, Config().graph_model, log_k_noise=0.0, seed=0,
                            concentrations=conc).double()


def test_the_colouring_gives_the_sum_of_every_metabolite_s_second_difference():
    rng = np.random.default_rng(0)
    conc = rng.uniform(2.0, 8.0, (40, 4))
    model, sd = _model(conc), np.array([0.3, 0.5, 0.2, 0.4])
    centre = evaluate_frozen(model, conc).rates
    expected = np.zeros_like(centre)
    for k in range(4):  # one metabolite at a time: no mixed derivative can enter
        step = np.eye(4)[k] * sd[k]
        expected += 0.5 * (evaluate_frozen(model, conc + step).rates + evaluate_frozen(model, conc - step).rates
                           - 2.0 * centre)
    np.testing.assert_allclose(rate_bias(model, conc, sd, NETWORK), expected, rtol=1e-9, atol=1e-12)
    assert np.abs(expected[:, 2]).min() > 0  # the squared law is curved


def test_debiased_rates_average_to_the_rates_at_the_true_state():
    """Many noisy readings of one state: the raw rates of the squared law are biased up by about k sigma^2;
    the debiased ones are not (beyond Monte Carlo error)."""
    rng = np.random.default_rng(1)
    truth = np.array([5.0, 4.0, 6.0, 3.0])
    sd = np.full(4, 0.8)
    noisy = truth + rng.normal(0.0, 1.0, (15000, 4)) * sd
    model = _model(noisy)
    exact = evaluate_frozen(model, truth[None]).rates[0]
    raw = evaluate_frozen(model, noisy)
    fixed = debiased(raw, model, noisy, sd, NETWORK)
    mc = raw.rates.std(axis=0) / np.sqrt(len(noisy))  # Monte Carlo standard error of a mean
    raw_bias, fixed_bias = raw.rates.mean(axis=0) - exact, fixed.rates.mean(axis=0) - exact
    assert raw_bias[2] > 6 * mc[2]  # the curved law: clearly biased
    np.testing.assert_array_less(np.abs(fixed_bias), 4 * mc)
    np.testing.assert_allclose(fixed.reaction, fixed.rates @ S.T, rtol=1e-10, atol=1e-10)
