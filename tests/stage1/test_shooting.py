"""Stage 1 on sparse records: shooting over recorded intervals with the frozen model on sub-steps."""

import dataclasses
import logging

import numpy as np
import pytest

from sysid.config import Config, Stage1Config
from sysid.io.dataset import Dataset
from sysid.phase1.from_truth import model_from_truth
from sysid.simulation import simulate
from sysid.stage1.fit import fit_stage1, uses_shooting
from sysid.stage1.output_error import OutputErrorRegression
from sysid.stage1.regression import VARIANCE_FLOOR
from sysid.stage1.shooting import (
    FIRST_DAMPING,
    LM_DAMPING,
    MAX_ITERATIONS,
    TOLERANCE,
    ShootingRegression,
    _metabolite_variance,
    interval_starts,
    sandwich_covariance,
    scaled_pseudo_inverse,
    substrate_colouring,
)

SPARSE = {"n_metabolites": 16, "n_reactions": 28, "n_frames": 600, "record_every": 5, "seed": 3}


@pytest.fixture(scope="module")
def sparse_case():
    cfg = Config().replace("simulation", **SPARSE)
    sim = simulate(cfg.simulation)
    data = Dataset(sim.concentrations, sim.dcdt, sim.positions, sim.network, sim.delta_t, euler_steps=False,
                   steps_per_frame=5)
    model = model_from_truth(sim.network, sim.truth.log_k, cfg.graph_model, log_k_noise=0.1, seed=1,
                             concentrations=sim.concentrations).freeze_reactions()
    return cfg, sim, data, model


@pytest.fixture(scope="module")
def noisy_sparse(sparse_case):
    """The sparse case's record with 0.3% log-normal noise."""
    cfg, _, _, _ = sparse_case
    sim = simulate(cfg.simulation, 0.003, noise_kind="relative")
    return sim, Dataset(sim.concentrations, sim.dcdt, sim.positions, sim.network, sim.delta_t, euler_steps=False,
                        steps_per_frame=5)


def test_colouring_separates_the_substrates_of_each_reaction():
    rng = np.random.default_rng(0)
    substrates = (rng.random((30, 50)) < 0.08) * rng.integers(1, 3, (30, 50))
    colour = substrate_colouring(substrates)
    for j in range(substrates.shape[1]):
        members = colour[substrates[:, j] > 0]
        assert len(np.unique(members)) == len(members)


def test_intervals_stay_inside_experiments():
    np.testing.assert_array_equal(interval_starts(10, 2, (0, 6)), [0, 2, 6, 8])


def test_sensitivities_match_finite_differences(sparse_case):
    _, sim, data, model = sparse_case
    reg = ShootingRegression(substeps=5, n_iterations=0)
    reg.fit(data, model)
    c0 = data.concentrations[:40:4].astype(np.float64)
    n_met, n_rxn = sim.network.S.shape
    theta = np.concatenate([np.full(n_met, -0.001), np.full(n_met, 0.005), np.ones(n_rxn), np.zeros(n_rxn)])
    end, X, _ = reg._shoot(c0, theta)
    for p in (0, n_met + 3, 2 * n_met + 5, 2 * n_met + n_rxn + 7):
        step = 1e-3  # large enough for the float32 frozen model (its rates carry rounding of ~1e-6 of the largest)
        ends = []
        for sign in (1, -1):
            moved = theta.copy()
            moved[p] = theta[p] * (1 + sign * step) if 2 * n_met <= p < 2 * n_met + n_rxn else theta[p] + sign * step
            ends.append(reg._shoot(c0, moved, sensitivities=False)[0])
        fd = (ends[0] - ends[1]) / (2 * step)
        np.testing.assert_allclose(X[:, :, p], fd, rtol=2e-2, atol=2e-2 * np.abs(fd).max())


def test_sparse_record_without_noise_recovers_the_homeostasis(sparse_case):
    cfg, sim, data, model = sparse_case
    assert uses_shooting(data, model, cfg.sysid.stage1)
    result = fit_stage1(data, model, cfg.sysid.stage1)
    assert isinstance(result.regression, ShootingRegression)  # a clean record: no output error after it
    fit, t = result.fit, sim.truth
    slope, offset = -t.lambdas[t.types], t.lambdas[t.types] * t.baselines[t.types]
    assert np.median(np.abs(fit.raw_slope / slope - 1)) < 0.02
    assert np.median(np.abs(fit.raw_offset / offset - 1)) < 0.02
    assert fit.n_groups == 2


