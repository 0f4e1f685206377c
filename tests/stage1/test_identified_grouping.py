"""Grouping uses identified metabolites only; flagged ones get their most likely group."""

from __future__ import annotations

import numpy as np

from sysid.stage1.grouping import find_groups
from sysid.stage1.identifiability import imprecise


def _points(seed: int):
    rng = np.random.default_rng(seed)
    centres = np.array([[-0.001, 0.004], [-0.002, 0.012]])
    labels = np.repeat([0, 1], 20)
    points = centres[labels] + rng.normal(0, [2e-5, 5e-5], size=(40, 2))
    cov = np.tile(np.diag([1e-10, 1e-9]), (40, 1, 1))
    return points, cov, labels


def test_flagged_points_neither_shape_nor_move_groups():
    for seed in (0, 1):
        points, cov, labels = _points(seed)
        clean = find_groups(points, cov, seed=0)
        # three flagged metabolites far off (a proton-like outlier between groups and beyond)
        bad = np.array([[-0.0015, 0.008], [-0.004, 0.03], [-0.00105, 0.0041]])
        all_points = np.vstack([points, bad])
        all_cov = np.concatenate([cov, np.tile(np.diag([1e-8, 1e-7]), (3, 1, 1))])
        identified = np.r_[np.ones(40, bool), np.zeros(3, bool)]
        flagged = find_groups(all_points, all_cov, seed=0, trusted=identified)
        np.testing.assert_array_equal(flagged.labels[:40], clean.labels)
        np.testing.assert_allclose(flagged.means, clean.means)
        np.testing.assert_allclose(flagged.pooled[:40], clean.pooled)
        # the one next to group 0's centre joins it; the far one joins the group it is likeliest under
        group_of_type0 = clean.labels[0]
        assert flagged.labels[42] == group_of_type0
        assert flagged.labels[41] == clean.labels[-1]
        assert np.all(np.isfinite(flagged.pooled))


def test_imprecise_compares_joint_errors_with_the_typical_slope():
    slope = np.array([-1e-3, -2e-3, -1e-3, -2e-3, np.nan])
    se = np.array([1e-6, 1e-6, 9e-4, 1e-6, 1e-6])
    np.testing.assert_array_equal(imprecise(se, slope), [False, False, True, False, True])
