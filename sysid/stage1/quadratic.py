"""Which terms the homeostasis of one metabolite needs: sparse selection with pysindy.

The candidate library is pysindy's PolynomialLibrary of c_i (1, c, c^2),
integrated over the same windows as the regression target. STLSQ (with
normalised columns) keeps the constant and linear terms and drops the
quadratic one unless it carries at least ``threshold`` of the target's norm. A
kept quadratic term flags a metabolite whose regulation is not the linear law
-lambda (c - cb); the reported slope and offset stay those of the linear law.
"""

from __future__ import annotations

import warnings

import numpy as np
import pysindy as ps

from sysid.stage1.residuals import window_sum

DEGREE = 2
LINEAR_TERMS = (0, 1)  # constant and c: never thresholded


def windowed_library(conc: np.ndarray, starts: np.ndarray, window: int, dt: float, ramp: int = 1,
                     trapezoid: bool = False) -> np.ndarray:
    """dt * sum over each (ramped) window of (1, c, c^2): (n_windows, 3) for one metabolite's c (frames,), or
    (n_windows, n, 3) for n metabolites' (frames, n) at once (one library call)."""
    library = ps.PolynomialLibrary(degree=DEGREE, include_bias=True)
    conc = np.asarray(conc, np.float64)
    per_frame = np.asarray(library.fit_transform(conc.reshape(-1, 1))).reshape(len(conc), -1)
    windowed = dt * window_sum(per_frame, starts, window, ramp, trapezoid)
    return windowed.reshape(len(windowed), *conc.shape[1:], -1)


def needs_quadratic(theta: np.ndarray, target: np.ndarray, threshold: float) -> bool:
    """True if sparse regression keeps the c^2 term of the windowed library."""
    scale = np.linalg.norm(target)
    if scale == 0 or len(target) <= theta.shape[1]:
        return False
    quadratic = [i for i in range(theta.shape[1]) if i not in LINEAR_TERMS]
    optimizer = ps.STLSQ(threshold=threshold, alpha=0.0, normalize_columns=True, sparse_ind=quadratic)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optimizer.fit(theta / scale, target / scale)
    return bool(np.any(optimizer.coef_[0, quadratic] != 0))
