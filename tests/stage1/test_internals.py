"""Stage-1 internals against naive dense references, each on a tiny synthetic problem with a known answer.

Every reference is written from the definitions in the docstrings and docs/method.md with plain loops, so a
vectorised shortcut in the library that drifts from its definition shows up here.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from sysid.config import Stage1Config
from sysid.io.dataset import Dataset
from sysid.network import Network
from sysid.stage1.design import (
    LOG_EPS,
    Design,
    ShapeFeatures,
    build_design,
    hat_basis,
    mass_action_monomials,
    shape_features,
    shape_knots,
)
from sysid.stage1.quadratic import needs_quadratic, windowed_library
from sysid.stage1.regression import solve_normal_equations
from sysid.stage1.residuals import (
    NOISE_FILTER_LENGTH,
    FrozenEvaluation,
    compute_residuals,
    estimate_noise,
    integral_form,
    window_frames,
    window_starts,
    window_sum,
)

# m0 + m3 -> m1 (r3), m0 -> m1 (r0), 2 m1 -> m2 (r1), m2 -> m3 (r2), feed -> m0 (r4, no substrate)
S = np.array([
    [-1, 0, 0, -1, 1],
    [1, -2, 0, 1, 0],
    [0, 1, -1, 0, 0],
    [0, 0, 1, -1, 0],
], dtype=np.float64)
SUBSTRATES = np.array([
    [1, 0, 0, 1, 0],
    [0, 2, 0, 0, 0],
    [0, 0, 1, 0, 0],
    [0, 0, 0, 1, 0],
], dtype=np.float64)
N_MET, N_RXN = S.shape


def naive_window_sum(x, starts, window, ramp=1, trapezoid=False):
    """Mean over shifts a < ramp of sum_{t=t0+a}^{t0+a+W-1} x_t (trapezoid: half weights on t0+a and t0+a+W)."""
    out = np.zeros((len(starts), *x.shape[1:]))
    for w, t0 in enumerate(starts):
        for a in range(ramp):
            if trapezoid:
                weights = {t: 1.0 for t in range(t0 + a, t0 + a + window + 1)}
                weights[t0 + a] = weights[t0 + a + window] = 0.5
            else:
                weights = {t: 1.0 for t in range(t0 + a, t0 + a + window)}
            for t, wt in weights.items():
                out[w] += wt * x[t] / ramp
    return out


def smooth_positive(rng, n_frames, n_cols, base=2.0):
    """Slow sinusoids around ``base`` (periods of 100-400 frames): smooth on the scale of a 7-frame filter."""
    t = np.arange(n_frames + 1)[:, None]
    period = rng.uniform(100, 400, n_cols)
    phase = rng.uniform(0, 2 * np.pi, n_cols)
    return base + 0.5 * base * np.sin(2 * np.pi * t / period + phase)


# ---------------------------------------------------------------- windows


@pytest.mark.parametrize("ramp", [1, 3])
@pytest.mark.parametrize("trapezoid", [False, True])
def test_window_sum_and_frames_match_their_definition(ramp, trapezoid):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2, 3))  # any trailing shape is carried along
    starts = np.array([0, 7, 20, 40])
    frames = window_frames(starts, 6)
    assert frames.shape == (4, 6)
    assert [list(r) for r in frames] == [list(range(s, s + 6)) for s in starts]
    np.testing.assert_allclose(window_sum(x, starts, 6, ramp, trapezoid),
                               naive_window_sum(x, starts, 6, ramp, trapezoid), rtol=1e-12, atol=1e-12)


def test_window_starts_tile_each_experiment_without_straddling():
    """Windows every W frames from start + skip; the last ramp-shifted window ends by the experiment's last frame."""
    n_frames, window, ramp, skip, exp = 120, 9, 3, 2, (0, 50, 83)
    got = window_starts(n_frames, window, ramp, exp, skip)
    bounds = [*exp, n_frames + 1]
    expected = []
    for first, end in zip(bounds[:-1], bounds[1:], strict=True):
        t0 = first + skip
        while t0 + window + ramp - 1 <= end - 1:
            expected.append(t0)
            t0 += window
    assert list(got) == expected
    assert got.dtype == np.int64


