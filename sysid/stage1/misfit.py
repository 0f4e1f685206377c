"""Is the frozen model's error of a form the per-reaction corrections can absorb?

When it is (each rate law off by a factor), the joint fit leaves over only
quadrature error and measurement noise. When it is not (every kinetic
parameter off, say), a smooth part of the model's error stays in each
metabolite's windowed residual after the fit, and the slopes have absorbed
an unknown share of it: the fitted homeostasis cannot be trusted.

The smooth part is measured by the autocovariances of the residual between
windows 2 to 6 apart in the same experiment: measurement noise cancels there
(adjacent windows share an end, so lag 1 carries minus half the end-point
noise), while a smooth misfit keeps its variance; an oscillating one (the Wolf
glycolysis model) shows as a large negative autocovariance at some lag. Per
metabolite the statistic is sqrt(the largest |autocovariance| whose
autocorrelation is significant, Bartlett's z = |rho| sqrt(n) above
``MISFIT_Z``) over the standard deviation of the frozen model's integrated
reaction term (the scale of what the model explains). Its median over the
metabolites is the run's statistic; benchmarks/sbml_targets.py gives the values
measured for exact-form and parameter errors.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)
MIN_LAG, MAX_LAG = 2, 6  # windows; lag 1 shares a window end with its neighbour
MISFIT_Z = 3.5  # significance of an autocorrelation (white residual: z ~ N(0, 1)), 5 lags tested
MIN_PAIRS = 10


@dataclass(frozen=True, eq=False)
class MisfitReport:
    """Per metabolite the smooth residual relative to the frozen model's term, and the run's verdict."""

    smooth: np.ndarray  # (n_metabolites,) sqrt(significant lag-2 autocovariance) / sd(integrated reaction)
    flagged: np.ndarray  # (n_metabolites,) bool: smooth > threshold
    statistic: float  # median of ``smooth`` over the metabolites considered
    misfit: bool  # statistic > threshold


def smooth_residual(residual: np.ndarray, starts: np.ndarray, window: int, reference: np.ndarray) -> float:
    """sqrt of the largest significant autocovariance, lags 2..``MAX_LAG`` windows, of one metabolite's residual
    over windows starting at ``starts`` (pairs in the same experiment only), relative to the sd of ``reference``."""
    order = np.argsort(starts)
    e, s = residual[order], starts[order]
    gamma0, scale = float(np.mean(e**2)) if len(e) else 0.0, float(np.std(reference))
    if gamma0 <= 0:
        return 0.0
    best = 0.0
    for lag in range(MIN_LAG, MAX_LAG + 1):
        later = np.searchsorted(s, s + lag * window)
        ok = later < len(s)
        ok[ok] = s[later[ok]] == s[ok] + lag * window  # same experiment, no window left out between
        if ok.sum() < MIN_PAIRS:
            continue
        gamma = abs(float(np.mean(e[ok] * e[later[ok]])))
        if gamma / gamma0 * np.sqrt(ok.sum()) > MISFIT_Z:
            best = max(best, gamma)
    if best == 0.0:
        return 0.0
    return float(np.sqrt(best) / scale) if scale > 0 else np.inf  # a smooth residual where the model explains nothing


def frozen_misfit(reg, threshold: float, considered: np.ndarray | None = None) -> MisfitReport:
    """The misfit report of a fitted :class:`~sysid.stage1.regression.HomeostasisRegression`.

    ``considered`` (bool per metabolite, default all) are the metabolites the run's median is taken over.
    """
    res = reg.residuals_
    n = len(reg.slope_)
    smooth = np.zeros(n)
    for i in range(n):
        rows = np.nonzero(reg.rows_met_ == i)[0]
        if len(rows) == 0:
            continue
        wins = reg.rows_win_[rows]
        smooth[i] = smooth_residual(reg.law_residual_[rows], res.starts[wins], res.window,
                                    res.integrated_reaction[wins, i])
    return _report(smooth, threshold, considered)


def shooting_misfit(reg, threshold: float, considered: np.ndarray | None = None) -> MisfitReport:
    """The misfit report of a fitted :class:`~sysid.stage1.shooting.ShootingRegression` (sparse records): the
    same statistic on each recorded interval's residual, relative to the sd of the observed change over the
    intervals (the frozen model's term there is most of it, and it stays a scale when the model explains
    nothing)."""
    n = reg.interval_residual_.shape[1]
    smooth = np.zeros(n)
    for i in range(n):
        used = np.isfinite(reg.interval_residual_[:, i])
        smooth[i] = smooth_residual(reg.interval_residual_[used, i], reg.interval_starts_[used], reg.span,
                                    reg.interval_change_[used, i])
    return _report(smooth, threshold, considered)


def _report(smooth: np.ndarray, threshold: float, considered: np.ndarray | None) -> MisfitReport:
    considered = np.ones(len(smooth), bool) if considered is None else considered
    statistic = float(np.median(smooth[considered])) if considered.any() else 0.0
    report = MisfitReport(smooth, smooth > threshold, statistic, bool(statistic > threshold))
    if report.misfit:
        log.warning("the frozen model's error is not of a form the per-reaction corrections absorb: a smooth "
                    "residual of median %.3g of the model's term is left after the fit (threshold %.3g); the "
                    "fitted homeostasis is not reliable (stage1_frozen_misfit = 1)", statistic, threshold)
    return report
