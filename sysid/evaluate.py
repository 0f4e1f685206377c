"""Evaluation of a model against a dataset's truth: analysis.log and figures."""

from __future__ import annotations

from pathlib import Path

from sysid import plots
from sysid.dataset import Dataset
from sysid.metrics import (
    corrected_log_k,
    model_metrics,
    node_curves,
    rate_constants_r2,
    write_analysis_log,
)
from sysid.model import MetabolismModel
from sysid.simulate import Truth


def evaluate_model(
    model: MetabolismModel, data: Dataset, truth: Truth, out: Path, eps: float = 0.1, extra: dict | None = None
) -> dict[str, float]:
    """Write analysis.log and the figures of a model into ``out``; return the metrics."""
    metrics = dict(extra or {})
    metrics.update(model_metrics(model, truth, data.concentrations[0], eps))
    write_analysis_log(metrics, out / "analysis.log")
    plots.rate_constants(corrected_log_k(model), truth.log_k, rate_constants_r2(model, truth.log_k),
                         out / "rate_constants.png")
    plots.node_functions(node_curves(model), truth, out / "mlp_node.png")
    plots.embeddings(model.a.detach().cpu().numpy(), truth.types, "embeddings by true type",
                     out / "embeddings_truth.png")
    return metrics