def _dataset(conc, dcdt, dt, experiment_starts=(0,)):
    return Dataset(concentrations=conc, dcdt=dcdt, positions=np.zeros((conc.shape[1], 2)),
                   network=Network(S=S, substrates=SUBSTRATES), delta_t=dt, experiment_starts=experiment_starts)


@pytest.mark.parametrize("ramp", [1, 4])
def test_compute_residuals_matches_loops_and_masks_clamped_zeros(ramp):
    rng = np.random.default_rng(1)
    n_frames, window, dt, exp = 150, 8, 0.05, (0, 70)
    conc = rng.uniform(0.5, 2.0, (n_frames + 1, N_MET))
    conc[33, 1] = 0.0  # clamped zeros: every window whose frames t0..t0+W+ramp-1 include them is masked
    conc[140, 3] = 0.0
    dcdt = rng.normal(size=conc.shape)
    reaction = rng.normal(size=conc.shape)
    frozen = FrozenEvaluation(rates=np.zeros((n_frames + 1, N_RXN)), aggregate=np.zeros((n_frames + 1, N_RXN)),
                              reaction=reaction)
    res = compute_residuals(_dataset(conc, dcdt, dt, exp), frozen, window, ramp, skip=1)
    np.testing.assert_array_equal(res.starts, window_starts(n_frames, window, ramp, exp, 1))
    assert res.window == window and res.ramp == ramp
    np.testing.assert_allclose(res.single_step, dcdt - reaction)
    for w, t0 in enumerate(res.starts):
        for i in range(N_MET):
            end_mean = np.mean([conc[t0 + window + a, i] for a in range(ramp)])
            start_mean = np.mean([conc[t0 + a, i] for a in range(ramp)])
            assert res.delta[w, i] == pytest.approx(end_mean - start_mean, rel=1e-12, abs=1e-12)
            integral = dt * naive_window_sum(reaction[:, i], [t0], window, ramp)[0]
            assert res.integrated_reaction[w, i] == pytest.approx(integral, rel=1e-12, abs=1e-12)
            touches_zero = any(conc[t, i] == 0 for t in range(t0, t0 + window + ramp))
            # noisy data (ramp > 1): a recorded zero is a noisy reading cut at 0, not a break of the Euler step
            assert res.valid[w, i] == (not touches_zero or ramp > 1)
    assert (~res.valid).sum() >= (2 if ramp == 1 else 0)  # both planted zeros fall inside some window
    np.testing.assert_allclose(res.windowed, res.delta - res.integrated_reaction)


@pytest.mark.parametrize("ramp", [1, 5])
def test_windowed_residual_is_exact_for_euler_data(ramp):
    """c(t+1) = c(t) + dt (R(t) + h(t)) gives windowed residual = dt * (ramped) window sum of h, to rounding."""
    rng = np.random.default_rng(2)
    n_frames, dt, window = 200, 0.1, 10
    reaction = rng.normal(size=(n_frames + 1, N_MET))
    h = rng.normal(size=(n_frames + 1, N_MET))
    conc = np.empty((n_frames + 1, N_MET))
    conc[0] = 50.0
    for t in range(n_frames):
        conc[t + 1] = conc[t] + dt * (reaction[t] + h[t])
    frozen = FrozenEvaluation(np.zeros((n_frames + 1, N_RXN)), np.zeros((n_frames + 1, N_RXN)), reaction)
    res = compute_residuals(_dataset(conc, reaction + h, dt), frozen, window, ramp)
    assert res.valid.all()
    np.testing.assert_allclose(res.windowed, dt * naive_window_sum(h, res.starts, window, ramp), atol=1e-11)


# ---------------------------------------------------------------- design matrix