def test_noisy_sparse_record_goes_on_to_output_error(sparse_case, noisy_sparse):
    """With 0.3% log-normal noise the shooting fit's interval residuals say the record is noisy: the output
    error follows (relative noise found) and its answer, at least as good on held-out data, is the one kept."""
    cfg, _, data, model = sparse_case
    sim, noisy = noisy_sparse
    short = dataclasses.replace(cfg.sysid.stage1, output_error_windows=(4, 8))  # 2, 4, 8 samples: quicker
    result = fit_stage1(noisy, model, short)
    reg, fit = result.regression, result.fit
    assert isinstance(reg, OutputErrorRegression) and reg.observation.relative and reg.observation.substeps == 5
    # its groups' values are those the members share (sysid.stage1.shared), with their standard errors
    assert fit.group_values is not None and fit.group_values.shape == (fit.n_groups, 4)
    slope, offset, slope_se, offset_se = fit.group_estimates()
    t = sim.truth
    for k in range(t.n_types):
        g = np.bincount(fit.groups[t.types == k], minlength=fit.n_groups).argmax()
        assert abs(slope[g] + t.lambdas[k]) < 4 * slope_se[g] + 0.05 * t.lambdas[k]
        assert abs(offset[g] - t.lambdas[k] * t.baselines[k]) < 4 * offset_se[g] + 0.05 * t.lambdas[k] * t.baselines[k]


def test_fit_reads_a_sparse_record_from_its_folder(sparse_case, tmp_path):
    from sysid.io.checkpoint import save_checkpoint
    from sysid.io.dataset import load_dataset, write_dataset
    from sysid.pipeline import fit_to_folder

    cfg, sim, _, model = sparse_case
    (tmp_path / "data").mkdir()
    write_dataset(sim, tmp_path / "data")
    data = load_dataset(tmp_path / "data")
    assert data.steps_per_frame == 5 and not data.euler_steps
    save_checkpoint(model, tmp_path / "model.pt")
    metrics = fit_to_folder(tmp_path / "data", tmp_path / "model.pt", tmp_path / "fit", cfg)
    assert metrics["stage1_group_acc"] == 1.0 and abs(metrics["stage1_avg_slope_ratio"] - 1) < 0.02
    assert (tmp_path / "fit" / "detectability.csv").is_file()


def test_the_misfit_test_runs_on_sparse_records(sparse_case):
    """A smooth error that no correction can absorb (a slow oscillation of every concentration that neither the
    frozen model nor its corrections make, as for a learned model of the wrong form) is a misfit on the shooting
    path too, and leaves no metabolite identified; the correct-form model is not."""
    cfg, sim, data, model = sparse_case
    good = fit_stage1(data, model, cfg.sysid.stage1)
    assert not good.misfit.misfit and good.misfit.statistic < cfg.sysid.stage1.misfit_threshold
    t = np.arange(len(data.concentrations))[:, None]
    drift = 0.5 * np.sin(2 * np.pi * t / 40.0 + np.arange(data.n_metabolites))
    moved = Dataset(data.concentrations + drift.astype(np.float32), data.dcdt, data.positions, data.network,
                    data.delta_t, euler_steps=False, steps_per_frame=5)
    bad = fit_stage1(moved, model, cfg.sysid.stage1)
    assert bad.misfit.misfit and not bad.fit.identified.any()


def test_a_parameter_without_information_gets_an_infinite_variance():
    """Its diagonal at rounding level (a metabolite whose state stays at zero): the unit-diagonal scaling would
    overflow; that parameter's variance is infinite and the others' are their own block's pseudo-inverse."""
    rng = np.random.default_rng(0)
    root = rng.standard_normal((20, 3))
    info = np.zeros((4, 4))
    info[np.ix_([0, 1, 3], [0, 1, 3])] = root.T @ root
    info[2, 2], info[2, 0], info[0, 2] = 1e-310, 1e-20, 1e-20
    cov = scaled_pseudo_inverse(info)
    assert np.isinf(cov[2, 2]) and np.all(cov[2, [0, 1, 3]] == 0)
    np.testing.assert_allclose(cov[np.ix_([0, 1, 3], [0, 1, 3])], np.linalg.inv(root.T @ root), rtol=1e-8)
    np.testing.assert_allclose(scaled_pseudo_inverse(root.T @ root), np.linalg.inv(root.T @ root), rtol=1e-8)


