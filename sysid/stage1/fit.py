"""Stage 1 end to end: frozen-model residuals -> joint regression -> behavioural groups."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from sysid.config import Stage1Config
from sysid.errors import SysidInputError
from sysid.frozen import FrozenModel, species_set_points, transient_frames, uses_shape_corrections
from sysid.io.dataset import Dataset
from sysid.stage1.design import affordable_knots
from sysid.stage1.grouping import find_groups, find_slope_groups
from sysid.stage1.identifiability import MIN_Z, imprecise, unidentified_species
from sysid.stage1.misfit import MisfitReport, frozen_misfit
from sysid.stage1.nonlinear import fit_group_forms
from sysid.stage1.regression import HomeostasisRegression
from sysid.stage1.residuals import FrozenEvaluation, evaluate_frozen, integral_form, max_window
from sysid.stage1.result import HomeostasisFit

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Stage1Result:
    fit: HomeostasisFit
    regression: HomeostasisRegression
    frozen: FrozenEvaluation
    window: int
    misfit: MisfitReport


def fit_stage1(data: Dataset, model: FrozenModel, cfg: Stage1Config, *, seed: int = 0) -> Stage1Result:
    """Fit per-metabolite homeostasis and groups from data and the frozen model (no labels)."""
    window, ramp = integral_form(data.concentrations, cfg)
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
    shape = uses_shape_corrections(model)
    knots = affordable_knots(data.n_frames, data.network, cfg.shape_knots) if shape else 0
    if shape and knots < cfg.shape_knots:
        log.warning("stage 1: MLP_sub shape corrections left out (their per-frame features would not fit in "
                    "memory for %d reactions); per-reaction scale corrections are kept", data.network.n_reactions)
    skip = transient_frames(data, cfg)

    def regression() -> HomeostasisRegression:
        return HomeostasisRegression(
            window=window, shape_knots=knots, n_iterations=cfg.n_iterations,
            hac_maxlags=cfg.hac_maxlags, ridge=cfg.ridge, sindy_threshold=cfg.sindy_threshold, ramp=ramp,
            mass_action=shape, skip=skip, trapezoid=not data.euler_steps,
        )

    reg = regression().fit(data, frozen)
    collinear = unidentified_species(data.network.S, reg.collinear_)
    for i in np.nonzero(collinear)[0]:
        log.warning("metabolite %d: homeostasis not identifiable (a reaction it takes part in is a constant feed or "
                    "first-order sink whose error is collinear with [c, 1]); its fit is not reported as known", i)
    misfit = frozen_misfit(reg, cfg.misfit_threshold, ~collinear)
    for i in np.nonzero(misfit.flagged & ~collinear)[0]:
        log.warning("metabolite %d: the fit leaves a smooth residual of %.3g of the frozen model's term (above %.3g):"
                    " the model's error there is not a per-reaction factor; its fit is not reported as known",
                    i, misfit.smooth[i], cfg.misfit_threshold)
    imprecise_slope = ~collinear & imprecise(reg.raw_slope_se_joint(), reg.slope_)
    if imprecise_slope.any():
        log.warning("%d metabolites: homeostasis not identifiable (with the corrections of their reactions, the "
                    "slope's standard error exceeds 1/%g of the typical slope); grouped after the others, flagged",
                    imprecise_slope.sum(), MIN_Z)
    # a run-level misfit leaves no species' fit trustworthy: the shared corrections absorbed it unevenly
    identified = ~collinear & ~misfit.flagged & ~imprecise_slope & (not misfit.misfit)
    points = np.column_stack([reg.slope_, reg.offset_])
    group = find_slope_groups if species_set_points(model) else find_groups
    grouping = group(points, reg.cov_, max_groups=cfg.max_groups, min_group_size=cfg.min_group_size, seed=seed,
                     trusted=identified)
    # one curve per group assumes the members share their law; with per-species set points they do not
    candidates = ("linear",) if species_set_points(model) else cfg.forms
    forms = fit_group_forms(reg, data.concentrations, grouping.labels, data.delta_t, candidates, cfg.form_threshold)
    if forms.nonlinear:  # once more, with the frozen-model corrections estimated next to the curves
        second = regression().fit(data, frozen, curves=forms.per_frame(data.concentrations))
        forms = fit_group_forms(second, data.concentrations, forms.labels, data.delta_t, candidates,
                                cfg.form_threshold, start=grouping.labels)
    if forms.reassigned:
        log.info("stage 1: %d metabolites regrouped by their groups' curves", forms.reassigned)
    fit = HomeostasisFit(
        slope=grouping.pooled[:, 0], offset=grouping.pooled[:, 1], slope_se=reg.slope_se_, offset_se=reg.offset_se_,
        groups=forms.labels, raw_slope=reg.slope_, raw_offset=reg.offset_, quadratic=reg.quadratic_,
        identified=identified, curves=forms.curves, form_bics=forms.bics,
    )
    return Stage1Result(fit, reg, frozen, window, misfit)