def test_hat_basis_is_piecewise_linear_interpolation_on_quantile_knots():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 3))
    mask = np.zeros_like(x, bool)
    mask[:, :2] = True  # knots come from the masked entries only; others are clipped to their range
    n_knots = 5
    hats = hat_basis(x, n_knots, mask)
    knots = np.quantile(x[mask], np.linspace(0, 1, n_knots))
    assert hats.shape == (40, 3, n_knots - 1)  # first hat left out
    for k in range(1, n_knots):
        unit = np.eye(n_knots)[k]
        np.testing.assert_allclose(hats[..., k - 1], np.interp(x, knots, unit), atol=1e-12)
    assert np.all(hats.sum(-1) <= 1 + 1e-12)  # the full set sums to one, so the rest is the dropped first hat
    assert hat_basis(x, 1, mask).shape == (40, 3, 0)
    assert hat_basis(x, 4, np.zeros_like(mask)).shape == (40, 3, 0)


def test_mass_action_monomials_are_products_of_substrate_powers():
    rng = np.random.default_rng(4)
    conc = rng.uniform(0.1, 3.0, (12, N_MET))
    conc[5, 1] = 0.0  # a zero substrate zeroes its reaction (r1), and no other
    got = mass_action_monomials(conc, SUBSTRATES)
    expected = np.ones((12, N_RXN))
    for t in range(12):
        for j in range(N_RXN):
            for k in range(N_MET):
                expected[t, j] *= conc[t, k] ** SUBSTRATES[k, j]
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert got[5, 1] == 0.0 and np.all(got[:, 4] == 1.0)


def test_shape_features_match_per_edge_loops():
    """Per |s|: sum over a reaction's substrate edges with that |s| of hats of log(c + eps); then hats of
    log|aggregate| on reactions with a substrate (zero on the feed)."""
    rng = np.random.default_rng(5)
    n_t, n_knots = 30, 4
    conc = rng.uniform(0.1, 5.0, (n_t, N_MET))
    aggregate = rng.normal(size=(n_t, N_RXN))
    feats = shape_features(conc, aggregate, Network(S=S, substrates=SUBSTRATES), n_knots)
    logc = np.log(conc + LOG_EPS)
    expected_blocks = []
    for s in (1.0, 2.0):
        mets = [k for k in range(N_MET) if np.any(SUBSTRATES[k] == s)]
        knots = np.quantile(logc[:, mets], np.linspace(0, 1, n_knots))
        block = np.zeros((n_t, N_RXN, n_knots - 1))
        for t in range(n_t):
            for j in range(N_RXN):
                for k in range(N_MET):
                    if SUBSTRATES[k, j] == s:
                        block[t, j] += [np.interp(logc[t, k], knots, np.eye(n_knots)[m]) for m in range(1, n_knots)]
        expected_blocks.append(block)
    log_agg = np.log(np.abs(aggregate))
    knots = np.quantile(log_agg[:, :4], np.linspace(0, 1, n_knots))  # r4 (feed) has no substrate
    agg_block = np.stack([np.interp(log_agg, knots, np.eye(n_knots)[m]) for m in range(1, n_knots)], -1)
    agg_block[:, 4] = 0.0
    expected = np.concatenate([*expected_blocks, agg_block], -1)
    assert feats.values.shape == expected.shape == (n_t, N_RXN, 3 * (n_knots - 1))
    np.testing.assert_allclose(feats.values, expected, atol=1e-12)
    assert len(feats.names) == expected.shape[-1]


def test_a_negative_concentration_has_the_shape_features_of_zero():
    """A state below zero (a shifted or simulated one) counts as zero in log(c + eps): finite features, and the
    knots that a record with it sets are the knots of the same record with it at zero."""
    rng = np.random.default_rng(6)
    conc = rng.uniform(0.1, 5.0, (30, N_MET))
    aggregate = rng.normal(size=(30, N_RXN))
    network = Network(S=S, substrates=SUBSTRATES)
    negative, zero = conc.copy(), conc.copy()
    negative[3, 1], zero[3, 1] = -0.5, 0.0
    got = shape_features(negative, aggregate, network, 4).values
    assert np.all(np.isfinite(got))
    np.testing.assert_array_equal(got, shape_features(zero, aggregate, network, 4).values)


