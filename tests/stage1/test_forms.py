"""Candidate curve forms of stage 1, on synthetic windowed rows with a known law."""

import warnings

import numpy as np
import pytest

from sysid.simulation.homeostasis import HomeostasisLaw
from sysid.stage1.forms import (
    PooledRows,
    ProjectedRss,
    choose_form,
    features,
    fit_form,
    free_to_shape,
    shape_to_free,
    shaped_feature,
    shaped_feature_grad,
)
from sysid.stage1.residuals import window_sum

DT, WINDOW = 0.1, 10


def _rows(law_fn, noise: float = 0.0, seed: int = 0) -> PooledRows:
    """Six metabolites on sine trajectories over different ranges; rows = dt * window sums of h(c) (+ noise)."""
    rng = np.random.default_rng(seed)
    t = np.arange(801) * DT
    centres, amps = np.array([2.0, 4.0, 6.0, 9.0, 14.0, 20.0]), np.array([1.5, 3.0, 4.0, 6.0, 10.0, 18.0])
    conc = np.maximum(centres + amps * np.sin(0.05 * t[:, None] * (1 + np.arange(6)) / 3 + rng.uniform(0, 6, 6)), 0.0)
    starts = np.arange(0, 800 - WINDOW, WINDOW)
    windowed = DT * window_sum(law_fn(conc), starts, WINDOW)
    win, member = np.meshgrid(np.arange(len(starts)), np.arange(6), indexing="ij")
    y = windowed[win.ravel(), member.ravel()]
    y = y + noise * np.std(y) * rng.normal(size=y.shape)
    return PooledRows(conc, y, member.ravel(), win.ravel(), np.ones(len(y)), starts, WINDOW, 1, False, DT)


def _rel_curve_error(curve, law_fn, c):
    true = law_fn(c)
    return np.sqrt(np.mean((curve(c) - true) ** 2)) / np.std(true)


SAT = HomeostasisLaw("saturating", {"lambda": np.array([0.002]), "baseline": np.array([6.0]),
                                   "scale": np.array([2.5])})
HILL = HomeostasisLaw("hill", {"vmax": np.array([0.012]), "scale": np.array([6.0]), "hill": np.array([3.0]),
                               "decay": np.array([0.001])})


@pytest.mark.parametrize("law, form", [(SAT, "saturating"), (HILL, "rational")])
def test_nonlinear_laws_are_recognised_and_recovered(law, form):
    def h(c):
        return law.curve(0, c)

    rows = _rows(h, noise=0.01)
    curve, bics = choose_form(rows)
    assert curve.form == form, bics
    assert _rel_curve_error(curve, h, np.linspace(0.5, 30.0, 60)) < 0.02


def test_a_line_stays_a_line_and_a_cubic_is_found():
    def line(c):
        return -0.001 * (c - 4.0)

    curve, bics = choose_form(_rows(line, noise=0.05))
    assert curve.form == "linear", bics
    np.testing.assert_allclose(curve(np.array([0.0, 10.0])), line(np.array([0.0, 10.0])), rtol=1e-2, atol=1e-5)

    def cubic(c):
        return -1e-3 * (c - 8.0) - 2e-5 * (c - 8.0) ** 3

    curve, bics = choose_form(_rows(cubic, noise=0.01), candidates=("linear", "quadratic", "cubic"))
    assert curve.form == "cubic", bics


def test_extrapolation_continues_the_tangent():
    rows = _rows(lambda c: SAT.curve(0, c))
    curve, _ = choose_form(rows)
    beyond = np.array([curve.hi + 5.0])
    edge = curve(np.array([curve.hi]))
    slope = (curve(np.array([curve.hi])) - curve(np.array([curve.hi - 1e-3]))) / 1e-3
    np.testing.assert_allclose(curve(beyond, extrapolate=True), edge + 5.0 * slope, rtol=1e-3, atol=1e-9)


def test_polynomial_features_come_from_pysindy_in_centred_units():
    c = np.array([[1.0, 2.0], [3.0, 5.0]])
    f = features("cubic", (), 2.0, c)
    np.testing.assert_allclose(f[1, 1], [1.0, 3.0, 9.0, 27.0])


