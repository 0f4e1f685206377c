"""Each group's slope and offset as one value its members share, from their correlated estimates.

The output-error fit estimates every metabolite's (slope, offset) together with
the per-reaction scales, so the estimates' errors are correlated: within a
metabolite between its slope and offset (its data pin slope * c + offset near
its typical concentration far better than either alone), and across
metabolites through the scales of the reactions they share. When the members
of a group share one (slope, offset), the best linear unbiased estimate of it
is generalised least squares with the estimates' full covariance: to first
order this is the joint fit with the members' parameters tied, and it reaches
the Cramer-Rao bound for a shared slope when the members' estimates reach
theirs. Means taken coordinate by coordinate, with each estimate's own variance,
throw both correlations away.

A member far from its group (assigned to it wrongly, or following another law)
must not pull it: its errors are widened by the Student-t weight of its
distance from the shared value, and the estimate is iterated (iteratively
reweighted least squares).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg

T_DOF = 4.0  # degrees of freedom of the Student-t weights, here and in sysid.stage1.grouping (a common robust choice)
ITERATIONS = 5


@dataclass(frozen=True, eq=False)
class SharedEstimates:
    values: np.ndarray  # (n_groups, 2) slope and offset; NaN for a group without usable members
    cov: np.ndarray  # (n_groups, 2, 2) their error covariance (infinite diagonal for a group without members)


def shared_estimates(points: np.ndarray, cov: np.ndarray, labels: np.ndarray, members: np.ndarray,
                     n_groups: int) -> SharedEstimates:
    """Generalised least squares for one (slope, offset) per group from ``points`` (n, 2), whose errors have the
    covariance ``cov`` (2n, 2n: all slopes, then all offsets), using the ``members`` (bool, n) only, with
    Student-t weights against outlying members."""
    n = len(points)
    idx = np.nonzero(_usable(points, cov, members))[0]
    sigma = cov[np.ix_(np.concatenate([idx, n + idx]), np.concatenate([idx, n + idx]))]
    values, out_cov = np.full((n_groups, 2), np.nan), np.tile(np.diag([np.inf, np.inf]), (n_groups, 1, 1))
    if not idx.size or not np.all(np.isfinite(sigma)):
        return SharedEstimates(values, out_cov)
    theta = np.concatenate([points[idx, 0], points[idx, 1]])
    used = np.unique(labels[idx])
    column = np.searchsorted(used, labels[idx])
    design = np.zeros((2 * len(idx), 2 * len(used)))
    design[np.arange(len(idx)), column] = 1.0
    design[len(idx) + np.arange(len(idx)), len(used) + column] = 1.0
    # worked on the correlation scale (slopes and offsets differ in size; widening an error leaves the
    # correlations as they are), with a pseudo-inverse: a covariance from an information's pseudo-inverse may
    # be singular
    sd = np.sqrt(np.diag(sigma))
    precision = linalg.pinvh(sigma / np.outer(sd, sd))
    weight = np.ones(len(idx))
    for _ in range(ITERATIONS):
        beta, _ = _gls(design, precision, sd / np.tile(np.sqrt(weight), 2), theta)
        weight = _t_weights(theta - design @ beta, sigma, len(idx))
    beta, beta_cov = _gls(design, precision, sd / np.tile(np.sqrt(weight), 2), theta)
    k = len(used)
    values[used] = np.column_stack([beta[:k], beta[k:]])
    pairs = np.column_stack([np.arange(k), k + np.arange(k)])
    out_cov[used] = beta_cov[pairs[:, :, None], pairs[:, None, :]]
    return SharedEstimates(values, out_cov)


def member_jackknife(points: np.ndarray, cov: np.ndarray, labels: np.ndarray, members: np.ndarray,
                     n_groups: int) -> np.ndarray:
    """(n_groups, 2) jackknife variance of each group's shared (slope, offset) (:func:`shared_estimates`) over
    its members: (m - 1) / m times the sum of squares of the values' changes as each of its m usable members
    is left out in turn. 0 for a group with fewer than 3."""
    use = _usable(points, cov, members)
    left_out = np.full((len(points), 2), np.nan)
    for i in np.nonzero(use)[0]:
        without = use.copy()
        without[i] = False
        left_out[i] = shared_estimates(points, cov, labels, without, n_groups).values[labels[i]]
    variance = np.zeros((n_groups, 2))
    for g in range(n_groups):
        values = left_out[use & (labels == g)]
        m = len(values)
        if m >= 3 and np.all(np.isfinite(values)):
            variance[g] = (m - 1) / m * np.sum((values - values.mean(axis=0)) ** 2, axis=0)
    return variance


def _usable(points: np.ndarray, cov: np.ndarray, members: np.ndarray) -> np.ndarray:
    """The ``members`` with finite estimates and finite, positive variances."""
    n = len(points)
    variance = np.diag(cov)
    return (np.asarray(members, bool) & np.all(np.isfinite(points), axis=1) & np.isfinite(variance[:n])
            & np.isfinite(variance[n:]) & (variance[:n] > 0) & (variance[n:] > 0))


def _gls(design: np.ndarray, precision: np.ndarray, sd: np.ndarray, theta: np.ndarray
         ) -> tuple[np.ndarray, np.ndarray]:
    """Estimate and covariance of beta in theta = design @ beta + e, where e / sd has the inverse correlation
    ``precision``."""
    scaled = design / sd[:, None]
    beta_cov = linalg.pinvh(scaled.T @ precision @ scaled)
    return beta_cov @ (scaled.T @ precision @ (theta / sd)), beta_cov


def _t_weights(residual: np.ndarray, sigma: np.ndarray, m: int) -> np.ndarray:
    """Student-t weight (T_DOF + 2) / (T_DOF + r^2), capped at 1, of each member's squared Mahalanobis distance
    r^2 under its own 2x2 error covariance."""
    i = np.arange(m)
    own = np.empty((m, 2, 2))
    own[:, 0, 0], own[:, 1, 1] = sigma[i, i], sigma[m + i, m + i]
    own[:, 0, 1] = own[:, 1, 0] = sigma[i, m + i]
    r2 = squared_distances(np.column_stack([residual[:m], residual[m:]]), own)
    # a block indefinite by rounding (as the output error's float32 information sums once gave) must not give a
    # negative weight
    return np.minimum((T_DOF + 2.0) / (T_DOF + np.maximum(r2, 0.0)), 1.0)


def squared_distances(diff: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Each row's squared Mahalanobis distance diff^T cov^+ diff under its own covariance (m, d, d); a
    pseudo-inverse: a member's slope and offset can be all but perfectly correlated."""
    return np.einsum("mi,mi->m", diff, (np.linalg.pinv(cov, hermitian=True) @ diff[..., None])[..., 0])
