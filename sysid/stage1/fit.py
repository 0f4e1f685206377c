"""Stage 1 end to end: frozen-model residuals -> joint regression -> behavioural groups."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from sysid.config import Stage1Config
from sysid.errors import SysidInputError
from sysid.frozen import FrozenModel, species_set_points, transient_frames, uses_shape_corrections
from sysid.io.dataset import Dataset
from sysid.model import MetabolismModel
from sysid.stage1.bound import cramer_rao_bound
from sysid.stage1.calibration import calibrated
from sysid.stage1.continuation import MAX_RMS, refine_by_output_error
from sysid.stage1.design import affordable_knots
from sysid.stage1.detectability import Detectability, detectability
from sysid.stage1.grouping import Grouping, RefineShared, find_groups, find_slope_groups
from sysid.stage1.identifiability import MIN_Z, imprecise, unidentified_species, unresolved
from sysid.stage1.misfit import MisfitReport, frozen_misfit, shooting_misfit
from sysid.stage1.noise_bias import debiased
from sysid.stage1.nonlinear import fit_group_forms
from sysid.stage1.output_error import OutputErrorRegression
from sysid.stage1.regression import RMS_TOLERANCE, HomeostasisRegression
from sysid.stage1.residuals import (
    FrozenEvaluation,
    estimate_noise,
    evaluate_frozen,
    integral_form,
    max_window,
    measurable_noise,
    relative_noise,
)
from sysid.stage1.result import HomeostasisFit
from sysid.stage1.shooting import ShootingRegression
from sysid.stage1.tied import tied_group_values, untied_from
from sysid.stage1.windows import WindowPlan
from sysid.threads import allowed, pools_only, torch_threads

log = logging.getLogger(__name__)
DEFAULT_SUBSTEPS = 10  # sub-steps per recorded interval when the record does not say how it was integrated


@dataclass(frozen=True, eq=False)
class Stage1Result:
    fit: HomeostasisFit
    regression: HomeostasisRegression
    frozen: FrozenEvaluation
    window: int
    misfit: MisfitReport
    detectability: Detectability


def fit_stage1(data: Dataset, model: FrozenModel, cfg: Stage1Config, *, seed: int = 0,
               progress: Callable[..., None] | None = None) -> Stage1Result:
    """Fit per-metabolite homeostasis and groups from data and the frozen model (no labels). ``progress``
    (done, total=..., **fields) follows the output-error fit, the one long part, when it runs, and then the
    tied group fit (with description=...).

    The fit's BLAS calls run on one thread, its thread pools on the budget (:func:`sysid.threads.pools_only`):
    its numbers do not depend on the thread count (the Cramer-Rao bound's, off by default, may)."""
    with pools_only():
        if isinstance(model, MetabolismModel) and uses_shooting(data, model, cfg):
            result = _fit_sparse(data, model, cfg, seed, progress)
        else:
            result = _fit_windows(data, model, cfg, seed, progress)
    if cfg.bound_window > 0 and isinstance(model, MetabolismModel):
        result = dataclasses.replace(result, detectability=_with_bound(result, data, model, cfg))
    return result


def _with_bound(result: Stage1Result, data: Dataset, model: MetabolismModel, cfg: Stage1Config) -> Detectability:
    """The Cramer-Rao bounds at the fitted parameters, for the measurement noise estimated from the data."""
    reg, noise = result.regression, estimate_noise(data.concentrations)
    log.info("stage 1 Cramer-Rao bound: windows of %d samples, estimated noise sd %.3g", cfg.bound_window, noise)
    bound = cramer_rao_bound(model, data.concentrations, data.delta_t, slope=reg.slope_, offset=reg.offset_,
                             noise_level=noise, window=cfg.bound_window, substeps=substeps(data, cfg)
                             if uses_shooting(data, model, cfg) else 1, scale=reg.reaction_scale_)
    return dataclasses.replace(result.detectability, crb_slope=bound.slope_sd, crb_offset=bound.offset_sd)


def uses_shooting(data: Dataset, model, cfg: Stage1Config) -> bool:
    """Sparse records of a MetabolismGraph model: frames are not Euler steps and sub-steps are asked for."""
    return not data.euler_steps and substeps(data, cfg) > 1 and isinstance(model, MetabolismModel)


def substeps(data: Dataset, cfg: Stage1Config) -> int:
    """Sub-steps per recorded interval: ``cfg.substeps``, or (0) the record's own integration steps per frame
    when the dataset says (truth.json record_every), else 10."""
    if cfg.substeps > 0:
        return cfg.substeps
    return data.steps_per_frame if data.steps_per_frame > 1 else DEFAULT_SUBSTEPS


def _fit_sparse(data: Dataset, model: MetabolismModel, cfg: Stage1Config, seed: int,
                progress: Callable[..., None] | None = None) -> Stage1Result:
    log.info("stage 1 on a sparse record: shooting over each recorded interval, %d sub-steps", substeps(data, cfg))
    reg = ShootingRegression(substeps=substeps(data, cfg), ridge=cfg.ridge).fit(data, model)
    frozen = evaluate_frozen(model, data.concentrations, data.times)
    misfit = shooting_misfit(reg, cfg.misfit_threshold)
    _warn_misfit(misfit, np.zeros(data.n_metabolites, bool), cfg.misfit_threshold)
    # its standard errors are already the joint ones
    identified = ~imprecise(reg.slope_se_, reg.slope_) & ~misfit.flagged & (not misfit.misfit)
    result = _group(reg, identified, frozen, reg.span, cfg, seed, model, misfit, data)  # lines only
    if not (cfg.output_error_windows and _sparse_noisy(reg, data, cfg)):
        return result
    return _with_output_error(result, data, model, cfg, seed, np.zeros(data.n_metabolites, bool), progress)


def _sparse_noisy(reg: ShootingRegression, data: Dataset, cfg: Stage1Config) -> bool:
    """Whether a sparse record is noisy. Its roughness holds the dynamics between samples, so the measure is the
    shooting fit's interval residuals instead (on clean data only its convergence error is left there),
    relative to the median concentration."""
    residual = reg.interval_residual_[np.isfinite(reg.interval_residual_)]
    relative = float(np.median(np.abs(residual))) / max(float(np.median(data.concentrations)), 1e-12)
    log.info("stage 1 sparse record: interval residuals %.3g of the median concentration", relative)
    return measurable_noise(relative, cfg)


def _with_output_error(result: Stage1Result, data: Dataset, model: MetabolismModel, cfg: Stage1Config, seed: int,
                       excluded: np.ndarray, progress: Callable[..., None] | None) -> Stage1Result:
    """Output error from ``result``'s slopes and offsets (:func:`refine_by_output_error`), grouped again on its
    estimates (weighted centres) when its answer is kept. Not after a run-level misfit: the output error fits
    the same corrections, and no metabolite is identified anyway.

    Identified then: not ``excluded`` (structural: collinear corrections), slope or offset resolved
    (:func:`unresolved`), and the metabolite's own residuals within MAX_RMS noise sds. The output error's
    standard errors hold (coverage 0.94-0.97 in ``benchmarks/noise_bench.py``), and where the slope is beyond
    the data's reach (a sparse, noisy record) the offset still places a metabolite; the equation-error fit's
    per-metabolite misfit flags, found on its noise-biased estimates, are not carried over.

    When the tied group fit lands below the untied fit's cost (the untied fit had stopped short of its optimum:
    :func:`sysid.stage1.tied.untied_behind`), the untied fit is continued from the tied one
    (:func:`sysid.stage1.tied.untied_from`) and, when that fit is taken, everything from the identification on
    is done again on its answer, once.

    torch runs on the thread budget here (:func:`sysid.threads.allowed`; `sysid fit` keeps one thread elsewhere):
    the passes' batches of windows are large enough for two threads (case (b) seed 1 alone on 2 CPUs: 118 s
    against 150 s on one), and the numbers are the same bits (its 100 slopes, there)."""
    if result.misfit.misfit:
        return result
    with torch_threads(allowed()):
        return _refined_and_grouped(result, data, model, cfg, seed, excluded, progress)


def _refined_and_grouped(result: Stage1Result, data: Dataset, model: MetabolismModel, cfg: Stage1Config, seed: int,
                         excluded: np.ndarray, progress: Callable[..., None] | None) -> Stage1Result:
    """The body of :func:`_with_output_error`."""
    reg = result.regression
    sparse = uses_shooting(data, model, cfg)
    steps = substeps(data, cfg) if sparse else 1
    plan = WindowPlan(cfg.output_error_windows, cfg.output_error_max_steps)
    refined = refine_by_output_error(data, model, reg.slope_, reg.offset_, plan, progress, substeps=steps,
                                     noise_kind=cfg.noise_kind, shape_knots=output_error_knots(model, cfg, sparse))
    if refined is None:
        return result
    ahead: list[OutputErrorRegression] = []  # a tied fit below the untied one's cost (sysid.stage1.tied)
    grouped = _group_refined(refined, result, data, model, cfg, seed, excluded, progress, ahead.append)
    if not ahead:
        return grouped
    continued = untied_from(data, model, ahead[0], refined, progress)
    if continued is None:
        log.warning("stage 1: the untied output error continued from the tied fit did not converge, or left the "
                    "typical metabolite further off its readings; the groups of the first untied fit stand")
        return grouped
    log.info("stage 1: groups and tied values once more, on the continued untied fit")
    return _group_refined(continued, result, data, model, cfg, seed, excluded, progress)


def output_error_knots(model: FrozenModel, cfg: Stage1Config, sparse: bool) -> int:
    """Knots of the output error's MLP_sub shape corrections (0: none): ``cfg.shape_knots`` where
    ``output_error_shape`` asks for them on this kind of record (``all``, the default: on every record;
    ``euler``: not on a ``sparse`` one) and the frozen model takes shape corrections."""
    wanted = cfg.output_error_shape == "all" or (cfg.output_error_shape == "euler" and not sparse)
    return cfg.shape_knots if wanted and uses_shape_corrections(model) else 0


def _group_refined(refined: OutputErrorRegression, result: Stage1Result, data: Dataset, model: MetabolismModel,
                   cfg: Stage1Config, seed: int, excluded: np.ndarray, progress: Callable[..., None] | None,
                   on_ahead: Callable[[OutputErrorRegression], None] | None = None) -> Stage1Result:
    """Groups (and, with ``cfg.tied_groups``, tied group values) on an output-error answer ``refined``; ``result``
    is stage 1's equation-error result it replaces. Identified: see :func:`_with_output_error`."""
    hidden = ~excluded & unresolved(np.column_stack([refined.slope_, refined.offset_]), refined.joint_cov_)
    if hidden.any():
        log.warning("%d metabolites: homeostasis not identifiable by output error (neither slope nor offset "
                    "resolved: standard error above 1/%g of the typical value); flagged", hidden.sum(), MIN_Z)
    off_noise = ~(refined.metabolite_rms_ <= MAX_RMS)
    for i in np.nonzero(off_noise)[0]:
        log.warning("metabolite %d: the output-error fit leaves it %.3g noise sds off its readings (its simulated "
                    "state does not follow them); its fit is not reported as known", i, refined.metabolite_rms_[i])
    identified = ~excluded & ~hidden & ~off_noise
    before = result.fit.identified
    regained = identified & ~(np.ones_like(identified) if before is None else before)
    if regained.any():
        log.info("stage 1: %d metabolites flagged on the equation-error fit are identified by the output error's "
                 "own standard errors", regained.sum())
    tied = (partial(tied_group_values, data, model, refined, progress=progress, on_ahead=on_ahead)
            if cfg.tied_groups else None)
    return _group(refined, identified, result.frozen, result.window, cfg, seed, model, result.misfit, data,
                  weighted_centre=True, refine_shared=tied)


def _group_values(grouping: Grouping) -> np.ndarray | None:
    """(n_groups, 4) slope, offset and their standard errors, when the groups' centres are shared values."""
    if grouping.means_cov is None:
        return None
    se = np.sqrt(np.diagonal(grouping.means_cov, axis1=1, axis2=2))
    return np.column_stack([grouping.means, se])


def _warn_misfit(misfit: MisfitReport, skip: np.ndarray, threshold: float) -> None:
    for i in np.nonzero(misfit.flagged & ~skip)[0]:
        log.warning("metabolite %d: the fit leaves a smooth residual of %.3g of the frozen model's term (above %.3g):"
                    " the model's error there is not a per-reaction factor; its fit is not reported as known",
                    i, misfit.smooth[i], threshold)


def _fit_windows(data: Dataset, model: FrozenModel, cfg: Stage1Config, seed: int,
                 progress: Callable[..., None] | None = None) -> Stage1Result:
    noise = estimate_noise(data.concentrations)
    window, ramp = integral_form(data.concentrations, cfg, noise)
    if window > max_window(data.n_frames, ramp):
        raise SysidInputError(
            f"the dataset has {data.n_frames} steps, fewer than 3 windows of {window}: "
            "use more frames or a smaller sysid.stage1.window"
        )
    log.info("stage 1 integral window: %d steps, ramp %d frames", window, ramp)
    frozen = evaluate_frozen(model, data.concentrations, data.times)
    bad = ~np.all(np.isfinite(frozen.rates), axis=0)
    if bad.any():
        raise SysidInputError(f"the frozen model gives non-finite rates for {bad.sum()} reactions (first: "
                              f"{int(np.argmax(bad))}) on these data: use a frozen model valid over the data's range")
    noisy = measurable_noise(relative_noise(data.concentrations, noise), cfg)
    if noisy and isinstance(model, MetabolismModel):
        # noisy states: the rates' curvature bias comes out (sysid/stage1/noise_bias.py)
        log.info("stage 1: frozen rates corrected for their second-order bias at noise sd %.3g", noise)
        frozen = debiased(frozen, model, data.concentrations, np.full(data.n_metabolites, noise), data.network)
    shape = uses_shape_corrections(model)
    knots = affordable_knots(data.n_frames, data.network, cfg.shape_knots) if shape else 0
    if shape and knots < cfg.shape_knots:
        log.warning("stage 1: MLP_sub shape corrections left out (their per-frame features would not fit in "
                    "memory for %d reactions); per-reaction scale corrections are kept", data.network.n_reactions)
    skip = transient_frames(data, cfg)

    def regression() -> HomeostasisRegression:
        # on a noisy record the answer is where the output error starts and what it is compared with on held-out
        # data: every step is taken (stopped at 1%, case (b) seed 1's comparison took 14 passes instead of 8)
        return HomeostasisRegression(
            window=window, shape_knots=knots, n_iterations=cfg.n_iterations,
            hac_maxlags=cfg.hac_maxlags, ridge=cfg.ridge, sindy_threshold=cfg.sindy_threshold, ramp=ramp,
            mass_action=shape, skip=skip, trapezoid=not data.euler_steps, tolerance=0.0 if noisy else RMS_TOLERANCE,
        )

    reg = regression().fit(data, frozen)
    collinear = unidentified_species(data.network.S, reg.collinear_)
    for i in np.nonzero(collinear)[0]:
        log.warning("metabolite %d: homeostasis not identifiable (a reaction it takes part in is a constant feed or "
                    "first-order sink whose error is collinear with [c, 1]); its fit is not reported as known", i)
    misfit = frozen_misfit(reg, cfg.misfit_threshold, ~collinear)
    _warn_misfit(misfit, collinear, cfg.misfit_threshold)
    imprecise_slope = ~collinear & imprecise(reg.raw_slope_se_joint(), reg.slope_)
    if imprecise_slope.any():
        log.warning("%d metabolites: homeostasis not identifiable (with the corrections of their reactions, the "
                    "slope's standard error exceeds 1/%g of the typical slope); grouped after the others, flagged",
                    imprecise_slope.sum(), MIN_Z)
    # a run-level misfit leaves no species' fit trustworthy: the shared corrections absorbed it unevenly
    identified = ~collinear & ~misfit.flagged & ~imprecise_slope & (not misfit.misfit)
    result = _group(reg, identified, frozen, window, cfg, seed, model, misfit, data,
                    refit=lambda curves: regression().fit(data, frozen, curves=curves))
    if not _uses_output_error(data, model, cfg, result, noisy):
        return result
    assert isinstance(model, MetabolismModel)  # _uses_output_error says so
    return _with_output_error(result, data, model, cfg, seed, collinear, progress)


def _uses_output_error(data: Dataset, model: FrozenModel, cfg: Stage1Config, result: Stage1Result,
                       noisy: bool) -> bool:
    """Output error follows on a noisy Euler-stepped record of a MetabolismGraph model whose groups stage 1 found
    linear (it fits lines; a curved law found by stage 1 keeps stage 1's answer)."""
    curved = result.fit.curves is not None and any(c.form != "linear" for c in result.fit.curves)
    return (bool(cfg.output_error_windows) and noisy and data.euler_steps and not curved
            and isinstance(model, MetabolismModel))


def _group(reg, identified: np.ndarray, frozen: FrozenEvaluation, window: int, cfg: Stage1Config, seed: int,
           model: FrozenModel, misfit: MisfitReport, data: Dataset,
           refit: Callable[[np.ndarray], HomeostasisRegression] | None = None,
           weighted_centre: bool = False, refine_shared: RefineShared | None = None) -> Stage1Result:
    """Groups (on the identified metabolites), then, where ``refit`` can redo the windowed regression with
    curves as columns, a curve form per group (docs/method.md, section 2d). ``weighted_centre`` (for the
    output-error estimates): the groups' centres are precision-weighted means, or, where ``reg`` has the
    estimates' full covariance (``estimate_cov_``) and the members share their offsets too, the values the
    members share (generalised least squares; ``refine_shared`` may replace those: :mod:`sysid.stage1.tied`),
    else medians."""
    points = np.column_stack([reg.slope_, reg.offset_])
    if species_set_points(model):
        group = find_slope_groups
    else:
        group = partial(find_groups, estimate_cov=getattr(reg, "estimate_cov_", None), refine_shared=refine_shared)
    grouping = group(points, reg.joint_cov_, max_groups=cfg.max_groups, min_group_size=cfg.min_group_size, seed=seed,
                     trusted=identified, calibrate=True, weighted_centre=weighted_centre)
    cov = calibrated(reg.joint_cov_, grouping.error_scale)
    if np.any(grouping.error_scale > 1):
        log.info("stage 1: standard errors widened by %.3g (slope) and %.3g (offset) to the spread within groups",
                 *grouping.error_scale)
    report = detectability(reg.slope_, np.sqrt(cov[:, 0, 0]), identified, reg.design_matrix_, reg.slope_cols_,
                           reg.reaction_cols_)
    labels, curves, bics = grouping.labels, None, None
    if refit is not None:
        # one curve per group assumes the members share their law; with per-species set points they do not
        candidates = ("linear",) if species_set_points(model) else cfg.forms
        forms = fit_group_forms(reg, data.concentrations, grouping.labels, data.delta_t, candidates,
                                cfg.form_threshold, max_groups=cfg.max_groups, min_group_size=cfg.min_group_size,
                                seed=seed)
        if forms.nonlinear:  # once more, with the frozen-model corrections estimated next to the curves
            second = refit(forms.per_frame(data.concentrations))
            forms = fit_group_forms(second, data.concentrations, forms.labels, data.delta_t, candidates,
                                    cfg.form_threshold, start=grouping.labels, max_groups=cfg.max_groups,
                                    min_group_size=cfg.min_group_size, seed=seed)
        if forms.reassigned:
            log.info("stage 1: %d metabolites regrouped by their groups' curves", forms.reassigned)
        labels, curves, bics = forms.labels, forms.curves, forms.bics
    fit = HomeostasisFit(
        slope=grouping.pooled[:, 0], offset=grouping.pooled[:, 1], slope_se=np.sqrt(cov[:, 0, 0]),
        offset_se=np.sqrt(cov[:, 1, 1]),
        groups=labels, raw_slope=reg.slope_, raw_offset=reg.offset_, quadratic=reg.quadratic_,
        identified=identified, curves=curves, form_bics=bics, group_values=_group_values(grouping),
    )
    return Stage1Result(fit, reg, frozen, window, misfit, report)