@pytest.mark.parametrize("form, shape", [("saturating", (3.0, 8.0)), ("rational", (6.0, 2.5))])
@pytest.mark.parametrize("ramp, trapezoid", [(1, False), (3, True)])
def test_a_shaped_design_equals_the_window_sums_of_all_its_features(form, shape, ramp, trapezoid):
    """The shape-free columns are windowed once and cached; the design must be the same numbers, bit for bit."""
    base = _rows(lambda c: -0.002 * (c - 5.0))
    rows = PooledRows(base.conc, base.y, base.member, base.win, base.w, base.starts, WINDOW, ramp, trapezoid, DT)
    per_frame = features(form, shape, 5.0, rows.conc)
    t, m, p = per_frame.shape
    windowed = DT * window_sum(per_frame.reshape(t, m * p), rows.starts, WINDOW, ramp, trapezoid).reshape(-1, m, p)
    expected = windowed[rows.win, rows.member]
    for _ in range(2):  # the second call reads the cache
        assert np.array_equal(rows.design(form, shape, 5.0), expected)
    # one member: its columns are windowed together, as the single shaped column alone would add in another order
    one = PooledRows(rows.conc[:, :1], rows.y, np.zeros_like(rows.member), rows.win, rows.w, rows.starts, WINDOW,
                     ramp, trapezoid, DT)
    alone = DT * window_sum(features(form, shape, 5.0, one.conc).reshape(t, p), rows.starts, WINDOW, ramp, trapezoid)
    assert np.array_equal(one.design(form, shape, 5.0), alone[rows.win])


@pytest.mark.parametrize("form, shape", [("saturating", (2.5, 6.0)), ("rational", (6.0, 3.0))])
def test_shape_gradient_matches_central_differences_in_free_coordinates(form, shape):
    c = np.array([0.0, 0.3, 2.0, 5.9, 6.0, 8.0, 30.0])
    x = shape_to_free(form, shape)
    np.testing.assert_allclose(free_to_shape(form, x), shape)
    got = shaped_feature_grad(form, shape, c)
    eps = 1e-6
    for k in range(2):
        step = np.zeros(2)
        step[k] = eps
        fd = (shaped_feature(form, free_to_shape(form, x + step), c)
              - shaped_feature(form, free_to_shape(form, x - step), c)) / (2 * eps)
        np.testing.assert_allclose(got[:, k], fd, rtol=1e-6, atol=1e-9)


def test_a_member_subset_keeps_its_rows_and_the_shape_search_uses_it_only_when_there_are_more_members():
    rows = _rows(lambda c: SAT.curve(0, c))
    assert rows.subset(6) is rows
    sub = rows.subset(3)
    kept = np.unique(np.linspace(0, 5, 3).round().astype(int))
    np.testing.assert_array_equal(sub.conc, rows.conc[:, kept])
    for k, member in enumerate(kept):
        np.testing.assert_array_equal(sub.y[sub.member == k], rows.y[rows.member == member])
        np.testing.assert_array_equal(sub.win[sub.member == k], rows.win[rows.member == member])
    shape = (2.5, 6.0)
    np.testing.assert_allclose(sub.design("saturating", shape, 5.0),
                               rows.design("saturating", shape, 5.0)[np.isin(rows.member, kept)])


@pytest.mark.parametrize("form, shapes", [("saturating", [(2.5, 6.0), (0.4, 3.0), (80.0, 10.0)]),
                                          ("rational", [(6.0, 3.0), (2.0, 0.7), (15.0, 8.0)])])
def test_the_projected_rss_of_a_shape_is_the_least_squares_rss_of_its_design(form, shapes):
    rows = _rows(lambda c: HILL.curve(0, c), noise=0.05, seed=3)
    rows = PooledRows(rows.conc, rows.y, rows.member, rows.win, np.linspace(0.5, 2.0, len(rows.y)), rows.starts,
                      WINDOW, 1, False, DT)  # unequal weights
    want = [rows.solve(rows.design(form, shape, 9.0))[1] for shape in shapes]
    np.testing.assert_allclose(ProjectedRss(rows, form, 9.0)(shapes), want, rtol=1e-9)


def test_the_saturating_feature_is_k_tanh():
    c = np.linspace(-5.0, 40.0, 301)
    np.testing.assert_allclose(shaped_feature("saturating", (2.5, 6.0), c), 2.5 * np.tanh((c - 6.0) / 2.5),
                               rtol=0, atol=1e-14)
    assert shaped_feature("saturating", (2.5, 6.0), np.array(6.0)).shape == ()


def test_a_shape_search_that_starts_on_the_edge_of_its_box_refines_it_quietly():
    """On a noise-free line the saturating form's best grid shape is its line limit (K at the box's largest);
    the search must start there (before, the start's round trip through the shape stepped past the edge, so the
    start cost inf: numpy warned on the user's screen and the grid point stood unrefined)."""
    rows = _rows(lambda c: -0.001 * (c - 4.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        curve = fit_form(rows, "saturating")
    c = rows.conc.ravel()
    lo, hi = np.percentile(c, [1, 99])
    assert 0.02 * (hi - lo) <= curve.shape[0] <= 100.0 * (hi - lo) and lo <= curve.shape[1] <= hi
    assert curve.rss < 1e-10 * np.sum(rows.y**2)  # the line is (nearly) inside the form's reach