def test_sandwich_covariance_of_a_weighted_regression():
    """Least squares y = X b + e with heteroskedastic e, fitted with the wrong (unit) weights: the sandwich
    (bread X^T X, meat sum e_i^2 x_i x_i^T) matches the spread of b over 2000 draws, where the inverse
    information scaled by the residual variance does not; with meat = bread it is the inverse information, and a
    parameter the bread does not inform keeps an infinite variance."""
    rng = np.random.default_rng(0)
    x = np.column_stack([np.ones(200), rng.uniform(0, 4, 200)])
    sd = 0.1 + 0.5 * x[:, 1] ** 2  # the noise grows with the regressor
    bread = x.T @ x
    draws, sandwiches, naive = [], [], []
    for _ in range(2000):
        y = x @ np.array([1.0, -0.5]) + sd * rng.standard_normal(200)
        b = np.linalg.solve(bread, x.T @ y)
        e = y - x @ b
        draws.append(b)
        sandwiches.append(sandwich_covariance(bread, (x * e[:, None] ** 2).T @ x) * 200 / 198)
        naive.append(np.linalg.inv(bread) * (e @ e) / 198)
    spread = np.var(draws, axis=0)
    assert np.all(np.abs(np.diagonal(np.mean(sandwiches, axis=0)) / spread - 1) < 0.1)
    assert np.diagonal(np.mean(naive, axis=0))[1] / spread[1] < 0.8
    np.testing.assert_allclose(sandwich_covariance(bread, bread), np.linalg.inv(bread), rtol=1e-8)
    padded = np.zeros((3, 3))
    padded[:2, :2] = bread
    cov = sandwich_covariance(padded, padded)
    assert np.isinf(cov[2, 2]) and np.all(cov[2, :2] == 0)


def test_metabolite_weights_span_at_most_the_variance_floor():
    """On a noise-free record a metabolite fitted almost exactly must not outweigh the others 1e12-fold (on the
    default regime's sparse record, seed 9, such weights let the first step send five metabolites 30-60
    concentration units off their readings while the weighted rms fell)."""
    residual = np.ones((50, 4)) * np.array([1e-9, 1.0, 2.0, 3.0])
    var = _metabolite_variance(residual, np.ones_like(residual, bool))
    assert var[0] == pytest.approx(VARIANCE_FLOOR * np.median(var)) and np.all(var[1:] == [1.0, 4.0, 9.0])


def test_levenberg_marquardt_starts_damped_and_relaxes(sparse_case, caplog):
    """The first step is tried at the damping FIRST_DAMPING, not undamped; after an accepted step the next
    iteration first tries one level below the accepted one."""
    _, _, data, model = sparse_case
    with caplog.at_level(logging.DEBUG, logger="sysid.stage1"):
        ShootingRegression(substeps=5, n_iterations=2).fit(data, model)
    messages = [r.getMessage() for r in caplog.records]
    end_of_first = messages.index(next(m for m in messages if m.startswith("stage 1 shooting iteration 1")))
    tried = [[float(m.split(":")[0].split()[1]) for m in part if m.startswith("damping")]
             for part in (messages[:end_of_first], messages[end_of_first:])]
    dampings = (Stage1Config.ridge, *LM_DAMPING)
    assert tried[0][0] == FIRST_DAMPING
    assert tried[1][0] == dampings[max(dampings.index(tried[0][-1]) - 1, 0)]


def test_iterations_stop_when_the_rms_no_longer_falls(sparse_case, noisy_sparse):
    """On a noisy record the weighted rms levels off at the noise after a few iterations: the fit stops at the
    first iteration that lowers it by less than TOLERANCE, well before MAX_ITERATIONS; every earlier one lowered
    it by more."""
    _, _, _, model = sparse_case
    path = np.array(ShootingRegression(substeps=5).fit(noisy_sparse[1], model).rms_path_)
    drops = -np.diff(path) / path[:-1]
    assert 1 <= len(drops) < MAX_ITERATIONS
    assert drops[-1] < TOLERANCE and np.all(drops[:-1] >= TOLERANCE)


def test_the_shooting_fit_is_the_same_on_one_thread_and_on_two():
    """Its BLAS calls run on one thread (sysid.threads.pools_only): the same bits whatever the thread count. (On
    this record, 40 metabolites, OpenBLAS on two threads rounds some sums otherwise: the slopes moved by 1e-9.)"""
    from threadpoolctl import threadpool_limits

    cfg = Config().replace("simulation", **{**SPARSE, "n_metabolites": 40, "n_reactions": 100})
    sim = simulate(cfg.simulation, 0.003, noise_kind="relative")
    data = Dataset(sim.concentrations, sim.dcdt, sim.positions, sim.network, sim.delta_t, euler_steps=False,
                   steps_per_frame=5)
    model = model_from_truth(sim.network, sim.truth.log_k, cfg.graph_model, log_k_noise=0.1, seed=1,
                             concentrations=sim.concentrations).freeze_reactions()
    fits = []
    for threads in (1, 2):
        with threadpool_limits(limits=threads):
            fits.append(ShootingRegression(substeps=5).fit(data, model))
    for name in ("slope_", "offset_", "slope_se_", "reaction_scale_", "joint_cov_"):
        assert np.array_equal(getattr(fits[0], name), getattr(fits[1], name)), name
