"""Output error continued over window lengths, and checked against stage 1's answer on held-out blocks.

One fit over windows of one length is :class:`sysid.stage1.output_error.OutputErrorRegression`.
Here it is continued from short windows to long ones (each length starting
inside its region of convergence from the one before), its noise model is
settled, and its answer is compared with stage 1's on blocks neither was
fitted to (docs/method.md, section 2e).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from functools import partial

import numpy as np

from sysid.io.dataset import Dataset
from sysid.model import MetabolismModel
from sysid.stage1.output_error import Corrected, OutputErrorRegression
from sysid.stage1.readings import Observation
from sysid.stage1.residuals import record_noise_is_relative
from sysid.stage1.shape_basis import ShapeBasis
from sysid.stage1.windows import WindowPlan, output_error_starts

log = logging.getLogger(__name__)
MAX_RMS = 1.5  # a metabolite whose weighted rms residual is above this many noise sds is not fitted


def refine_by_output_error(data: Dataset, model: MetabolismModel, slope: np.ndarray, offset: np.ndarray,
                           windows: WindowPlan | tuple[int, ...], progress: Callable[..., None] | None = None, *,
                           substeps: int = 1, noise_kind: str = "auto", shape_knots: int = 0
                           ) -> OutputErrorRegression | None:
    """Output error from stage 1's slopes and offsets (the frozen model's rates as they are), continued over
    window lengths ``windows`` (a :class:`WindowPlan`, or its lengths alone; short to long: each length starts
    from the states and parameters fitted with the one before, so the longer windows start inside their region of
    convergence), with ``substeps`` Euler steps per recorded interval (on a sparse record after shorter lengths:
    :func:`sysid.stage1.windows.lead_in`).

    ``noise_kind`` (``absolute``, ``relative`` or ``auto``): with ``auto``, the kind the record's roughness
    suggests (:func:`record_noise_is_relative`), checked on the residuals of the first window length (and that
    length fitted again with the other kind when they disagree). Each length after the first weighs the
    metabolites by the noise sds its predecessor's residuals give (:func:`fitted_noise`).

    Fitted first without the held-out blocks (:meth:`WindowPlan.for_record`: the lengths longer than the longest
    the record can hold a block of out are left out, so that the comparison stays); there the two answers are compared
    (:func:`held_out_costs`), and the output error's, if it predicts them at least as well, is fitted once more
    on every window. None, with a warning, when stage 1's answer predicts the held-out blocks better, or when
    the fit has not converged (:func:`converged`): stage 1's answer stands. ``progress``
    (done, total=..., rms=...) is told after each fit over one window length. With ``shape_knots``, the answer
    of the continuation is fitted once more over its window length with MLP_sub's shape corrected as well
    (:class:`ShapeBasis` on that many knots, from no correction: :func:`with_shape_corrections`)."""
    plan = windows if isinstance(windows, WindowPlan) else WindowPlan(tuple(windows))
    windows, held = plan.for_record(data.n_frames, substeps, data.experiment_starts)
    steps = _Steps(progress, len(windows) * (1 if held is None else 4) + (held is not None) + bool(shape_knots))
    if noise_kind not in ("auto", "absolute", "relative"):
        raise ValueError(f"noise_kind must be auto, absolute or relative, not {noise_kind!r}")
    relative = record_noise_is_relative(data.concentrations) if noise_kind == "auto" else noise_kind == "relative"
    try:
        start = Corrected(np.nan_to_num(slope), np.nan_to_num(offset), np.ones(data.network.n_reactions))
        shape = partial(with_shape_corrections, data, model, ShapeBasis(data, model, shape_knots),
                        use=None if held is None else ~held, step=steps) if shape_knots else None
        return _refine(data, model, start, windows, held, steps, Observation(substeps, relative),
                       check_kind=noise_kind == "auto", shape=shape)
    finally:
        steps.finish()


def _refine(data: Dataset, model: MetabolismModel, stage1: Corrected, windows: tuple[int, ...],
            held: np.ndarray | None, steps: _Steps, observation: Observation, check_kind: bool,
            shape: Callable[[OutputErrorRegression], OutputErrorRegression] | None = None
            ) -> OutputErrorRegression | None:
    """``stage1``: stage 1's answer, a metabolite it could not fit (NaN) without homeostasis; no corrections."""
    if held is None:
        log.info("stage 1 output error: the record is too short to hold out blocks of %d samples; no comparison "
                 "with stage 1's answer", max(windows))
    use = None if held is None else ~held
    continued = partial(fit_continued, data, model, use=use, step=steps, covariance=False)  # the answer's alone
    fit = continued(stage1, windows[:1], observation=observation)
    if fit is not None and check_kind and fit.relative_fits_better_ != observation.relative:
        observation = Observation(observation.substeps, not observation.relative)
        fit = continued(stage1, windows[:1], observation=observation)
    log.info("stage 1 output error: %s noise", "relative (log-normal)" if observation.relative else "absolute")
    if fit is not None and len(windows) > 1:  # the longer lengths, as far as the record has windows for them
        longer = continued(fit.params_, windows[1:], states=fit.states_,
                           observation=replace(observation, sd=fit.noise_sd_), accept=converged)
        fit = fit if longer is None else longer
        windows = windows[: windows.index(fit.window) + 1]  # the held-out comparison's lengths: those used
    if fit is not None and shape is not None and converged(fit):
        fit = shape(fit)
    if fit is None or not converged(fit):
        log.warning("stage 1: the output-error fit did not converge (median over metabolites of their weighted rms "
                    "%s noise sds); the equation-error answer is kept",
                    "n/a" if fit is None else f"{np.nanmedian(fit.metabolite_rms_):.3g}")
        return None
    if held is None:
        return fit.with_covariance(data, model)
    ours, theirs = held_out_costs(data, model, fit, stage1, windows, held, step=steps)
    log.info("stage 1 held-out blocks (%d samples): weighted rms %.4g noise sds with the output-error answer, %.4g "
             "with stage 1's", int(held.sum()), ours.rms_, theirs.rms_)
    stage1_better = theirs.cost_ < ours.cost_
    _warn_if_neither_follows(theirs if stage1_better else ours, ours, theirs)
    if stage1_better:
        log.warning("stage 1: the equation-error answer predicts the held-out blocks better than the output-error "
                    "fit (weighted rms %.4g against %.4g noise sds); it is kept", theirs.rms_, ours.rms_)
        return None
    states = np.where(held[:, None], ours.states_, fit.states_)
    final = OutputErrorRegression(window=fit.window, n_iterations=1, observation=fixed_noise(fit)).fit(
        data, model, fit.params_, states)
    steps(final)
    return final


