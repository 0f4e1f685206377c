"""Shared (slope, offset) per group by generalised least squares (sysid.stage1.shared)."""

import numpy as np

from sysid.stage1.grouping import find_groups, robust_weighted_mean
from sysid.stage1.shared import shared_estimates

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