def test_features_of_some_states_on_the_record_knots_are_those_rows_of_the_record_features():
    """The knots of a record, computed once (shape_knots), place other states' features as the record's own: the
    features of some of its frames on its knots are those frames' rows of its features."""
    rng = np.random.default_rng(7)
    conc = rng.uniform(0.1, 5.0, (30, N_MET))
    aggregate = rng.normal(size=(30, N_RXN))
    network = Network(S=S, substrates=SUBSTRATES)
    knots = shape_knots(conc, aggregate, network, 4)
    whole = shape_features(conc, aggregate, network, 4)
    part = shape_features(conc[5:9], aggregate[5:9], network, 4, knots)
    np.testing.assert_array_equal(part.values, whole.values[5:9])
    assert part.names == whole.names == knots.names


def naive_design(target, conc, rates, feats, starts, valid, window, dt, monomials, ramp, trapezoid):
    """Dense rows (i, w) in metabolite-major order, columns from the formula in docs/method.md section 2."""
    def ws(x):
        return naive_window_sum(x, starts, window, ramp, trapezoid)

    n_feat = feats.shape[-1]
    rows, y = [], []
    for i in range(N_MET):
        for w in range(len(starts)):
            if not valid[w, i]:
                continue
            slope = np.zeros(N_MET)
            slope[i] = dt * ws(conc[:, i])[w]
            offset = np.zeros(N_MET)
            offset[i] = window * dt
            scale = [S[i, j] * dt * ws(rates[:, j])[w] for j in range(N_RXN)]
            shape = [dt * ws(sum(S[i, j] * rates[:, j] * feats[:, j, m] for j in range(N_RXN)))[w]
                     for m in range(n_feat)]
            mass = [S[i, j] * dt * ws(monomials[:, j])[w] for j in range(N_RXN)]
            rows.append(np.concatenate([slope, offset, scale, shape, mass]))
            y.append(target[w, i])
    return np.array(rows), np.array(y)


