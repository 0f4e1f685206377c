"""Which per-reaction corrections and which species' homeostasis the data can identify.

A reaction whose rate along the data is exactly a + b c_i for every species i
it changes (a constant feed, a first-order sink mu c_i) has a correction that
is collinear with those species' homeostasis columns [c_i, 1]: no data can
tell them apart. Such corrections are dropped (the frozen model is trusted for
that reaction), and the homeostasis of the species they touch is flagged as
not identified, since the frozen model's error on the reaction lands in it.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)
COLLINEAR_TOLERANCE = 1e-6  # relative residual of v_j regressed on [c_i, 1]
# A species is also not identified when its slope's standard error in the joint fit (its own error inflated by the
# corrections of its reactions, stage1.block_solve.pair_inflation) exceeds 1/MIN_Z of the median |slope|.
MIN_Z = 2.0


def collinear_reactions(conc: np.ndarray, rates: np.ndarray, S: np.ndarray,
                        tol: float = COLLINEAR_TOLERANCE) -> np.ndarray:
    """(n_reactions,) bool: v_j lies in span{c_i, 1} for every species i with S_ij != 0."""
    out = np.zeros(S.shape[1], bool)
    for j in range(S.shape[1]):
        touched = np.nonzero(S[:, j])[0]
        v = rates[:, j]
        scale = float(np.linalg.norm(v))
        if scale == 0.0:
            out[j] = True
            continue
        out[j] = len(touched) > 0 and all(_residual(conc[:, i], v) <= tol * scale for i in touched)
    return out


def _residual(c: np.ndarray, v: np.ndarray) -> float:
    X = np.column_stack([c, np.ones_like(c)])
    coef = np.linalg.lstsq(X, v, rcond=None)[0]
    return float(np.linalg.norm(v - X @ coef))


def unidentified_species(S: np.ndarray, collinear: np.ndarray) -> np.ndarray:
    """(n_metabolites,) bool: species changed by a reaction whose correction was dropped."""
    return (S[:, collinear] != 0).any(axis=1)


def imprecise(joint_se: np.ndarray, slope: np.ndarray, min_z: float = MIN_Z) -> np.ndarray:
    """(n_metabolites,) bool: the joint standard error of the slope exceeds 1/min_z of the median |slope|."""
    finite = np.isfinite(slope)
    scale = float(np.median(np.abs(slope[finite]))) if finite.any() else 0.0
    return ~finite | ~(joint_se * min_z <= scale)


def unresolved(points: np.ndarray, cov: np.ndarray, min_z: float = MIN_Z) -> np.ndarray:
    """(n_metabolites,) bool: neither the slope nor the offset (``points`` (n, 2), covariances ``cov``
    (n, 2, 2)) is resolved, each by :func:`imprecise` against its own median |value|."""
    se = np.sqrt(np.abs(np.diagonal(cov, axis1=1, axis2=2)))
    return imprecise(se[:, 0], points[:, 0], min_z) & imprecise(se[:, 1], points[:, 1], min_z)
