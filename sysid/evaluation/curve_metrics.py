"""Curve errors against the true regulation law (docs/reference.md, analysis.log keys).

For metabolite i of true type t, over N_POINTS concentrations spanning its observed
range (1st to 99th percentile of c_i over the data):

    err_i = rms(f_i(c) - h_t(c)) / rms(h_t(c) - mean h_t(c))

where f_i is the fitted curve (MLP_node([c, a_i]) or stage 1's curve); the key
``{prefix}_curve_err_{t}`` is the mean of err_i over the type's metabolites whose
range is not a single point. Only evaluation code reads the truth.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from sysid.model import MetabolismModel
from sysid.truth import Truth

N_POINTS = 50


def observed_grid(concentrations: np.ndarray, n_points: int = N_POINTS) -> np.ndarray:
    """(n_points, n_metabolites): each column spans that metabolite's 1st to 99th percentile."""
    lo, hi = np.percentile(np.asarray(concentrations, np.float64), [1, 99], axis=0)
    return lo + np.linspace(0.0, 1.0, n_points)[:, None] * (hi - lo)


def curve_errors(prefix: str, fitted: Callable[[np.ndarray], np.ndarray], truth: Truth,
                 concentrations: np.ndarray) -> dict[str, float]:
    """``{prefix}_curve_err_{t}`` per type, for fitted curves evaluated on a (points, metabolites) grid."""
    grid = observed_grid(concentrations)
    true = truth.rates(grid)
    diff = np.asarray(fitted(grid), np.float64) - true
    scale = np.sqrt(np.mean((true - true.mean(axis=0)) ** 2, axis=0))
    ok = scale > 0
    err = np.full(grid.shape[1], np.nan)
    err[ok] = np.sqrt(np.mean(diff[:, ok] ** 2, axis=0)) / scale[ok]
    out = {}
    for t in range(truth.n_types):
        member = (truth.types == t) & ok
        if member.any():
            out[f"{prefix}_curve_err_{t}"] = float(np.mean(err[member]))
    return out


def node_curve_errors(model: MetabolismModel, truth: Truth, concentrations: np.ndarray) -> dict[str, float]:
    """``node_curve_err_{t}``: MLP_node([c, a_i]) against h_t."""

    @torch.no_grad()
    def fitted(grid: np.ndarray) -> np.ndarray:
        return model.node(torch.as_tensor(grid, dtype=model.dtype, device=model.device)).cpu().double().numpy()

    return curve_errors("node", fitted, truth, concentrations)