@pytest.mark.parametrize("ramp,trapezoid", [(1, False), (3, False), (2, True)])
def test_build_design_matches_dense_reference(ramp, trapezoid):
    rng = np.random.default_rng(6)
    window, dt, n_feat = 7, 0.2, 3
    n_frames = 11 * window + ramp - 1  # the last (shifted) window ends on the last frame
    conc = rng.uniform(0.5, 3.0, (n_frames + 1, N_MET))
    rates = rng.uniform(0.1, 2.0, (n_frames + 1, N_RXN))
    feats = rng.normal(size=(n_frames + 1, N_RXN, n_feat))
    monomials = mass_action_monomials(conc, SUBSTRATES)
    starts = window_starts(n_frames, window, ramp)  # the trapezoid of the last shift reads frame n_frames
    assert starts[-1] + window + ramp - 1 == n_frames
    target = rng.normal(size=(len(starts), N_MET))
    valid = rng.random((len(starts), N_MET)) > 0.2
    design = build_design(target, conc, rates, ShapeFeatures(feats, ["f"] * n_feat), S, starts, valid, window, dt,
                          monomials, ramp, trapezoid)
    X, y = naive_design(target, conc, rates, feats, starts, valid, window, dt, monomials, ramp, trapezoid)
    np.testing.assert_allclose(design.X.toarray(), X, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(design.y, y)
    met, win = np.nonzero(valid.T)
    np.testing.assert_array_equal(design.rows_met, met)
    np.testing.assert_array_equal(design.rows_win, win)
    # column blocks in the documented order
    assert design.X.shape[1] == 2 * N_MET + 2 * N_RXN + n_feat
    assert (design.slope_cols, design.offset_cols) == (slice(0, N_MET), slice(N_MET, 2 * N_MET))
    assert design.reaction_cols == slice(2 * N_MET, 2 * N_MET + N_RXN)
    assert design.shape_cols == slice(2 * N_MET + N_RXN, 2 * N_MET + N_RXN + n_feat)
    assert design.nuisance_cols == slice(2 * N_MET, X.shape[1])
    without = build_design(target, conc, rates, ShapeFeatures(feats, ["f"] * n_feat), S, starts, valid, window, dt,
                           None, ramp, trapezoid)
    np.testing.assert_allclose(without.X.toarray(), X[:, : -N_RXN], rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- normal equations


def _random_design(rng, n_rows=120, n_cols=9, zero_col=4):
    """Dense random columns on scales 1e-3..1e3 (column scaling must cope) and one all-zero (unused) column."""
    X = rng.normal(size=(n_rows, n_cols)) * np.logspace(-3, 3, n_cols)[None, :]
    X[:, zero_col] = 0.0
    n_met = 3
    return X, Design(X=sparse.csr_matrix(X), y=np.zeros(n_rows), rows_met=np.arange(n_rows) % n_met,
                     rows_win=np.arange(n_rows) // n_met, n_met=n_met, n_rxn=1, n_shape=n_cols - 2 * n_met - 1)


def test_normal_equations_recover_a_planted_vector_exactly():
    rng = np.random.default_rng(7)
    X, design = _random_design(rng)
    coef = rng.normal(size=X.shape[1]) / np.logspace(-3, 3, X.shape[1])
    coef[4] = 0.0
    y = X @ coef
    got = solve_normal_equations(Design(**{**design.__dict__, "y": y}), ridge=0.0)
    np.testing.assert_allclose(got, coef, rtol=1e-8, atol=1e-12)
    assert got[4] == 0.0  # an unused column gets exactly 0
    # the default ridge (1e-10 on unit-scaled columns) leaves the answer unchanged to ~1e-8
    got = solve_normal_equations(Design(**{**design.__dict__, "y": y}), ridge=Stage1Config().ridge)
    np.testing.assert_allclose(got, coef, rtol=1e-6)


def test_normal_equations_equal_lstsq_on_noisy_weighted_data():
    rng = np.random.default_rng(8)
    X, design = _random_design(rng)
    y = X @ rng.normal(size=X.shape[1]) + rng.normal(size=X.shape[0])
    noisy = Design(**{**design.__dict__, "y": y})
    used = np.r_[0:4, 5 : X.shape[1]]
    expected = np.zeros(X.shape[1])
    expected[used] = np.linalg.lstsq(X[:, used], y, rcond=None)[0]
    np.testing.assert_allclose(solve_normal_equations(noisy, ridge=0.0), expected, rtol=1e-7, atol=1e-12)
    weights = rng.uniform(0.2, 5.0, X.shape[0])
    root = np.sqrt(weights)[:, None]
    expected[used] = np.linalg.lstsq(root * X[:, used], root[:, 0] * y, rcond=None)[0]
    np.testing.assert_allclose(solve_normal_equations(noisy, 0.0, weights), expected, rtol=1e-7, atol=1e-12)


def test_normal_equations_on_a_built_design():
    """The solver on a real build_design output: a planted (slope, offset, scale, shape) vector comes back.

    Without the mass-action block: the feed r4 has no substrate, so its monomial is 1 and its mass-action column
    equals the offset column of m0 (collinear; see the rank-deficient test below)."""
    rng = np.random.default_rng(9)
    n_frames, window, dt, n_feat = 400, 5, 0.1, 2
    conc = rng.uniform(0.5, 3.0, (n_frames + 1, N_MET))
    rates = rng.uniform(0.1, 2.0, (n_frames + 1, N_RXN))
    feats = ShapeFeatures(rng.normal(size=(n_frames + 1, N_RXN, n_feat)), ["a", "b"])
    starts = window_starts(n_frames, window)
    valid = np.ones((len(starts), N_MET), bool)
    zero = np.zeros((len(starts), N_MET))
    design = build_design(zero, conc, rates, feats, S, starts, valid, window, dt)
    coef = rng.normal(size=design.X.shape[1])
    y = design.X @ coef
    got = solve_normal_equations(Design(**{**design.__dict__, "y": y}), ridge=0.0)
    np.testing.assert_allclose(got, coef, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(got, np.linalg.lstsq(design.X.toarray(), y, rcond=None)[0], rtol=1e-6, atol=1e-9)


def test_normal_equations_on_a_rank_deficient_design_still_fit_the_data():
    """With the feed's mass-action column equal to m0's offset column, the split between the two is not
    identified, but the fitted values are the least-squares ones and everything else is recovered."""
    rng = np.random.default_rng(9)
    n_frames, window, dt = 400, 5, 0.1
    conc = rng.uniform(0.5, 3.0, (n_frames + 1, N_MET))
    rates = rng.uniform(0.1, 2.0, (n_frames + 1, N_RXN))
    feats = ShapeFeatures(np.zeros((n_frames + 1, N_RXN, 0)), [])
    starts = window_starts(n_frames, window)
    valid = np.ones((len(starts), N_MET), bool)
    design = build_design(np.zeros((len(starts), N_MET)), conc, rates, feats, S, starts, valid, window, dt,
                          mass_action_monomials(conc, SUBSTRATES))
    X = design.X.toarray()
    feed_mass, offset_m0 = 2 * N_MET + N_RXN + 4, N_MET
    np.testing.assert_allclose(X[:, feed_mass], X[:, offset_m0])  # the collinearity itself
    coef = rng.normal(size=X.shape[1])
    y = X @ coef
    got = solve_normal_equations(Design(**{**design.__dict__, "y": y}), ridge=Stage1Config().ridge)
    np.testing.assert_allclose(X @ got, y, rtol=1e-6, atol=1e-9 * np.abs(y).max())
    others = np.setdiff1d(np.arange(X.shape[1]), [feed_mass, offset_m0])
    np.testing.assert_allclose(got[others], coef[others], rtol=1e-5, atol=1e-8)
    assert got[feed_mass] + got[offset_m0] == pytest.approx(coef[feed_mass] + coef[offset_m0], rel=1e-6)


# ---------------------------------------------------------------- quadratic check


def _library_and_linear_part(rng):
    n_frames, window, dt = 600, 10, 0.1
    c = smooth_positive(rng, n_frames, 1, base=2.0)[:, 0]  # c sweeps 1..3, so 1, c and c^2 are distinguishable
    starts = window_starts(n_frames, window)
    theta = windowed_library(c, starts, window, dt)
    return c, starts, window, dt, theta


def test_windowed_library_integrates_one_c_and_c_squared():
    rng = np.random.default_rng(10)
    c, starts, window, dt, theta = _library_and_linear_part(rng)
    expected = dt * naive_window_sum(np.column_stack([np.ones_like(c), c, c**2]), starts, window)
    np.testing.assert_allclose(theta, expected, rtol=1e-12)
    ramped = windowed_library(c, starts[:-1], window, dt, ramp=3, trapezoid=True)
    np.testing.assert_allclose(ramped, dt * naive_window_sum(np.column_stack([np.ones_like(c), c, c**2]), starts[:-1],
                                                            window, 3, True), rtol=1e-12)


def test_windowed_library_of_several_metabolites_is_each_ones():
    """(frames, n) concentrations give (windows, n, 3): column i is the library of metabolite i alone."""
    rng = np.random.default_rng(14)
    conc = smooth_positive(rng, 600, 4, base=2.0)
    starts = window_starts(600, 10)[:-1]  # room for the ramp and the trapezoid's end frame
    together = windowed_library(conc, starts, 10, 0.1, ramp=2, trapezoid=True)
    assert together.shape == (len(starts), 4, 3)
    for i in range(4):
        np.testing.assert_allclose(together[:, i], windowed_library(conc[:, i], starts, 10, 0.1, ramp=2,
                                                                    trapezoid=True), rtol=1e-14)


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_quadratic_term_is_kept_when_planted_and_dropped_when_absent(seed):
    """The kept-or-dropped rule: the c^2 column, normalised, must carry >= threshold of the target's norm."""
    rng = np.random.default_rng(seed)
    _, _, _, _, theta = _library_and_linear_part(rng)
    threshold = Stage1Config().sindy_threshold
    linear = theta @ np.array([0.6, -0.3, 0.0])  # homeostasis -0.3 (c - 2)
    noise = 1e-4 * np.linalg.norm(linear) / np.sqrt(len(linear)) * rng.normal(size=len(linear))

    def with_share(share):
        """Target whose exact c^2 coefficient on the normalised column is ``share`` of the target's norm."""
        q = share * np.linalg.norm(linear) / np.linalg.norm(theta[:, 2])  # first order; refined below
        for _ in range(20):
            target = linear + q * theta[:, 2]
            q = share * np.linalg.norm(target) / np.linalg.norm(theta[:, 2])
        return linear + q * theta[:, 2] + noise

    assert not needs_quadratic(theta, linear + noise, threshold)
    assert not needs_quadratic(theta, with_share(0.8 * threshold), threshold)
    assert needs_quadratic(theta, with_share(1.25 * threshold), threshold)
    assert needs_quadratic(theta, with_share(1.0), threshold)
    assert not needs_quadratic(theta, np.zeros(len(linear)), threshold)  # nothing to explain
    assert not needs_quadratic(theta[:3], with_share(1.0)[:3], threshold)  # fewer rows than terms


# ---------------------------------------------------------------- noise estimate


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("sd", [0.002, 0.05])
def test_noise_estimate_recovers_a_planted_sd(seed, sd):
    rng = np.random.default_rng(seed)
    smooth = smooth_positive(rng, 1500, 6, base=5.0)
    noisy = smooth + rng.normal(0.0, sd, smooth.shape)
    assert estimate_noise(noisy) == pytest.approx(sd, rel=0.04)
    assert estimate_noise(noisy.astype(np.float32)) == pytest.approx(sd, rel=0.04)


def test_noise_estimate_is_zero_on_smooth_data_and_short_series():
    rng = np.random.default_rng(3)
    smooth = smooth_positive(rng, 1500, 6, base=5.0)
    assert 0.0 <= estimate_noise(smooth) < 1e-5  # amplitude 2.5: a relative 4e-6 at most
    assert estimate_noise(np.full((500, 3), 4.0)) < 1e-12  # rounding only
    line = np.linspace(1.0, 9.0, 500)[:, None] * np.ones((1, 3))
    assert estimate_noise(line) < 1e-12  # the cubic filter reproduces polynomials up to degree 3
    short = rng.normal(size=(3 * NOISE_FILTER_LENGTH - 1, 2))
    assert estimate_noise(short) == 0.0  # too short to tell noise from dynamics


# ---------------------------------------------------------------- window choice


def _noisy(seed, relative, n_frames=1500, base=5.0):
    """Smooth data with median ~ base and Gaussian noise of sd relative * base."""
    rng = np.random.default_rng(seed)
    smooth = smooth_positive(rng, n_frames, 6, base=base)
    return smooth + rng.normal(0.0, relative * base, smooth.shape)


def test_window_is_min_window_and_ramp_one_on_noise_free_data():
    rng = np.random.default_rng(4)
    cfg = Stage1Config()
    assert integral_form(smooth_positive(rng, 1500, 6, base=5.0), cfg) == (cfg.min_window, 1)
    assert integral_form(smooth_positive(rng, 1500, 6, base=5.0), Stage1Config(min_window=17, max_window=40)) == (17, 1)


@pytest.mark.parametrize("factor", [2.0, 3.5])
def test_window_grows_in_proportion_to_the_relative_noise(factor):
    """W = ceil(min_window * relative / reference_relative_noise) inside [min_window, max_window], and the ramp
    switches on once the noise is measurable."""
    cfg = Stage1Config()
    for seed in (0, 1):
        conc = _noisy(seed, factor * cfg.reference_relative_noise)
        window, ramp = integral_form(conc, cfg)
        relative = estimate_noise(conc) / np.median(conc)
        assert window == int(np.ceil(cfg.min_window * relative / cfg.reference_relative_noise))
        assert window == pytest.approx(factor * cfg.min_window, rel=0.08)  # from the planted noise
        assert ramp == cfg.ramp


def test_window_is_capped_by_max_window_and_what_three_windows_leave():
    """The cap lets three windows and their ramp-shifted copies fit, so fit_stage1 accepts every automatic window."""
    cfg = Stage1Config()
    assert integral_form(_noisy(0, 100 * cfg.reference_relative_noise), cfg) == (cfg.max_window, cfg.ramp)
    assert integral_form(_noisy(0, 100 * cfg.reference_relative_noise), Stage1Config(max_window=25))[0] == 25
    short = _noisy(1, 20 * cfg.reference_relative_noise, n_frames=90)  # would be ~200, max_window 60
    assert integral_form(short, cfg) == ((90 - cfg.ramp + 1) // 3, cfg.ramp)
    assert len(window_starts(90, (90 - cfg.ramp + 1) // 3, cfg.ramp)) == 3
    tiny = np.linspace(1.0, 2.0, 16)[:, None] * np.ones((1, 2))  # 15 frames: a third is 5 < min_window
    assert integral_form(tiny, cfg) == (5, 1)


def test_ramp_rule_and_explicit_window():
    """Ramp: cfg.ramp above a tenth of reference_relative_noise, else 1. A window set in the config is used as is."""
    cfg = Stage1Config(ramp=4)
    assert integral_form(_noisy(2, 0.03 * cfg.reference_relative_noise), cfg)[1] == 1
    assert integral_form(_noisy(2, 0.3 * cfg.reference_relative_noise), cfg) == (cfg.min_window, 4)
    fixed = Stage1Config(window=7, ramp=4)
    assert integral_form(_noisy(2, 100 * cfg.reference_relative_noise), fixed) == (7, 4)
    assert integral_form(_noisy(2, 0.0), fixed) == (7, 1)


def test_regression_with_a_constant_feed_recovers_the_other_species_and_flags_the_fed_one():
    """The feed r4 (no substrate) has a constant rate: its scale correction and its mass-action candidate are
    both collinear with m0's offset, so both are dropped; the other species' slopes and offsets are exact."""
    from sysid.stage1.regression import HomeostasisRegression

    n_frames, dt = 1500, 0.05
    k = np.array([0.3, 0.05, 0.2, 0.1, 0.4])
    lam, cb = np.array([0.02, 0.05, 0.03, 0.04]), np.array([2.0, 1.5, 3.0, 2.5])
    conc = np.empty((n_frames + 1, N_MET))
    conc[0] = [1.0, 3.0, 0.5, 4.0]
    for t in range(n_frames):
        v = k * mass_action_monomials(conc[t][None], SUBSTRATES)[0]
        conc[t + 1] = conc[t] + dt * (S @ v - lam * (conc[t] - cb))
    rates = k * mass_action_monomials(conc, SUBSTRATES)
    frozen = FrozenEvaluation(rates=rates, aggregate=np.log(np.maximum(rates, 1e-12)), reaction=rates @ S.T)
    data = Dataset(conc, np.zeros_like(conc), np.zeros((N_MET, 2)), Network(S=S, substrates=SUBSTRATES), dt)
    reg = HomeostasisRegression(window=10, ramp=1, shape_knots=0, n_iterations=2).fit(data, frozen)
    assert reg.collinear_.tolist() == [False, False, False, False, True]
    np.testing.assert_allclose(reg.slope_[1:], -lam[1:], rtol=1e-4)
    np.testing.assert_allclose(reg.offset_[1:], (lam * cb)[1:], rtol=1e-4)
