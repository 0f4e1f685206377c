"""Stage-2 outputs: refined checkpoint, summary, figures and SPEC section 7 metrics.

Reporting layer (imports plotting); the numerical core is :mod:`sysid.refine`.
Truth, when given, is used here only, after fitting.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from sysid import plots
from sysid.checkpoint import save_checkpoint
from sysid.dataset import Dataset
from sysid.fitresult import HomeostasisFit
from sysid.metrics import model_metrics, node_curves
from sysid.refine import RefineResult
from sysid.simulate import Truth

REFINED_CHECKPOINT = "refined_model.pt"
INIT_CHECKPOINT = "stage1_init_model.pt"
SUMMARY = "refine_summary.json"


def refine_metrics(result: RefineResult, dataset: Dataset, truth: Truth, eps: float) -> dict[str, dict[str, float]]:
    """SPEC section 7 model keys (phase2_loss included) for the stage-1 initialisation and the refined model."""
    c0 = dataset.concentrations[0]
    out = {}
    for name, model, loss in (("stage1_init", result.init_model, result.init_train_loss),
                              ("refined", result.refined_model, result.refined_train_loss)):
        out[name] = {"phase2_loss": loss, **model_metrics(model, truth, c0, eps)}
    out["kept"] = out["stage1_init" if result.kept == "stage1" else "refined"]
    return out


def write_refine_outputs(
    result: RefineResult,
    dataset: Dataset,
    fit: HomeostasisFit,
    out_dir: str | Path,
    *,
    truth: Truth | None = None,
    eps: float = 0.1,
) -> dict[str, dict[str, float]]:
    """Write checkpoints, ``refine_summary.json`` and figures into an existing folder; return the metrics.

    The metrics (keys ``stage1_init``, ``refined`` and ``kept``) need the truth and are empty without it.
    """
    out = Path(out_dir)
    save_checkpoint(result.model, out / REFINED_CHECKPOINT)
    save_checkpoint(result.init_model, out / INIT_CHECKPOINT)
    metrics = refine_metrics(result, dataset, truth, eps) if truth is not None else {}
    (out / SUMMARY).write_text(json.dumps(_summary(result, metrics), indent=1))
    _figures(result, fit, truth, out)
    return metrics


def _summary(result: RefineResult, metrics: dict) -> dict:
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


def _figures(result: RefineResult, fit: HomeostasisFit, truth: Truth | None, out: Path) -> None:
    val_steps, val_losses = zip(*result.val_history, strict=True) if result.val_history else ((), ())
    plots.loss_curves({"train (batch)": list(result.train_history), "validation": list(val_losses)},
                      out / "refine_loss.png", ylabel="rollout loss", steps={"validation": list(val_steps)})
    a = result.model.a.detach().cpu().numpy()
    plots.embeddings(a, fit.groups, "embeddings by stage-1 group", out / "embeddings_groups.png")
    if truth is not None:
        plots.embeddings(a, truth.types, "embeddings by true type", out / "embeddings_truth.png")
        plots.node_functions(node_curves(result.model), truth, out / "mlp_node.png")
