"""Which terms the homeostasis of one metabolite needs: sparse selection (pysindy's STLSQ).

The candidate library is the polynomial library of c_i (1, c, c^2), integrated
over the same windows as the regression target. STLSQ (with normalised
columns) keeps the constant and linear terms and drops the quadratic one unless
it carries at least ``threshold`` of the target's norm. A kept quadratic term
flags a metabolite whose regulation is not the linear law -lambda (c - cb); the
reported slope and offset stay those of the linear law.

With one thresholded term, STLSQ's answer is decided by its first least-squares
fit: the quadratic term stays iff its normalised coefficient is at least
``threshold``. That coefficient is computed here directly (a hundred pysindy
fits cost a second per stage 1, mostly input checks); where it lies within
``REFERENCE_MARGIN`` of the threshold, or the library is degenerate, pysindy's
STLSQ itself decides. The library's columns are those of pysindy's
PolynomialLibrary of one variable, the same numbers (tests check both against pysindy).
"""

from __future__ import annotations

import warnings

import numpy as np

from sysid.stage1.residuals import window_sum

DEGREE = 2
LINEAR_TERMS = (0, 1)  # constant and c: never thresholded
REFERENCE_MARGIN = 1e-6  # relative distance to the threshold below which pysindy's STLSQ decides
MIN_CONDITION = 1e-10  # smallest / largest singular value of the normalised library for the direct answer


def polynomial_library(x: np.ndarray, degree: int) -> np.ndarray:
    """(1, x, x^2, ..., x^degree) along a new last axis: pysindy's PolynomialLibrary(degree, include_bias=True)
    of one variable, with x^k as its product x * x * ... * x from the left."""
    x = np.asarray(x, np.float64)
    columns = [np.ones_like(x), x]
    for _ in range(2, degree + 1):
        columns.append(columns[-1] * x)
    return np.stack(columns[: degree + 1], axis=-1)


def windowed_library(conc: np.ndarray, starts: np.ndarray, window: int, dt: float, ramp: int = 1,
                     trapezoid: bool = False) -> np.ndarray:
    """dt * sum over each (ramped) window of (1, c, c^2): (n_windows, 3)."""
    per_frame = polynomial_library(np.asarray(conc, np.float64).reshape(-1), DEGREE)
    return dt * window_sum(per_frame, starts, window, ramp, trapezoid)


def needs_quadratic(theta: np.ndarray, target: np.ndarray, threshold: float) -> bool:
    """True if sparse regression (STLSQ) keeps the c^2 term of the windowed library."""
    scale = np.linalg.norm(target)
    if scale == 0 or len(target) <= theta.shape[1]:
        return False
    x, y = theta / scale, target / scale
    norms = np.linalg.norm(x, 2, axis=0)
    if np.all(norms > 0) and np.all(np.isfinite(norms)):
        coef, _, rank, sv = np.linalg.lstsq(x / norms, y, rcond=None)
        quadratic = np.abs(coef[[i for i in range(theta.shape[1]) if i not in LINEAR_TERMS]])
        if rank == theta.shape[1] and sv[-1] > MIN_CONDITION * sv[0] and np.all(np.isfinite(coef)) \
                and np.all(np.abs(quadratic - threshold) > REFERENCE_MARGIN * threshold):
            return bool(np.any(quadratic >= threshold))
    return stlsq_keeps_quadratic(theta, target, threshold)


def stlsq_keeps_quadratic(theta: np.ndarray, target: np.ndarray, threshold: float) -> bool:
    """pysindy's STLSQ on the normalised library: does it keep the c^2 term?"""
    import pysindy as ps  # here: only the cases near the threshold need it

    scale = np.linalg.norm(target)
    if scale == 0 or len(target) <= theta.shape[1]:
        return False
    quadratic = [i for i in range(theta.shape[1]) if i not in LINEAR_TERMS]
    optimizer = ps.STLSQ(threshold=threshold, alpha=0.0, normalize_columns=True, sparse_ind=quadratic)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optimizer.fit(theta / scale, target / scale)
    return bool(np.any(optimizer.coef_[0, quadratic] != 0))
