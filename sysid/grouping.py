"""Behavioural groups of metabolites from their stage-1 fits, number of groups chosen by BIC.

Each metabolite is a point (slope, offset) with its own standard errors. A
Gaussian mixture is fitted for 1..max_groups components on standardised
points and the number with the lowest BIC is kept; each metabolite is then
assigned by likelihood under each group's covariance widened by its own
uncertainty, so poorly determined metabolites do not pull groups apart.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import multivariate_normal
from sklearn.mixture import GaussianMixture

N_INIT = 5


def _standardise(points: np.ndarray, se: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    centre = np.median(points, axis=0)
    spread = np.std(points, axis=0)
    spread[spread == 0] = 1.0
    return (points - centre) / spread, se / spread


def choose_mixture(z: np.ndarray, max_groups: int, seed: int) -> GaussianMixture:
    """Gaussian mixture with the lowest BIC over 1..max_groups components."""
    best, best_bic = None, np.inf
    for k in range(1, min(max_groups, len(z)) + 1):
        gm = GaussianMixture(k, covariance_type="full", n_init=N_INIT, random_state=seed, reg_covar=1e-6).fit(z)
        bic = gm.bic(z)
        if bic < best_bic:
            best, best_bic = gm, bic
    return best


def assign(z: np.ndarray, z_se: np.ndarray, gm: GaussianMixture) -> np.ndarray:
    """Most likely group of each point, with its own errors added to the group covariance."""
    logp = np.empty((len(z), gm.n_components))
    for k in range(gm.n_components):
        for i in range(len(z)):
            cov = gm.covariances_[k] + np.diag(z_se[i] ** 2)
            logp[i, k] = np.log(gm.weights_[k]) + multivariate_normal.logpdf(z[i], gm.means_[k], cov)
    return np.argmax(logp, axis=1)


def relabel(groups: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Number the groups 0..k-1 in increasing order of ``key``'s group mean (stable output)."""
    present = np.unique(groups)
    order = present[np.argsort([key[groups == g].mean() for g in present])]
    mapping = {g: i for i, g in enumerate(order)}
    return np.array([mapping[g] for g in groups], np.int64)


def find_groups(
    slope: np.ndarray, offset: np.ndarray, slope_se: np.ndarray, offset_se: np.ndarray,
    *, max_groups: int = 8, seed: int = 0,
) -> np.ndarray:
    """Group labels 0..k-1 (ordered by mean slope, steepest regulation last)."""
    points = np.column_stack([slope, offset])
    se = np.column_stack([slope_se, offset_se])
    finite = np.all(np.isfinite(points), axis=1) & np.all(np.isfinite(se), axis=1)
    groups = np.zeros(len(slope), np.int64)
    if finite.sum() < 2:
        return groups
    z, z_se = _standardise(points[finite], se[finite])
    gm = choose_mixture(z, max_groups, seed)
    groups[finite] = assign(z, z_se, gm)
    if (~finite).any():  # undetermined metabolites join the largest group
        groups[~finite] = np.bincount(groups[finite]).argmax()
    return relabel(groups, -slope)