def _warn_if_neither_follows(kept: OutputErrorRegression, ours: OutputErrorRegression,
                             theirs: OutputErrorRegression) -> None:
    """A warning when the answer kept (the better of the two on the held-out blocks) is itself more than MAX_RMS
    noise sds off those readings: neither answer follows the record there. (The runs in
    benchmarks/results/noise.txt: 0.93-1.14 where the frozen model follows the record; 4.1 on case (e) seed 4,
    165 on (d) seed 12.)"""
    if kept.rms_ > MAX_RMS:
        log.warning("stage 1: neither answer follows the held-out readings (weighted rms %.3g noise sds with the "
                    "output error's answer, %.3g with the equation error's; above %g): the corrected frozen model "
                    "does not follow this record, and the answer may be off by more than its standard errors",
                    ours.rms_, theirs.rms_, MAX_RMS)


def with_shape_corrections(data: Dataset, model: MetabolismModel, basis: ShapeBasis, fit: OutputErrorRegression,
                           *, use: np.ndarray | None, step: Callable[[OutputErrorRegression], None] | None = None
                           ) -> OutputErrorRegression:
    """``fit`` continued over its own window length with MLP_sub's shape corrections on ``basis`` free as well,
    from none (its answer, which the continuation over lengths reached without them, is that fit's start: the
    corrections never meet a length whose start is far off), weighing the readings as ``fit`` did.
    Levenberg-Marquardt only takes steps that lower the cost, so the fit ends at or below ``fit``'s; it is kept
    when it has converged (:func:`converged`), else ``fit`` stands."""
    shaped = OutputErrorRegression(window=fit.window, observation=fit.observation, covariance=fit.covariance).fit(
        data, model, fit.params_.with_shape(basis), fit.states_, use)
    log.info("stage 1 output error with MLP_sub shape corrections (%d) over windows of %d samples: weighted rms "
             "%.3g noise sds (%.3g without)", basis.n, fit.window, shaped.rms_, fit.rms_)
    if step is not None:
        step(shaped)
    if not converged(shaped):
        log.warning("stage 1: the output error with shape corrections did not converge; the fit without them stands")
        return fit
    return shaped


