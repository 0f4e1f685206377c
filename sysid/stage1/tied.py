"""Each group's slope and offset fitted by output error with its members' parameters tied.

Generalised least squares on the members' own estimates (:mod:`sysid.stage1.shared`)
is the tied fit only to first order. On a sparse, noisy record a member's own
slope is known to tens of percent, the windows' trajectories are not linear
over that range, and the first-order answer can be far from the tied fit's.
Here the output error is fitted once more over its
last window length with each group's well-placed members sharing one slope and
one offset, the per-reaction scales and the other metabolites' parameters free.
Its sandwich covariance is that of the shared values.

A member is tied when its estimate lies within the 99% region of its group's
shared value (its own 2x2 error covariance, 2 degrees of freedom): a metabolite
placed in the wrong group, or following another law, keeps its own parameters.
The tie is a restriction of the fit it starts from: when it raises the weighted
cost by more than chi-squared with as many degrees of freedom as it removes
allows (likelihood ratio, 99.9%), the readings reject it (a metabolite near
zero, very sensitive to its neighbours' parameters, did so on (c) seed 9), and
the first-order values stand. They stand too when the tie lowers the cost by
more than that: the untied fit had not converged, and the test cannot be made
(on (c) seeds 6 and 10 the tied values were then further from the truth than
the first-order ones: type 0's slope 44% and 140% off, against 32% and 13%;
on (d) seed 8 and (c) seed 12, which did the same, one type was nearer and
one further). The caller is then told of the tied fit (``on_ahead``):
:func:`untied_from` continues the untied fit from it, past the point where it
had stopped, and :mod:`sysid.stage1.fit` groups and ties once more on that,
unless the continued fit leaves the typical metabolite further off its
readings than before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

import numpy as np
from scipy import stats

from sysid.io.dataset import Dataset
from sysid.model import MetabolismModel
from sysid.stage1.continuation import converged
from sysid.stage1.output_error import OutputErrorRegression
from sysid.stage1.shared import SharedEstimates, squared_distances

log = logging.getLogger(__name__)
CHI2_TIE = 9.21  # 99% quantile of chi-squared with 2 degrees of freedom
LEVEL = 0.999  # the likelihood-ratio test that rejects the tie
PROGRESS_LABEL = "stage 1 tied group fit"
CONTINUED_LABEL = "stage 1 untied fit continued from the tied one"


def tie_columns(labels: np.ndarray, tied: np.ndarray, n_rxn: int) -> np.ndarray:
    """Per parameter (slopes, offsets, then ``n_rxn`` corrections: scales and shape) the index of the free value
    it takes: a tied member's slope and offset take its group's; every other parameter has its own."""
    groups = np.unique(labels[tied])
    own = np.cumsum(~tied) - 1  # the untied metabolites' own values, after the groups'
    k = len(groups)
    slope = np.where(tied, np.searchsorted(groups, labels), k + own)
    n_slopes = k + int((~tied).sum())
    offset = n_slopes + slope
    return np.concatenate([slope, offset, 2 * n_slopes + np.arange(n_rxn)])


def tied_members(points: np.ndarray, cov: np.ndarray, labels: np.ndarray, members: np.ndarray,
                 values: np.ndarray) -> np.ndarray:
    """The ``members`` whose (slope, offset) lies within CHI2_TIE of their group's ``values`` under its own
    error covariance ``cov`` (n, 2, 2), in groups that keep at least two of them."""
    diff = points - values[labels]
    ok = members & np.all(np.isfinite(diff), axis=1) & np.all(np.isfinite(cov.reshape(len(cov), -1)), axis=1)
    r2 = np.full(len(points), np.inf)
    r2[ok] = squared_distances(diff[ok], cov[ok])
    return _in_pairs(ok & (r2 <= CHI2_TIE), labels)


def tied_group_values(data: Dataset, model: MetabolismModel, fit: OutputErrorRegression, labels: np.ndarray,
                      members: np.ndarray, gls: SharedEstimates, progress: Callable[..., None] | None = None,
                      on_ahead: Callable[[OutputErrorRegression], None] | None = None) -> SharedEstimates:
    """Each group's (slope, offset) and covariance from the output error refitted from ``fit`` (its window
    length, readings' weights and fitted states) with the tied members (:func:`tied_members`) sharing them.
    ``gls`` (the first-order values) stand for a group without tied members, and for all when the tied fit does
    not converge or the readings reject the tie (:func:`tie_rejected`). ``on_ahead`` is called with the tied fit
    when its cost is below the untied fit's beyond the test's allowance (:func:`untied_behind`). ``progress``
    (done, total=..., description=...) is told when the tied fit starts and when it ends."""
    tied = tied_members(np.column_stack([fit.slope_, fit.offset_]), fit.joint_cov_, labels, members, gls.values)
    if not tied.any():
        return gls
    slope, offset = fit.params_.slope.copy(), fit.params_.offset.copy()
    slope[tied], offset[tied] = gls.values[labels[tied], 0], gls.values[labels[tied], 1]
    log.info("stage 1 output error with %d members' slopes and offsets tied to %d groups' values", tied.sum(),
             len(np.unique(labels[tied])))
    if progress is not None:
        progress(0, total=1, description=PROGRESS_LABEL)
    refit = OutputErrorRegression(window=fit.window, observation=fit.observation,
                                  tie=tie_columns(labels, tied, len(fit.params_.vector()) - 2 * len(slope))).fit(
        data, model, replace(fit.params_, slope=slope, offset=offset), fit.states_)
    if progress is not None:
        progress(1, total=1, description=PROGRESS_LABEL)
    if on_ahead is not None and converged(refit) and untied_behind(fit, refit, labels, tied):
        on_ahead(refit)
    if not converged(refit) or tie_rejected(fit, refit, labels, tied):
        log.warning("stage 1: the output error with tied group values did not converge, or its cost against the "
                    "untied fit's refuses the tie; the values from the members' estimates are kept")
        return gls
    values, cov = gls.values.copy(), gls.cov.copy()
    for g in np.unique(labels[tied]):
        i = np.flatnonzero(tied & (labels == g))[0]
        values[g], cov[g] = (refit.slope_[i], refit.offset_[i]), refit.cov_[i]
        log.info("stage 1 group %d: tied output error (slope, offset) %.6g, %.6g (from the members' estimates "
                 "%.6g, %.6g)", g, *values[g], *gls.values[g])
    return SharedEstimates(values, cov)


def tie_rejected(fit: OutputErrorRegression, refit: OutputErrorRegression, labels: np.ndarray,
                 tied: np.ndarray) -> bool:
    """Likelihood ratio: the tied fit's weighted cost rose above the untied one's by more than the 99.9% quantile
    of chi-squared with as many degrees of freedom as the tie removes (in units of the residual variance). Or
    it fell below it by more than that: a restriction cannot fit better than the fit it restricts at that fit's
    optimum, so the untied fit had not reached it, and the test cannot be made."""
    log.info("stage 1 tied fit: weighted cost %.6g against %.6g untied (%d parameters tied away)", refit.cost_,
             fit.cost_, _removed(labels, tied))
    if untied_behind(fit, refit, labels, tied):
        log.info("stage 1: the tied fit's weighted cost is below the untied fit's by %.3g: the untied fit had not "
                 "converged", fit.cost_ - refit.cost_)
        return True
    return bool(refit.cost_ - fit.cost_ > _allowance(fit, labels, tied))


def untied_behind(fit: OutputErrorRegression, refit: OutputErrorRegression, labels: np.ndarray,
                  tied: np.ndarray) -> bool:
    """The tied fit's weighted cost is below the untied one's by more than :func:`tie_rejected` allows: the untied
    fit stopped short of its optimum."""
    return bool(fit.cost_ - refit.cost_ > _allowance(fit, labels, tied))


def untied_from(data: Dataset, model: MetabolismModel, refit: OutputErrorRegression, before: OutputErrorRegression,
                progress: Callable[..., None] | None = None) -> OutputErrorRegression | None:
    """The untied output error continued from a tied fit ``refit`` (its parameters, window starts, window length
    and readings' weights) that fitted the readings better than the untied fit ``before`` it restricted. Its cost
    is at most the tied fit's: it starts there, every parameter free, and takes only steps that lower it. None
    when it does not converge (:func:`sysid.stage1.continuation.converged`), or when the median over metabolites
    of their weighted rms is above ``before``'s: the cost can fall by bringing one metabolite the frozen model
    cannot follow nearer its readings while moving many others off theirs (on (c) seed 10 one metabolite at 23.6
    noise sds held most of the cost; continued, 27 metabolites ended above 1.5 and type 0's slope 58% off).
    ``progress`` (done, total=..., description=...) is told when the fit starts and when it ends."""
    log.info("stage 1: the untied output error continued from the tied fit (weighted cost %.6g)", refit.cost_)
    if progress is not None:
        progress(0, total=1, description=CONTINUED_LABEL)
    fit = OutputErrorRegression(window=refit.window, observation=refit.observation).fit(
        data, model, refit.params_, refit.states_)
    if progress is not None:
        progress(1, total=1, description=CONTINUED_LABEL)
    typical, earlier = float(np.nanmedian(fit.metabolite_rms_)), float(np.nanmedian(before.metabolite_rms_))
    log.info("stage 1 untied output error continued: weighted cost %.6g, weighted rms %.3g noise sds, median over "
             "metabolites %.4g (%.4g before)", fit.cost_, fit.rms_, typical, earlier)
    return fit if converged(fit) and typical <= earlier else None


def _removed(labels: np.ndarray, tied: np.ndarray) -> int:
    """Parameters the tie removes: two per tied member, less two per group it ties them to."""
    return 2 * (int(tied.sum()) - len(np.unique(labels[tied])))


def _allowance(fit: OutputErrorRegression, labels: np.ndarray, tied: np.ndarray) -> float:
    """The 99.9% quantile of chi-squared with as many degrees of freedom as the tie removes, in units of the
    untied fit's residual variance (at least 1)."""
    return float(stats.chi2.ppf(LEVEL, max(_removed(labels, tied), 1)) * max(fit.rms_**2, 1.0))


def _in_pairs(tied: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``tied`` without the members of groups left with fewer than two."""
    counts = np.bincount(labels[tied], minlength=int(labels.max()) + 1)
    return tied & (counts[labels] >= 2)
