"""Calibrated intervals and robust pooling: standard errors widened to the spread within groups."""

from __future__ import annotations

import numpy as np

from sysid.stage1.calibration import calibrated, dispersion
from sysid.stage1.grouping import find_groups
from sysid.stage1.result import HomeostasisFit


def _two_groups(seed: int, n: int = 200, true_factor: float = 3.0):
    """Two groups of points whose real errors are true_factor times their stated standard errors."""
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1], n // 2)
    centres = np.array([[-1.0, 4.0], [-2.0, 12.0]])
    se = rng.uniform(0.02, 0.1, (n, 2))
    points = centres[labels] + true_factor * se * rng.normal(size=(n, 2))
    cov = np.zeros((n, 2, 2))
    cov[:, 0, 0], cov[:, 1, 1] = se[:, 0] ** 2, se[:, 1] ** 2
    return points, cov, labels, centres


def test_dispersion_recovers_how_much_the_errors_are_understated():
    for seed in (0, 1, 2):
        points, cov, labels, centres = _two_groups(seed)
        phi = dispersion(points, cov, labels, np.ones(len(points), bool))
        np.testing.assert_allclose(phi, 3.0, rtol=0.2)
        se = np.sqrt(np.diagonal(calibrated(cov, phi), axis1=1, axis2=2))
        coverage = np.mean(np.abs(points - centres[labels]) <= 1.96 * se, axis=0)
        assert np.all((coverage > 0.9) & (coverage < 0.99))


def test_dispersion_never_narrows_honest_errors():
    points, cov, labels, _ = _two_groups(5, true_factor=0.5)
    np.testing.assert_array_equal(dispersion(points, cov, labels, np.ones(len(points), bool)), 1.0)
    # too few trusted members to say: no change
    few = np.zeros(len(points), bool)
    few[:5] = True
    np.testing.assert_array_equal(dispersion(*_two_groups(5)[:3], few), 1.0)


def test_pooling_moves_a_confident_outlier_to_its_group():
    points, cov, labels, centres = _two_groups(7, true_factor=1.0)
    points[0] = [-1.6, 4.0]  # group 0, slope 12 standard errors away, with a small error
    cov[0] = np.diag([0.05, 0.05]) ** 2
    grouping = find_groups(points, cov, seed=0)
    group = grouping.labels[0]
    assert abs(grouping.pooled[0, 0] - grouping.means[group, 0]) < 0.1
    assert abs(grouping.pooled[0, 0] + 1.6) > 0.4


def test_group_estimate_down_weights_an_outlier_and_has_an_honest_error():
    rng = np.random.default_rng(3)
    n = 60
    se = np.full(n, 0.1)
    slope = -1.0 + se * rng.normal(size=n)
    slope[0] = 3.0  # 40 standard errors away
    fit = HomeostasisFit(slope=slope, offset=np.zeros(n), slope_se=se, offset_se=se, groups=np.zeros(n, int),
                         raw_slope=slope, raw_offset=np.zeros(n))
    mean, _, mean_se, _ = fit.group_estimates()
    assert abs(mean[0] + 1.0) < 3 * 0.1 / np.sqrt(n - 1)
    # the t weights also trim members a standard error or two away: a little above the plain mean's error
    assert 0.1 / np.sqrt(n - 1) <= mean_se[0] < 1.15 * 0.1 / np.sqrt(n - 1)


def test_calibrated_pooling_keeps_the_groups():
    """Widened errors change the pooling, never the groups (a curved regulation's lines spread its members far
    beyond their errors: widening them by that spread would dissolve the groups)."""
    points, cov, labels, _ = _two_groups(11, true_factor=10.0)
    plain = find_groups(points, cov, seed=0)
    widened = find_groups(points, cov, seed=0, calibrate=True)
    assert np.all(widened.error_scale > 5) and np.all(plain.error_scale == 1)
    np.testing.assert_array_equal(plain.labels, widened.labels)
    moved = np.abs(widened.pooled - points).mean(axis=0)
    assert np.all(moved > np.abs(plain.pooled - points).mean(axis=0))  # pooled harder to the group centres
