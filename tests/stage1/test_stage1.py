"""Stage 1: residuals, joint regression with frozen-model corrections, grouping."""

import numpy as np
import pytest

from sysid.config import Config
from sysid.evaluation.metrics import stage1_metrics
from sysid.io.checkpoint import load_checkpoint
from sysid.io.dataset import load_dataset, load_truth, write_dataset
from sysid.phase1.from_truth import model_from_truth
from sysid.simulation import simulate
from sysid.stage1.fit import fit_stage1
from sysid.stage1.grouping import find_groups
from sysid.stage1.residuals import compute_residuals, evaluate_frozen, window_starts, window_sum
from tests.helpers import small_config


@pytest.mark.parametrize("ramp", [1, 3])
def test_window_sum_matches_a_loop(ramp):
    x = np.arange(50.0).reshape(25, 2)
    starts = window_starts(24, 5, ramp)
    assert starts[-1] + 5 + ramp - 1 <= 24
    expected = np.array([np.mean([x[s + a : s + a + 5].sum(0) for a in range(ramp)], axis=0) for s in starts])
    np.testing.assert_allclose(window_sum(x, starts, 5, ramp), expected)


@pytest.mark.parametrize("ramp", [1, 5])
def test_windowed_residual_of_the_true_model_is_the_homeostasis(small_sim, small_dir, ramp):
    """With the exact reaction part, windowed residual = dt * sum of the true homeostatic term (weak form too)."""
    data = load_dataset(small_dir)
    model = model_from_truth(small_sim.network, small_sim.truth.log_k, Config().graph_model,
                             log_k_noise=0.0, seed=0, concentrations=small_sim.concentrations)
    frozen = evaluate_frozen(model, data.concentrations)
    res = compute_residuals(data, frozen, 10, ramp)
    t = small_sim.truth
    h = -t.lambdas[t.types] * (data.concentrations.astype(np.float64) - t.baselines[t.types])
    expected = data.delta_t * window_sum(h, res.starts, 10, ramp)
    assert res.valid.all()
    scale = np.abs(expected).mean()
    assert np.abs(res.windowed - expected).mean() < 0.01 * scale


def test_planted_slopes_and_groups_are_recovered(small_dir, small_frozen):
    data, truth = load_dataset(small_dir), load_truth(small_dir)
    result = fit_stage1(data, load_checkpoint(small_frozen).freeze_reactions(), Config().sysid.stage1)
    m = stage1_metrics(result.fit.slope, result.fit.offset, result.fit.groups, truth)
    for t in range(truth.n_types):
        assert m[f"stage1_slope_ratio_{t}"] == pytest.approx(1.0, abs=0.02)
        assert m[f"stage1_offset_ratio_{t}"] == pytest.approx(1.0, abs=0.02)
    assert m["stage1_group_acc"] == 1.0 and m["stage1_n_groups"] == truth.n_types
    assert np.all(result.fit.slope_se > 0) and np.all(np.isfinite(result.fit.slope_se))


@pytest.mark.parametrize(
    "types",
    [
        {"n_metabolite_types": 1, "homeostatic_lambda_per_type": [0.0015], "homeostatic_baseline_per_type": [5.0]},
        {"n_metabolite_types": 3, "homeostatic_lambda_per_type": [0.001, 0.003, 0.002],
         "homeostatic_baseline_per_type": [3.0, 5.0, 8.0], "seed": 11},
    ],
)
def test_number_of_groups_comes_from_the_data(tmp_path, types):
    cfg = small_config(n_frames=1000, **types)
    sim = simulate(cfg.simulation)
    write_dataset(sim, tmp_path)
    model = model_from_truth(sim.network, sim.truth.log_k, cfg.graph_model, log_k_noise=0.1, seed=1,
                             concentrations=sim.concentrations)
    result = fit_stage1(load_dataset(tmp_path), model, cfg.sysid.stage1)
    m = stage1_metrics(result.fit.slope, result.fit.offset, result.fit.groups, load_truth(tmp_path))
    assert m["stage1_n_groups"] == cfg.simulation.n_metabolite_types
    assert m["stage1_group_acc"] == 1.0
    assert abs(m["stage1_avg_slope_ratio"] - 1.0) < 0.02


def test_grouping_ignores_uncertain_points_and_pools_them():
    rng = np.random.default_rng(0)
    centres = np.array([[-1.0, 4.0], [-2.0, 12.0]])
    labels = np.repeat([0, 1], 20)
    points = centres[labels] + rng.normal(0, 0.01, (40, 2))
    cov = np.tile(np.eye(2) * 1e-6, (40, 1, 1))
    points[3] = [-5.0, 30.0]  # a wild but very uncertain estimate
    cov[3] = np.eye(2) * 100.0
    g = find_groups(points, cov, seed=0)
    assert len(np.unique(g.labels)) == 2
    precise = np.arange(40) != 3
    assert np.all(g.labels[precise & (labels == 0)] == g.labels[0])
    assert np.all(g.labels[precise & (labels == 1)] == g.labels[20])
    # the uncertain point is pulled to the centre of the group it joins
    assert np.min(np.linalg.norm(centres - g.pooled[3], axis=1)) < 0.05
    np.testing.assert_allclose(g.pooled[10], points[10], atol=0.01)  # a precise one keeps its value
