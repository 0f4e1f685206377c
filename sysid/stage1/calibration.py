"""Calibrated intervals: per-metabolite covariances rescaled so that their 95% intervals hold.

The regression's standard errors assume that its error model is right: the
windowed residuals are the measurement noise and nothing else. Under noisy
data that is not so (the frozen model and its corrections are evaluated at
noisy states, and a few metabolites with little range carry errors far beyond
their standard errors), and the intervals come out too narrow. The data say by
how much. The members of a group share their law (what grouping assumes), so
each trusted member's deviation from its group's robust centre, in units of its
own standard error, shows the estimator's real spread. Per coordinate (slope,
offset) the factor phi is the one that puts COVERAGE of these deviations within
+-1.96 phi se. phi is never below 1: the model-based intervals are widened,
never narrowed. When a group's members differ in truth, phi also absorbs that
spread, and the intervals are conservative.

A group's shared value (:mod:`sysid.stage1.shared`) pools some fifty members, and
its model-based error counts only what the error model describes. A member
placed in the wrong group, or errors the model misses that many members share,
move the pooled value by more than that error says: on sparse, noisy records
(benchmarks/noise_bench.py, case (c)) the calibrated group intervals covered
0.85-0.88 of the truths. So each coordinate's standard error is also raised to
the jackknife over the group's members (the spread of the value as each member
is left out in turn) where that is larger (:func:`widened`); the larger of the
two is reported.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

COVERAGE = 0.95
MIN_MEMBERS = 10  # trusted members needed to estimate phi (else 1)


def dispersion(points: np.ndarray, cov: np.ndarray, labels: np.ndarray, trusted: np.ndarray) -> np.ndarray:
    """(d,) factor per coordinate by which the standard errors are too small (>= 1)."""
    se = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))
    ok = np.asarray(trusted, bool) & np.all(np.isfinite(points), axis=1) & np.all(np.isfinite(se) & (se > 0), axis=1)
    deviations = []
    for g in np.unique(labels[ok]):
        member = ok & (labels == g)
        if member.sum() >= 3:
            deviations.append((points[member] - np.median(points[member], axis=0)) / se[member])
    if not deviations or sum(len(d) for d in deviations) < MIN_MEMBERS:
        return np.ones(points.shape[1])
    z = np.abs(np.concatenate(deviations))
    return np.maximum(np.quantile(z, COVERAGE, axis=0) / norm.ppf(0.5 + COVERAGE / 2), 1.0)


def calibrated(cov: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """The covariances with each coordinate's standard error multiplied by phi."""
    return cov * phi[None, :, None] * phi[None, None, :]


def widened(cov: np.ndarray, variance: np.ndarray) -> np.ndarray:
    """The covariances (k, d, d) with each coordinate's standard error raised to sqrt(``variance``) (k, d) where
    that is larger; the correlations stay."""
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.sqrt(np.fmax(np.nan_to_num(variance / np.diagonal(cov, axis1=1, axis2=2)), 1.0))
    return cov * factor[:, :, None] * factor[:, None, :]
