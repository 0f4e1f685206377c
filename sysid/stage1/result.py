"""The result of stage 1: per-metabolite homeostasis fits and behavioural groups."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sysid.stage1.forms import GroupCurve
from sysid.stage1.grouping import robust_weighted_mean


@dataclass(frozen=True, eq=False)
class HomeostasisFit:
    """h_i(c) ~ slope[i] * c + offset[i], with standard errors and a group per metabolite.

    Built from data and the frozen model only; never from type labels.
    """

    slope: np.ndarray  # (n_metabolites,)
    offset: np.ndarray  # (n_metabolites,)
    slope_se: np.ndarray  # (n_metabolites,)
    offset_se: np.ndarray  # (n_metabolites,)
    groups: np.ndarray  # (n_metabolites,) int in 0..n_groups-1
    raw_slope: np.ndarray | None = None  # per-metabolite estimates before pooling within groups
    raw_offset: np.ndarray | None = None
    quadratic: np.ndarray | None = None  # bool: the sparse library check kept a c^2 term
    identified: np.ndarray | None = None  # bool: the data can separate this homeostasis from the model's errors
    curves: tuple[GroupCurve, ...] | None = None  # per group: the curve of the form chosen on the pooled group
    form_bics: tuple[dict[str, float], ...] | None = None  # per group: BIC of every candidate form
    # per group: slope, offset and their standard errors when estimated as values the members share
    group_values: np.ndarray | None = None  # (n_groups, 4)

    def is_curved(self, group: int) -> bool:
        return self.curves is not None and self.curves[group].form != "linear"

    def curve(self, group: int) -> GroupCurve:
        """The chosen curve of a group (stage 1 compared forms)."""
        if self.curves is None:
            raise ValueError("this fit has no group curves")
        return self.curves[group]

    def curve_values(self, c: np.ndarray, extrapolate: bool = False) -> np.ndarray:
        """Stage 1's regulation of every metabolite at concentrations c of shape (..., n_metabolites):
        its group's curve where that is not linear, else its own line slope * c + offset."""
        c = np.asarray(c, np.float64)
        out = self.slope * c + self.offset
        for g in range(self.n_groups):
            if self.is_curved(g):
                m = self.groups == g
                out[..., m] = self.curve(g)(c[..., m], extrapolate)
        return out

    @property
    def n_groups(self) -> int:
        return int(self.groups.max()) + 1 if len(self.groups) else 0

    def group_means(self) -> tuple[np.ndarray, np.ndarray]:
        """Slope and offset of each group (see :meth:`group_estimates`)."""
        slope, offset, _, _ = self.group_estimates()
        return slope, offset

    def group_estimates(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per group: slope, offset and their standard errors.

        ``group_values`` when the fit has them (the output-error answer: generalised least squares with the
        estimates' full covariance, :mod:`sysid.stage1.shared`). Otherwise each is the robust inverse-variance
        weighted mean of the members' own estimates (identified members, when any;
        :func:`sysid.stage1.grouping.robust_weighted_mean`), so an outlier counts little, with its standard
        error."""
        if self.group_values is not None:
            values = self.group_values
            return values[:, 0], values[:, 1], values[:, 2], values[:, 3]
        raw_slope = self.slope if self.raw_slope is None else self.raw_slope
        raw_offset = self.offset if self.raw_offset is None else self.raw_offset
        out = np.full((4, self.n_groups), np.nan)
        for g in range(self.n_groups):
            m = self.groups == g
            if self.identified is not None and (m & self.identified).any():
                m = m & self.identified
            out[0, g], out[2, g] = robust_weighted_mean(raw_slope[m], self.slope_se[m] ** 2)
            out[1, g], out[3, g] = robust_weighted_mean(raw_offset[m], self.offset_se[m] ** 2)
        return out[0], out[1], out[2], out[3]
