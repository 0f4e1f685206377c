"""Cramer-Rao bound: the variational sensitivities and Schur elimination against a brute-force Fisher matrix."""

import numpy as np
import pytest
import torch
from scipy import linalg

from sysid.config import Config
from sysid.phase1.from_truth import model_from_truth
from sysid.simulation import simulate
from sysid.stage1.bound import cramer_rao_bound

TINY = {"n_metabolites": 8, "n_reactions": 12, "n_frames": 40, "seed": 4}
# faster reactions: a metabolite overshoots zero within a window and the Euler step clamps it
CLAMPING = {**TINY, "seed": 5, "log_k_min": -1.0, "log_k_max": -0.5}


def _trajectory(model, S, x0, params, n_samples, h):
    """Observed samples 0..n_samples-1 of the corrected model from x0 (plain Euler, float64)."""
    n_met = S.shape[0]
    slope, offset, scale = params[:n_met], params[n_met : 2 * n_met], params[2 * n_met :]
    x, out = x0.copy(), [x0.copy()]
    for _ in range(n_samples - 1):
        with torch.no_grad():
            v = model.rates(torch.as_tensor(x)).numpy()
        x = np.maximum(x + h * ((v * scale) @ S.T + slope * x + offset), 0.0)
        out.append(x.copy())
    return np.concatenate(out)


@pytest.mark.parametrize("regime", [TINY, CLAMPING], ids=["smooth", "clamping"])
def test_bound_matches_brute_force_fisher_information(regime):
    cfg = Config().replace("simulation", **regime)
    sim = simulate(cfg.simulation)
    clamped = int(np.sum(sim.concentrations[1:] == 0))
    assert clamped == (1 if regime is CLAMPING else 0)  # the regime does what its name says
    model = model_from_truth(sim.network, sim.truth.log_k, cfg.graph_model, log_k_noise=0.0, seed=1,
                             concentrations=sim.concentrations).to(torch.float64)
    t, S = sim.truth, sim.network.S.astype(np.float64)
    n_met, n_rxn = S.shape
    slope, offset = -t.lambdas[t.types], t.lambdas[t.types] * t.baselines[t.types]
    sigma, window = 0.01, 10
    bound = cramer_rao_bound(model, sim.concentrations, sim.delta_t, slope=slope, offset=offset,
                             noise_level=sigma, window=window)
    theta = np.concatenate([slope, offset, np.ones(n_rxn)])
    n_par = len(theta)
    total = np.zeros((n_par, n_par))
    for start in range(0, len(sim.concentrations) - window + 1, window):
        x0 = sim.concentrations[start].astype(np.float64)
        point = np.concatenate([theta, x0])
        jac = np.zeros((window * n_met, len(point)))
        for p in range(len(point)):
            step = 1e-6 * max(abs(point[p]), 1.0)
            up, down = point.copy(), point.copy()
            up[p] += step
            down[p] -= step
            f = [_trajectory(model, S, q[n_par:], q[:n_par], window, sim.delta_t) for q in (up, down)]
            jac[:, p] = (f[0] - f[1]) / (2 * step)
        info = jac.T @ jac / sigma**2
        a, b, d = info[:n_par, :n_par], info[:n_par, n_par:], info[n_par:, n_par:]
        total += a - b @ linalg.inv(d) @ b.T
    expected = np.sqrt(np.diag(linalg.pinvh(total))[: 2 * n_met])
    np.testing.assert_allclose(np.r_[bound.slope_sd, bound.offset_sd], expected, rtol=2e-3)
    # the bound scales with the noise; relative noise weighs each sample by 1 / c^2
    twice = cramer_rao_bound(model, sim.concentrations, sim.delta_t, slope=slope, offset=offset,
                             noise_level=2 * sigma, window=window)
    np.testing.assert_allclose(twice.slope_sd, 2 * bound.slope_sd, rtol=1e-6)
    assert bound.shared_slope_sd(t.types).shape == (t.n_types,)
    assert np.all(bound.shared_slope_sd(t.types) <= bound.slope_sd.max())
