"""Grouping uses identified metabolites only; flagged ones get their most likely group."""

from __future__ import annotations

import numpy as np

from sysid.stage1.grouping import _merge_inseparable, find_groups
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


def test_imprecise_trusted_points_do_not_create_a_group_when_others_are_flagged():
    """The mixture is fitted to the trusted metabolites whose errors are typical; trusted ones with errors
    far above the median are assigned afterwards, so a cluster of imprecise estimates creates no group of its
    own. That must hold also when some metabolites are not trusted (their infinite errors once made every
    metabolite count as imprecise, and the imprecise cluster became a third group)."""
    points, cov, labels = _points(0)
    rng = np.random.default_rng(5)
    # eight trusted but imprecise metabolites (errors 100x the others') clustered away from both groups
    cluster = np.array([-0.004, 0.03]) + rng.normal(0, [1e-4, 5e-4], size=(8, 2))
    flagged = np.array([[np.nan, np.nan], [-0.0015, 0.008]])
    all_points = np.vstack([points, cluster, flagged])
    all_cov = np.concatenate([cov, np.tile(np.diag([1e-6, 1e-5]), (8, 1, 1)),
                              np.tile(np.diag([np.inf, np.inf]), (2, 1, 1))])
    trusted = np.r_[np.ones(48, bool), np.zeros(2, bool)]
    with_flags = find_groups(all_points, all_cov, seed=0, trusted=trusted)
    without = find_groups(all_points[:48], all_cov[:48], seed=0)
    assert len(np.unique(without.labels)) == 2
    np.testing.assert_array_equal(with_flags.labels[:48], without.labels)
    np.testing.assert_allclose(with_flags.means, without.means)
    assert np.array_equal(with_flags.labels[:40] == with_flags.labels[0], labels == 0)


def _labelled(slopes: dict[float, int]):
    """Near-exact points (noise-free fits: 1e-6 relative scatter) around the given slopes, offset -4 * slope,
    standardised as the grouping does, with one label per slope."""
    rng = np.random.default_rng(3)
    slope = np.concatenate([np.full(n, s) for s, n in slopes.items()])
    labels = np.repeat(np.arange(len(slopes)), list(slopes.values()))
    points = np.column_stack([slope, -4.0 * slope]) * (1.0 + rng.normal(0.0, 1e-6, (len(slope), 2)))
    centre, spread = np.median(points, axis=0), np.std(points, axis=0)
    return (points - centre) / spread, labels, centre / spread


def test_precise_groups_closer_than_the_resolution_are_merged():
    # eight metabolites 0.07% off their type (salmonella without noise had such a group): not a group of their own
    z, labels, shift = _labelled({-0.001: 40, -0.0010007: 8, -0.002: 40})
    finite = np.ones(len(z), bool)
    assert len(np.unique(_merge_inseparable(z, labels, finite))) == 3  # the spreads alone separate them
    assert len(np.unique(_merge_inseparable(z, labels, finite, shift=shift))) == 2
    # 3% apart is a real difference: kept
    z, labels, shift = _labelled({-0.001: 40, -0.00103: 40, -0.002: 40})
    assert len(np.unique(_merge_inseparable(z, labels, np.ones(len(z), bool), shift=shift))) == 3


def test_a_small_group_tighter_than_its_members_errors_is_not_a_group():
    # 40 points scattered as their errors say (sd 0.5) and 5 points 3 away whose scatter (0.05) is far below
    # their errors (1.0): their tightness is chance, and 3 is within 4 spreads of the big group
    rng = np.random.default_rng(0)
    z = np.concatenate([rng.normal(0.0, 0.5, (40, 2)), np.array([3.0, 0.0]) + rng.normal(0.0, 0.05, (5, 2))])
    labels = np.repeat([0, 1], [40, 5])
    se = np.concatenate([np.full((40, 2), 0.5), np.full((5, 2), 1.0)])
    finite = np.ones(len(z), bool)
    assert len(np.unique(_merge_inseparable(z, labels, finite))) == 2  # by their scatter alone: apart
    assert len(np.unique(_merge_inseparable(z, labels, finite, member_se=se))) == 1
    # the same small group with errors as small as its scatter is a group
    se[40:] = 0.05
    assert len(np.unique(_merge_inseparable(z, labels, finite, member_se=se))) == 2


def test_weighted_centre_uses_the_precise_members():
    """Members with standard errors spread over 30x around a shared truth: the precision-weighted centre's
    per-group answer is closer to the truth than the median's (20 draws), the groups are the same."""
    centres = np.array([[-0.001, 0.004], [-0.002, 0.012]])
    labels = np.repeat([0, 1], 40)
    errors = {False: [], True: []}
    for seed in range(20):
        rng = np.random.default_rng(seed)
        se = np.array([1e-4, 4e-4]) * np.exp(rng.uniform(np.log(1 / 30), 0, size=(80, 1)))
        points = centres[labels] + se * rng.standard_normal((80, 2))
        cov = np.stack([np.diag(s**2) for s in se])
        fits = {w: find_groups(points, cov, seed=0, max_groups=3, weighted_centre=w) for w in (False, True)}
        np.testing.assert_array_equal(fits[True].labels, fits[False].labels)
        for w, fit in fits.items():
            answer = np.stack([fit.pooled[labels == k].mean(axis=0) for k in (0, 1)])
            errors[w].append(np.abs(answer / centres - 1))
    median, weighted = (np.sqrt(np.mean(np.square(errors[w]), axis=0)) for w in (False, True))
    assert np.all(weighted < 0.8 * median), (weighted, median)  # 0.63-0.73 of it