def converged(fit: OutputErrorRegression) -> bool:
    """The median over metabolites of their weighted rms is at most MAX_RMS (not the rms of all readings: a few
    metabolites off the noise, flagged in :mod:`sysid.stage1.fit`, must not condemn the others' fit)."""
    return bool(np.nanmedian(fit.metabolite_rms_) <= MAX_RMS)


def fixed_noise(fit: OutputErrorRegression) -> Observation:
    """``fit``'s observation with the noise sds its residuals gave."""
    return replace(fit.observation, sd=fit.noise_sd_)


def held_out_costs(data: Dataset, model: MetabolismModel, fit: OutputErrorRegression, stage1: Corrected,
                   windows: tuple[int, ...], held: np.ndarray,
                   step: Callable[[OutputErrorRegression], None] | None = None
                   ) -> tuple[OutputErrorRegression, OutputErrorRegression]:
    """The held-out blocks' fits (only their windows' starts free) with the output error's parameters and with
    stage 1's slopes and offsets; the latter with per-reaction scales of their own, fitted to the same windows
    as ``fit`` over the same window lengths, from its states (the comparison is between the two answers, each
    with its best frozen-model correction). Every one of these fits weighs the readings as ``fit``'s residuals
    say (:func:`fixed_noise`), so the two objectives compare."""
    own = replace(fit.params_, slope=stage1.slope, offset=stage1.offset)
    fixed = partial(fit_continued, data, model, observation=fixed_noise(fit), reweigh=False, step=step)
    scales = fixed(own, windows, use=~held, free="scales", states=fit.states_)
    ours = fixed(fit.params_, windows, use=held, free="starts")
    theirs = fixed(scales.params_ if scales is not None else own, windows, use=held, free="starts")
    assert ours is not None and theirs is not None  # held_out_samples leaves them windows
    return ours, theirs


def fit_continued(data: Dataset, model: MetabolismModel, params: Corrected, windows: tuple[int, ...], *,
                  use: np.ndarray | None, free: str = "all", states: np.ndarray | None = None,
                  observation: Observation | None = None, reweigh: bool = True,
                  step: Callable[[OutputErrorRegression], None] | None = None,
                  accept: Callable[[OutputErrorRegression], bool] | None = None, covariance: bool = True
                  ) -> OutputErrorRegression | None:
    """Output error continued over window lengths ``windows`` on the samples ``use`` allows, the first length's
    window starts read from ``states`` (default: the record); the last fit (None when not even the first length
    leaves two windows, or one with only the starts free). With ``reweigh``, each length after the first weighs
    the readings by the noise sds of its predecessor's residuals. ``step`` is called with each length's fit. With
    ``covariance`` (and ``free="all"``) the fit returned has its covariance (:meth:`with_covariance`), the fits
    only continued from none.

    With ``accept``: when the last length's fit is not accepted, the fit of the longest length that is (None if
    none is). Each length still starts from the one before, accepted or not (a short lead-in length may stay off
    the noise and the next one reach it)."""
    fit = last_accepted = None
    observation = Observation() if observation is None else observation
    lengths: list[int] = []  # up to the first length the record has too few windows for
    for window in windows:
        if output_error_starts(data.n_frames, window, data.experiment_starts, use).size < (1 if free == "starts"
                                                                                           else 2):
            break
        lengths.append(window)
    for window in lengths:
        if fit is not None and reweigh:
            observation = fixed_noise(fit)
        fit = OutputErrorRegression(window=window, free=free, observation=observation, covariance=False).fit(
            data, model, params, states, use)
        params, states = fit.params_, fit.states_
        log.info("stage 1 output error (%s free) over windows of %d samples: weighted rms %.3g noise sds", free,
                 window, fit.rms_)
        if step is not None:
            step(fit)
        if accept is not None and accept(fit):
            last_accepted = fit
    if accept is not None and fit is not None and fit is not last_accepted:
        fit = last_accepted
        if fit is not None:
            log.info("stage 1 output error: windows of %d samples are the longest whose fit is accepted "
                     "(converged); their answer is used", fit.window)
    return fit.with_covariance(data, model) if fit is not None and covariance and free == "all" else fit


class _Steps:
    """Progress over the fits of :func:`refine_by_output_error`: ``progress(done, total=..., rms=...)``."""

    def __init__(self, progress: Callable[..., None] | None, total: int):
        self.progress, self.total, self.done = progress, total, 0

    def __call__(self, fit: OutputErrorRegression) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(min(self.done, self.total), total=self.total, rms=fit.rms_)

    def finish(self) -> None:
        if self.progress is not None:
            self.progress(self.total, total=self.total)
