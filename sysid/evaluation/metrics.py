"""Evaluation metrics (docs/reference.md, analysis.log keys). Only evaluation code reads the truth."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from sysid.curves import SWEEP, line_fits, node_curves
from sysid.model import MetabolismModel
from sysid.stage1.result import HomeostasisFit
from sysid.truth import SpeciesTruth, Truth

if TYPE_CHECKING:
    from sysid.stage2.refine import RefineResult

DBSCAN_MIN_SAMPLES = 5


def hungarian_accuracy(labels: np.ndarray, types: np.ndarray) -> float:
    """Accuracy after mapping clusters to types one-to-one (unmapped clusters count as wrong)."""
    _, label_idx = np.unique(labels, return_inverse=True)
    _, type_idx = np.unique(types, return_inverse=True)
    confusion = np.zeros((type_idx.max() + 1, label_idx.max() + 1))
    np.add.at(confusion, (type_idx, label_idx), 1)
    rows, cols = linear_sum_assignment(-confusion)
    return float(confusion[rows, cols].sum() / len(types))


def per_type_ratios(prefix: str, slopes: np.ndarray, offsets: np.ndarray, truth: Truth) -> dict[str, float]:
    """Per-type mean slope/offset, their truth and ratios, and the mean slope ratio."""
    out: dict[str, float] = {}
    ratios = []
    for t in range(truth.n_types):
        mask = truth.types == t
        if not mask.any():
            continue
        s, o = float(np.mean(slopes[mask])), float(np.mean(offsets[mask]))
        gs, go = float(truth.slopes()[t]), float(truth.offsets()[t])
        out[f"{prefix}_slope_{t}"] = s
        out[f"{prefix}_gt_slope_{t}"] = gs
        out[f"{prefix}_offset_{t}"] = o
        out[f"{prefix}_gt_offset_{t}"] = go
        out[f"{prefix}_slope_ratio_{t}"] = s / gs if gs else float("nan")
        out[f"{prefix}_offset_ratio_{t}"] = o / go if go else float("nan")
        ratios.append(out[f"{prefix}_slope_ratio_{t}"])
    out["avg_slope_ratio"] = float(np.mean(ratios))
    return out


def node_metrics(model: MetabolismModel, truth: Truth) -> dict[str, float]:
    slopes, offsets = line_fits(SWEEP, node_curves(model))
    return per_type_ratios("MLP_node", slopes, offsets, truth)


def embedding_metrics(a: np.ndarray, truth: Truth, eps: float = 0.1) -> dict[str, float]:
    """DBSCAN on raw embeddings; noise forms one extra cluster; Hungarian accuracy."""
    from sklearn.cluster import DBSCAN  # here: the stage-1 metrics of `sysid fit` do not need sklearn.cluster
    from sklearn.metrics import silhouette_score

    labels = DBSCAN(eps=eps, min_samples=DBSCAN_MIN_SAMPLES).fit_predict(np.asarray(a, np.float64))
    out = {
        "embedding_cluster_acc": hungarian_accuracy(labels, truth.types),
        "embedding_n_clusters": float(len(set(labels) - {-1})),
    }
    if 2 <= len(set(labels)) < len(labels):
        out["embedding_silhouette"] = float(silhouette_score(a, labels))
    return out


def rate_constants_r2(model: MetabolismModel, true_log_k: np.ndarray) -> float:
    """R2 of the least-squares line of corrected log_k against the true log_k."""
    r = np.corrcoef(model.corrected_log_k(), np.asarray(true_log_k, np.float64))[0, 1]
    return float(r**2)


@torch.no_grad()
def node_magnitude(model: MetabolismModel, c0: np.ndarray) -> float:
    """Mean |MLP_node([c_i(frame 0), a_i])|."""
    c = torch.as_tensor(c0, dtype=model.dtype, device=model.device)
    return float(model.node(c).abs().mean())


def model_metrics(model: MetabolismModel, truth: Truth, c0: np.ndarray, eps: float = 0.1) -> dict[str, float]:
    """Every model-level analysis.log key of docs/reference.md (the loss is added by the refine)."""
    out = node_metrics(model, truth)
    out.update(embedding_metrics(model.a.detach().cpu().numpy(), truth, eps))
    out["rate_constants_R2"] = rate_constants_r2(model, truth.log_k)
    out["phase2_node_magnitude"] = node_magnitude(model, c0)
    return out


def stage1_metrics(slope: np.ndarray, offset: np.ndarray, groups: np.ndarray, truth: Truth) -> dict[str, float]:
    """stage1_* keys: per-type mean fitted slope/offset over the truth, group accuracy and count."""
    per_type = per_type_ratios("stage1", slope, offset, truth)
    out = {k: v for k, v in per_type.items() if "ratio" in k and k != "avg_slope_ratio"}
    out["stage1_avg_slope_ratio"] = per_type["avg_slope_ratio"]
    out["stage1_group_acc"] = hungarian_accuracy(groups, truth.types)
    out["stage1_n_groups"] = float(len(np.unique(groups)))
    return out


def species_stage1_metrics(fit: HomeostasisFit, truth: SpeciesTruth) -> dict[str, float]:
    """stage1_* keys against a per-species truth (SBML datasets), over the identified species with homeostasis.

    Per type t: mean fitted slope (pooled, as in fits.csv) over those species of type t, divided by -lambda_t;
    group accuracy; the set-point error |cb_fit / cb - 1| with cb_fit = -offset / slope (median, 90th percentile).
    Keys of a type with no such species, or of an empty set, are NaN.
    """
    ok = truth.types >= 0
    if fit.identified is not None:
        ok &= fit.identified
    out: dict[str, float] = {}
    ratios = []
    for t, lam in enumerate(truth.lambda_per_type):
        member = ok & (truth.types == t)
        ratio = float(np.mean(fit.slope[member]) / -lam) if member.any() and lam else float("nan")
        out[f"stage1_slope_ratio_{t}"] = ratio
        ratios.append(ratio)
    out["stage1_avg_slope_ratio"] = float(np.mean(ratios)) if ratios else float("nan")
    out["stage1_group_acc"] = hungarian_accuracy(fit.groups[ok], truth.types[ok]) if ok.any() else float("nan")
    out["stage1_n_groups"] = float(len(np.unique(fit.groups)))
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.abs((-fit.offset[ok] / fit.slope[ok]) / truth.baselines[ok] - 1.0)
    err = err[np.isfinite(err)]
    out["stage1_baseline_err_median"] = float(np.median(err)) if len(err) else float("nan")
    out["stage1_baseline_err_p90"] = float(np.quantile(err, 0.9)) if len(err) else float("nan")
    return out


@torch.no_grad()
def species_node_metrics(model: MetabolismModel, concentrations: np.ndarray, fit: HomeostasisFit,
                         truth: SpeciesTruth, n_points: int = 50) -> dict[str, float]:
    """MLP_node_slope_ratio_t against a per-species truth: each species' MLP_node line fitted over its own
    observed concentration range, the slopes averaged over the identified species of type t, over -lambda_t."""
    lo, hi = concentrations.min(axis=0), concentrations.max(axis=0)
    grid = np.linspace(lo, hi, n_points)  # (n_points, n_metabolites), one range per species
    node = model.node(torch.as_tensor(grid, dtype=model.dtype, device=model.device)).cpu().double().numpy()
    centred = grid - grid.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        slopes = np.sum(centred * (node - node.mean(axis=0)), axis=0) / np.sum(centred**2, axis=0)
    ok = (truth.types >= 0) & np.isfinite(slopes)
    if fit.identified is not None:
        ok &= fit.identified
    out = {}
    for t, lam in enumerate(truth.lambda_per_type):
        member = ok & (truth.types == t)
        known = member.any() and lam
        out[f"MLP_node_slope_ratio_{t}"] = float(np.mean(slopes[member]) / -lam) if known else float("nan")
    return out


def refine_metrics(result: RefineResult, c0: np.ndarray, truth: Truth, eps: float) -> dict[str, dict[str, float]]:
    """Model keys (phase2_loss included) of the stage-1 initialisation, the refined model and the kept one."""
    out = {}
    for name, model, loss in (("stage1_init", result.init_model, result.init_train_loss),
                              ("refined", result.refined_model, result.refined_train_loss)):
        out[name] = {"phase2_loss": loss, **model_metrics(model, truth, c0, eps)}
    out["kept"] = out["stage1_init" if result.kept == "stage1" else "refined"]
    return out
