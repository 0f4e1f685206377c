"""Writers of result folders for the residual and fit stages (tables, JSON, figures)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from sysid import plots
from sysid.dataset import Dataset
from sysid.fitresult import HomeostasisFit
from sysid.residuals import FrozenEvaluation, Residuals
from sysid.simulate import Truth

N_TRACES = 4


def true_homeostasis(data: Dataset, truth: Truth) -> np.ndarray:
    """-lambda_t (c - cb_t) per frame, for display only."""
    lam, cb = truth.lambdas[truth.types], truth.baselines[truth.types]
    return -lam * (data.concentrations - cb)


def write_residuals(out: Path, data: Dataset, frozen: FrozenEvaluation, res: Residuals, truth: Truth | None) -> None:
    np.savez_compressed(
        out / "residuals.npz",
        single_step=res.single_step, reaction=frozen.reaction, window=res.window, ramp=res.ramp,
        window_starts=res.starts,
        window_delta=res.delta, window_reaction=res.integrated_reaction, window_residual=res.windowed,
        window_valid=res.valid, delta_t=data.delta_t,
    )
    h = true_homeostasis(data, truth) if truth is not None else None
    time = np.arange(len(data.concentrations)) * data.delta_t
    picks = list(np.linspace(0, data.n_metabolites - 1, min(N_TRACES, data.n_metabolites)).astype(int))
    plots.residual_traces(time, data.dcdt, frozen.reaction, res.single_step, picks, out / "residual_traces.png", h)


def write_fits(out: Path, fit: HomeostasisFit, truth: Truth | None) -> None:
    columns = {
        "metabolite": np.arange(len(fit.slope)), "slope": fit.slope, "slope_se": fit.slope_se,
        "offset": fit.offset, "offset_se": fit.offset_se, "group": fit.groups,
        "raw_slope": fit.raw_slope, "raw_offset": fit.raw_offset, "quadratic_term": fit.quadratic,
        "identified": fit.identified,
    }
    columns = {k: v for k, v in columns.items() if v is not None}
    with open(out / "fits.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(list(columns))
        for i in range(len(fit.slope)):
            w.writerow([_cell(v[i]) for v in columns.values()])
    g_slope, g_offset = fit.group_means()
    groups = {
        "n_groups": fit.n_groups,
        "groups": [
            {"group": g, "members": np.nonzero(fit.groups == g)[0].tolist(),
             "slope": float(g_slope[g]), "offset": float(g_offset[g]),
             "baseline": float(-g_offset[g] / g_slope[g]) if g_slope[g] else None}
            for g in range(fit.n_groups)
        ],
    }
    (out / "groups.json").write_text(json.dumps(groups, indent=1))
    plots.stage1_scatter(fit.slope, fit.offset, fit.slope_se, fit.offset_se, fit.groups, out / "stage1_fits.png", truth)
    plots.group_lines(g_slope, g_offset, out / "stage1_groups.png", truth)


def _cell(value) -> str:
    if isinstance(value, np.bool_ | bool):
        return str(bool(value)).lower()
    if isinstance(value, np.integer | int):
        return str(int(value))
    return f"{float(value):.8g}"
