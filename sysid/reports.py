"""Writers of result files: tables, JSON, checkpoints, analysis.log and figures.

The reporting layer: with :mod:`sysid.pipeline` the only code that writes files or
draws figures. The truth, when given, is used here for display and metrics only.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sysid.curves import node_curves
from sysid.evaluation.metrics import model_metrics, rate_constants_r2
from sysid.io.checkpoint import save_checkpoint
from sysid.io.dataset import Dataset
from sysid.model import MetabolismModel
from sysid.stage1.detectability import Z_GUIDE, Detectability
from sysid.stage1.residuals import FrozenEvaluation, Residuals
from sysid.stage1.result import HomeostasisFit
from sysid.truth import Truth

if TYPE_CHECKING:
    from sysid.phase1.trainer import Phase1Result
    from sysid.stage2.refine import RefineResult

# The figures (matplotlib, through sysid.evaluation.plots) are imported by the writers that draw them, on
# first use: a command that draws none does not pay for matplotlib.

N_TRACES = 4
ANALYSIS_LOG = "analysis.log"
REFINED_CHECKPOINT = "refined_model.pt"
INIT_CHECKPOINT = "stage1_init_model.pt"
REFINE_SUMMARY = "refine_summary.json"
DETECTABILITY_CSV = "detectability.csv"


def true_homeostasis(data: Dataset, truth: Truth) -> np.ndarray:
    """The true regulation h_t(c) per frame, for display only."""
    return truth.rates(data.concentrations.astype(np.float64))


def write_residuals(out: Path, data: Dataset, frozen: FrozenEvaluation, res: Residuals, truth: Truth | None) -> None:
    np.savez_compressed(
        out / "residuals.npz",
        single_step=res.single_step, reaction=frozen.reaction, window=res.window, ramp=res.ramp,
        window_starts=res.starts,
        window_delta=res.delta, window_reaction=res.integrated_reaction, window_residual=res.windowed,
        window_valid=res.valid, delta_t=data.delta_t,
    )
    from sysid.evaluation import plots

    h = true_homeostasis(data, truth) if truth is not None else None
    time = np.arange(len(data.concentrations)) * data.delta_t
    picks = list(np.linspace(0, data.n_metabolites - 1, min(N_TRACES, data.n_metabolites)).astype(int))
    plots.residual_traces(time, data.dcdt, frozen.reaction, res.single_step, picks, out / "residual_traces.png", h)


def write_fits(out: Path, fit: HomeostasisFit, truth: Truth | None) -> None:
    """fits.csv and groups.json (the figures: :func:`write_stage1_figures`)."""
    columns = {
        "metabolite": np.arange(len(fit.slope)), "slope": fit.slope, "slope_se": fit.slope_se,
        "offset": fit.offset, "offset_se": fit.offset_se, "group": fit.groups,
        "raw_slope": fit.raw_slope, "raw_offset": fit.raw_offset, "quadratic_term": fit.quadratic,
        "identified": fit.identified,
    }
    table = {k: np.asarray(v) for k, v in columns.items() if v is not None}
    with open(out / "fits.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(list(table))
        for i in range(len(fit.slope)):
            w.writerow([_cell(v[i]) for v in table.values()])
    g_slope, g_offset, g_slope_se, g_offset_se = fit.group_estimates()
    groups = {
        "n_groups": fit.n_groups,
        "groups": [
            {"group": g, "members": np.nonzero(fit.groups == g)[0].tolist(),
             "slope": _number(g_slope[g]), "slope_se": _number(g_slope_se[g]),
             "offset": _number(g_offset[g]), "offset_se": _number(g_offset_se[g]),
             "baseline": _number(-g_offset[g] / g_slope[g]) if g_slope[g] else None,
             **_group_form(fit, g)}
            for g in range(fit.n_groups)
        ],
    }
    (out / "groups.json").write_text(json.dumps(groups, indent=1))


def write_stage1_figures(out: Path, fit: HomeostasisFit, report: Detectability, truth: Truth | None) -> None:
    """stage1_fits.png, stage1_groups.png and detectability.png."""
    from sysid.evaluation import plots

    g_slope, g_offset = fit.group_means()
    plots.stage1_scatter(fit.slope, fit.offset, fit.slope_se, fit.offset_se, fit.groups, out / "stage1_fits.png", truth)
    plots.group_lines(g_slope, g_offset, out / "stage1_groups.png", truth)
    raw = fit.slope if fit.raw_slope is None else fit.raw_slope
    relative = None if report.crb_slope is None else report.crb_slope / np.maximum(np.abs(raw), 1e-300)
    plots.detectability(report.z_score, report.identified, Z_GUIDE, out / "detectability.png", relative)


def _group_form(fit: HomeostasisFit, g: int) -> dict:
    """The form chosen for group g and its curve (with every candidate's BIC), when stage 1 compared forms."""
    if fit.curves is None:
        return {}
    bics = fit.form_bics[g] if fit.form_bics is not None else {}
    curve = fit.curve(g)
    return {"form": curve.form, "curve": curve.to_json(), "form_bic": {k: float(v) for k, v in bics.items()}}


def _number(value) -> float | None:
    """A float for JSON; None (null) where it is not finite (a group without a usable member)."""
    return float(value) if np.isfinite(value) else None


def _cell(value) -> str:
    if isinstance(value, np.bool_ | bool):
        return str(bool(value)).lower()
    if isinstance(value, np.integer | int):
        return str(int(value))
    return f"{float(value):.8g}"


def write_detectability(out: Path, report: Detectability, fit: HomeostasisFit) -> None:
    """detectability.csv, one row per metabolite (the figure: :func:`write_stage1_figures`)."""
    columns = {
        "metabolite": np.arange(len(report.z_score)), "z_score": report.z_score, "identified": report.identified,
        "group": fit.groups, "crb_slope": report.crb_slope, "crb_offset": report.crb_offset,
    }
    table = {k: np.asarray(v) for k, v in columns.items() if v is not None}
    with open(out / DETECTABILITY_CSV, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([*table, "collinear_reactions"])
        for i in range(len(report.z_score)):
            pairs = [f"{j}:{c:.3f}" for j, c in zip(report.collinear_reactions[i], report.collinear_cosine[i],
                                                    strict=True) if j >= 0]
            w.writerow([*(_cell(v[i]) for v in table.values()), " ".join(pairs)])


# --- analysis.log ----------------------------------------------------------------------------


def write_analysis_log(metrics: dict[str, float], path: Path) -> None:
    """One ``key: value`` per line (docs/reference.md lists the keys)."""
    Path(path).write_text("".join(f"{k}: {_fmt(v)}\n" for k, v in metrics.items()))


def read_analysis_log(path: Path) -> dict[str, float]:
    out = {}
    for line in Path(path).read_text().splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            out[k.strip()] = float(v)
    return out


def _fmt(v: float) -> str:
    v = float(v)
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.6g}"


# --- a model against the truth (sysid evaluate) --------------------------------------------------


def write_model_report(model: MetabolismModel, data: Dataset, truth: Truth, out: Path, eps: float) -> dict[str, float]:
    """analysis.log and the figures of a model against the truth; returns the metrics."""
    from sysid.evaluation import plots

    metrics = model_metrics(model, truth, data.concentrations[0], eps)
    write_analysis_log(metrics, out / ANALYSIS_LOG)
    plots.rate_constants(model.corrected_log_k(), truth.log_k, rate_constants_r2(model, truth.log_k),
                         out / "rate_constants.png")
    plots.node_functions(node_curves(model), truth, out / "mlp_node.png")
    plots.embeddings(model.a.detach().cpu().numpy(), truth.types, "embeddings by true type",
                     out / "embeddings_truth.png")
    return metrics


# --- stage 2 ------------------------------------------------------------------------------------


def write_refine_outputs(result: RefineResult, fit: HomeostasisFit, out: Path, metrics: dict, truth: Truth | None,
                         data_concentrations: np.ndarray | None = None) -> None:
    """Checkpoints (MetabolismGraph layout), refine_summary.json and figures, into an existing folder."""
    from sysid.evaluation import plots

    save_checkpoint(result.model, out / REFINED_CHECKPOINT)
    save_checkpoint(result.init_model, out / INIT_CHECKPOINT)
    (out / REFINE_SUMMARY).write_text(json.dumps(_refine_summary(result, metrics), indent=1))
    val_steps, val_losses = zip(*result.val_history, strict=True) if result.val_history else ((), ())
    plots.loss_curves({"train (batch)": list(result.train_history), "validation": list(val_losses)},
                      out / "refine_loss.png", ylabel="rollout loss", steps={"validation": list(val_steps)})
    a = result.model.a.detach().cpu().numpy()
    plots.embeddings(a, fit.groups, "embeddings by stage-1 group", out / "embeddings_groups.png")
    if truth is not None:
        plots.embeddings(a, truth.types, "embeddings by true type", out / "embeddings_truth.png")
        plots.node_functions(node_curves(result.model), truth, out / "mlp_node.png")
        c_max = 40.0 if data_concentrations is None else float(np.percentile(data_concentrations, 99))
        c = np.linspace(0.0, c_max, 200)
        grid = np.repeat(c[:, None], len(fit.groups), axis=1)
        plots.curves_vs_truth(c, node_curves(result.model, c), fit.curve_values(grid).T, truth, out / "curves.png")


def _refine_summary(result: RefineResult, metrics: dict) -> dict:
    return {
        "kept": result.kept,
        "checkpoint": REFINED_CHECKPOINT,
        "phase2_loss": result.phase2_loss,
        "validation_loss": {"stage1_init": result.init_val_loss, "refined": result.refined_val_loss},
        "training_loss": {"stage1_init": result.init_train_loss, "refined": result.refined_train_loss},
        "best_step": result.best_step,
        "seconds": result.seconds,
        "distillation": asdict(result.distill),
        "train_history": list(result.train_history),
        "validation_history": [list(v) for v in result.val_history],
        "metrics": metrics,
    }


# --- phase 1 ------------------------------------------------------------------------------------


def write_phase1(result: Phase1Result, summary: dict, paths: tuple[Path, Path, Path]) -> None:
    """The checkpoint, its JSON summary and its loss plot, at the three given paths."""
    from sysid.evaluation import plots

    ckpt, summary_path, plot_path = paths
    save_checkpoint(result.model, ckpt)
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    curves = {"normalised dc/dt loss (first solve, epochs, final solve)": list(result.losses)}
    with open(plot_path, "wb") as fh:  # a temporary name has no .png suffix; matplotlib defaults to png
        plots.loss_curves(curves, fh, ylabel="loss (per epoch)")
