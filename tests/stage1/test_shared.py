"""Shared (slope, offset) per group by generalised least squares (sysid.stage1.shared)."""

import numpy as np

from sysid.stage1.calibration import widened
from sysid.stage1.grouping import find_groups, robust_weighted_mean
from sysid.stage1.shared import member_jackknife, shared_estimates

TRUE = np.array([[-0.02, 0.03], [-0.2, 0.1]])  # (slope, offset) of groups 0 and 1


def _setting(rng, n=60, slope_sd=0.05):
    """Members whose data pin slope * c_i + offset (c_i their typical level) far better than the slope, with
    errors correlated across metabolites through a few shared factors (as per-reaction scales do)."""
    labels = np.repeat([0, 1], n // 2)
    level = rng.uniform(0.5, 3.0, n)
    # per metabolite: slope error a (sd slope_sd), offset error -a * level + b (sd 0.002)
    loading = np.zeros((2 * n, 2 * n + 5))
    loading[np.arange(n), np.arange(n)] = slope_sd
    loading[n + np.arange(n), np.arange(n)] = -slope_sd * level
    loading[n + np.arange(n), n + np.arange(n)] = 0.002
    factors = rng.normal(0.0, 0.01, (n, 5))  # shared nuisance factors
    loading[:n, 2 * n :] = factors
    loading[n:, 2 * n :] = -factors * level[:, None]
    return labels, loading, loading @ loading.T


def _draw(rng, labels, loading):
    error = loading @ rng.normal(size=loading.shape[1])
    n = len(labels)
    return TRUE[labels] + np.column_stack([error[:n], error[n:]])


def test_standard_errors_hold_and_beat_coordinate_means():
    rng = np.random.default_rng(0)
    labels, loading, cov = _setting(rng)
    n = len(labels)
    members = np.ones(n, bool)
    gls, own, ses = [], [], []
    for _ in range(100):
        points = _draw(rng, labels, loading)
        est = shared_estimates(points, cov, labels, members, 2)
        gls.append(est.values[0, 0] - TRUE[0, 0])
        ses.append(np.sqrt(est.cov[0, 0, 0]))
        m = labels == 0
        own.append(robust_weighted_mean(points[m, 0], np.diag(cov)[:n][m])[0] - TRUE[0, 0])
    rmse, rmse_own = np.sqrt(np.mean(np.square(gls))), np.sqrt(np.mean(np.square(own)))
    assert 0.8 < rmse / np.median(ses) < 1.25  # its standard error holds
    assert rmse < 0.2 * rmse_own  # the slope-offset correlation carries the slope


def test_an_outlying_member_does_not_pull_its_group():
    rng = np.random.default_rng(1)
    labels, loading, cov = _setting(rng)
    points = _draw(rng, labels, loading)
    members = np.ones(len(labels), bool)
    clean = shared_estimates(points, cov, labels, members, 2)
    moved = points.copy()
    moved[3] += [1.0, -1.0]  # hundreds of standard errors away
    est = shared_estimates(moved, cov, labels, members, 2)
    se = np.sqrt(np.diagonal(clean.cov, axis1=1, axis2=2))
    assert np.all(np.abs(est.values - clean.values) < 0.5 * se)


def test_a_group_without_members_has_no_value():
    rng = np.random.default_rng(2)
    labels, loading, cov = _setting(rng)
    points = _draw(rng, labels, loading)
    est = shared_estimates(points, cov, labels, labels == 0, 2)
    assert np.all(np.isfinite(est.values[0])) and np.all(np.isnan(est.values[1]))
    assert np.all(np.isinf(np.diagonal(est.cov[1])))


def test_find_groups_centres_on_the_shared_values():
    rng = np.random.default_rng(3)
    labels, loading, cov = _setting(rng, slope_sd=0.005)
    points = _draw(rng, labels, loading)
    n = len(labels)
    pairs = np.stack([np.arange(n), n + np.arange(n)], axis=1)
    own = cov[pairs[:, :, None], pairs[:, None, :]]
    grouping = find_groups(points, own, seed=0, max_groups=3, weighted_centre=True, estimate_cov=cov)
    expected = shared_estimates(points, cov, grouping.labels, np.ones(n, bool), 2)
    assert grouping.means_cov is not None
    np.testing.assert_allclose(grouping.means, expected.values, rtol=1e-9)
    assert np.all(grouping.means_cov[:, 0, 0] >= expected.cov[:, 0, 0] * (1 - 1e-12))  # widened, never narrowed
    assert find_groups(points, own, seed=0, max_groups=3).means_cov is None


def _intervals(rng, labels, loading, cov, draws):
    """Over ``draws`` draws of the members' estimates: the share of group 0's 95% slope intervals that hold
    the truth, model-based and widened to the jackknife, and the median ratio of the jackknife variance to the
    model's."""
    members = np.ones(len(labels), bool)
    hits, ratio = [], []
    for _ in range(draws):
        points = _draw(rng, labels, loading)
        est = shared_estimates(points, cov, labels, members, 2)
        jackknife = member_jackknife(points, cov, labels, members, 2)
        wide = widened(est.cov, jackknife)
        error = abs(est.values[0, 0] - TRUE[0, 0])
        hits.append([error < 1.96 * np.sqrt(c[0, 0, 0]) for c in (est.cov, wide)])
        ratio.append(jackknife[0, 0] / est.cov[0, 0, 0])
    return (*np.mean(hits, axis=0), float(np.median(ratio)))


def test_the_jackknife_agrees_with_an_error_model_that_holds():
    """Estimates drawn from the stated covariance: the jackknife variance is near the model's, and widening to it
    keeps the intervals near 95%."""
    rng = np.random.default_rng(4)
    labels, loading, cov = _setting(rng, n=30)
    model, wide, ratio = _intervals(rng, labels, loading, cov, 60)
    assert 0.6 < ratio < 1.5  # seeds 4-7: 0.82-1.02
    assert model >= 0.88 and wide >= model  # seeds 4-7: model 0.90-0.98, widened 0.95-0.98


def test_the_jackknife_widens_intervals_whose_members_err_more_than_stated():
    """The members' own errors are three times what their stated covariance says (what errors the model misses,
    or misplaced members, look like to the pooled value): the model-based intervals cover far less than 95%,
    the widened ones near it."""
    rng = np.random.default_rng(5)
    labels, loading, cov = _setting(rng, n=30)
    worse = loading.copy()
    worse[:, : 2 * len(labels)] *= 3.0  # the members' own errors; the shared factors as stated
    model, wide, ratio = _intervals(rng, labels, worse, cov, 60)
    assert model < 0.7 and wide > 0.78 and ratio > 3.0  # seeds 4-7: model 0.48-0.63, widened 0.80-0.92, ratio 4.5-5.2
