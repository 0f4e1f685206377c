"""Nonlinear regulation in stage 1: a curve form per group, chosen on the pooled group, and curve-based groups.

After the linear regression and grouping, every group's members' cleaned
windowed residuals (the frozen model's fitted corrections removed) are pooled,
and each candidate form of :mod:`sysid.stage1.forms` is fitted to them; the
form with the lowest BIC is the group's. When some group's form is not linear,
the groups found from (slope, offset) points can be wrong: the slope of a
straight line through a curve depends on the concentration range a metabolite
visits. Then every metabolite is reassigned to the group whose curve explains
its own rows best (weighted residual sum of squares), the curves are refitted,
and this repeats until the groups stop changing. Groups whose forms are all
linear keep the linear results unchanged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from sysid.stage1.forms import CANDIDATES, GroupCurve, PooledRows, choose_form
from sysid.stage1.regression import HomeostasisRegression

log = logging.getLogger(__name__)

MAX_REASSIGNMENTS = 6


@dataclass(frozen=True, eq=False)
class GroupForms:
    labels: np.ndarray  # (n_metabolites,) groups after curve-based reassignment (unchanged if all linear)
    curves: tuple[GroupCurve, ...]  # per group
    bics: tuple[dict[str, float], ...]  # per group: BIC of every candidate form
    reassigned: int  # metabolites whose group changed

    @property
    def nonlinear(self) -> bool:
        return any(c.form != "linear" for c in self.curves)

    def per_frame(self, conc: np.ndarray) -> np.ndarray:
        """Each metabolite's group curve at its concentrations (frames, metabolites); 0 in linear groups."""
        out = np.zeros(conc.shape)
        for g, curve in enumerate(self.curves):
            if curve.form != "linear":
                m = self.labels == g
                out[:, m] = curve(np.asarray(conc, np.float64)[:, m])
        return out


def pooled_rows(reg: HomeostasisRegression, conc: np.ndarray, members: np.ndarray, dt: float) -> PooledRows:
    """The cleaned windowed rows of ``members`` (metabolite indices), weighted as in the regression."""
    members = np.asarray(members)
    pick = np.isin(reg.rows_met_, members)
    position = np.full(conc.shape[1], -1)
    position[members] = np.arange(len(members))
    met = reg.rows_met_[pick]
    return PooledRows(
        conc=conc[:, members], y=reg.clean_[pick], member=position[met], win=reg.rows_win_[pick],
        w=reg.met_weights_[met], starts=reg.starts_, window=reg.window, ramp=reg.ramp, trapezoid=reg.trapezoid,
        dt=dt,
    )


def _fit_groups(reg, conc, labels, dt, candidates, threshold):
    curves, bics = [], []
    for g in range(labels.max() + 1):
        members = np.nonzero(labels == g)[0]
        curve, bic = choose_form(pooled_rows(reg, conc, members, dt), candidates, threshold)
        curves.append(curve)
        bics.append(bic)
    return curves, bics


def _member_rss(reg, conc, curves, dt) -> np.ndarray:
    """(n_metabolites, n_groups): weighted RSS of each metabolite's own rows under each group's curve."""
    n = conc.shape[1]
    out = np.full((n, len(curves)), np.inf)
    for i in range(n):
        rows = pooled_rows(reg, conc, np.array([i]), dt)
        if len(rows.y) == 0:
            continue
        for g, curve in enumerate(curves):
            pred = rows.design(curve.form, curve.shape, curve.centre) @ np.asarray(curve.coef)
            out[i, g] = float(np.sum(rows.w * (rows.y - pred) ** 2))
    return out


def fit_group_forms(reg: HomeostasisRegression, conc: np.ndarray, labels: np.ndarray, dt: float,
                    candidates: tuple[str, ...] = CANDIDATES, threshold: float = 0.3, *,
                    start: np.ndarray | None = None) -> GroupForms:
    """Choose each group's form by BIC; reassign metabolites by curve when some form is nonlinear.

    ``start`` (default ``labels``) are the groups the reassignment count refers to.
    """
    conc = np.asarray(conc, np.float64)
    labels = np.asarray(labels).copy()
    start = labels.copy() if start is None else np.asarray(start)
    curves, bics = _fit_groups(reg, conc, labels, dt, candidates, threshold)
    for _ in range(MAX_REASSIGNMENTS):
        if all(c.form == "linear" for c in curves):
            break
        rss = _member_rss(reg, conc, curves, dt)
        new = np.where(np.isfinite(rss).any(axis=1), np.argmin(rss, axis=1), labels)
        if np.array_equal(new, labels) or len(np.unique(new)) < len(curves):
            break
        labels = new
        curves, bics = _fit_groups(reg, conc, labels, dt, candidates, threshold)
    for g, (curve, bic) in enumerate(zip(curves, bics, strict=True)):
        log.info("stage 1 group %d: form %s (BIC %s)", g, curve.form,
                 ", ".join(f"{k} {v:.1f}" for k, v in bic.items()))
    return GroupForms(labels, tuple(curves), tuple(bics), int(np.sum(labels != start)))
