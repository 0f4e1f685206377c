"""Pipeline jobs that read inputs and write a result folder atomically."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sysid.checkpoint import check_compatible, load_checkpoint
from sysid.config import Config
from sysid.dataset import load_dataset, load_truth, write_dataset
from sysid.errors import SysidInputError
from sysid.outputs import atomic_dir, check_writable
from sysid.simulate import simulate


def simulate_to_folder(
    cfg: Config, out: Path, *, force: bool = False, progress: Callable[[int], None] | None = None
) -> Path:
    with atomic_dir(out, force) as tmp:
        write_dataset(simulate(cfg.simulation, cfg.training.measurement_noise_level, progress), tmp)
    return Path(out)


def evaluate_to_folder(data: Path, model: Path, out: Path, cfg: Config, *, force: bool = False) -> dict[str, float]:
    from sysid.evaluate import evaluate_model

    dataset = load_dataset(data)
    truth = load_truth(data)
    if truth is None:
        raise SysidInputError(f"dataset {data} has no gt_model.pt: evaluation needs the ground truth")
    net = load_checkpoint(model, cfg.graph_model.aggr_type)
    check_compatible(net, dataset.network)
    with atomic_dir(out, force) as tmp:
        metrics = evaluate_model(net, dataset, truth, tmp, cfg.training.cluster_distance_threshold)
    return metrics


def _load_pair(data: Path, model: Path, cfg: Config):
    from sysid.frozen import check_species, load_frozen

    dataset = load_dataset(data)
    net = load_frozen(model, cfg.graph_model.aggr_type)
    check_species(net, data)
    check_compatible(net, dataset.network)
    return dataset, net.freeze_reactions(), load_truth(data)


def residuals_to_folder(data: Path, model: Path, out: Path, cfg: Config, *, force: bool = False) -> dict[str, float]:
    """residuals.npz, a summary of magnitudes and trace plots; returns the summary."""
    from sysid.reports import true_homeostasis, write_residuals
    from sysid.residuals import compute_residuals, evaluate_frozen, integral_form, summary

    check_writable(Path(out), force)
    dataset, net, truth = _load_pair(data, model, cfg)
    from sysid.frozen import transient_frames

    frozen = evaluate_frozen(net, dataset.concentrations, dataset.times)
    window, ramp = integral_form(dataset.concentrations, cfg.sysid.stage1)
    res = compute_residuals(dataset, frozen, window, ramp, skip=transient_frames(dataset, cfg.sysid.stage1),
                            trapezoid=not dataset.euler_steps)
    table = summary(dataset, frozen, res, true_homeostasis(dataset, truth) if truth is not None else None)
    with atomic_dir(out, force) as tmp:
        write_residuals(tmp, dataset, frozen, res, truth)
        (tmp / "summary.txt").write_text("".join(f"{k}: {v:.6g}\n" for k, v in table.items()))
    return table


def fit_to_folder(
    data: Path, model: Path, out: Path, cfg: Config, *, force: bool = False, refine: bool = False,
    progress: Callable[..., None] | None = None,
) -> dict[str, float]:
    """Stage 1 (and stage 2 with ``refine``): fits.csv, groups.json, analysis.log, figures."""
    from sysid.metrics import rate_constants_r2, stage1_metrics, write_analysis_log
    from sysid.reports import write_fits
    from sysid.stage1 import fit_stage1

    check_writable(Path(out), force)
    dataset, net, truth = _load_pair(data, model, cfg)
    if refine:
        check_rollout_length(dataset.n_frames, cfg.training.homeostasis_time_step)
    result = fit_stage1(dataset, net, cfg.sysid.stage1, seed=cfg.training.seed)
    fit = result.fit
    metrics: dict[str, float] = {}
    with atomic_dir(out, force) as tmp:
        write_fits(tmp, fit, truth)
        if refine:
            from sysid.refine import run_refine

            stage2 = run_refine(net, dataset, fit, cfg, tmp, truth=truth, progress=progress)
            # analysis.log holds the SPEC keys of the kept model; refine_summary.json has both candidates
            metrics.update(stage2.metrics.get("kept", {}))
        if truth is not None:
            metrics.update(stage1_metrics(fit.slope, fit.offset, fit.groups, truth))
            metrics.setdefault("rate_constants_R2", rate_constants_r2(net, truth.log_k))
        metrics["stage1_n_groups"] = float(fit.n_groups)
        metrics["stage1_n_unidentifiable"] = float((~fit.identified).sum()) if fit.identified is not None else 0.0
        write_analysis_log(metrics, tmp / "analysis.log")
    return metrics


def check_rollout_length(n_frames: int, horizon: int) -> None:
    """Stage 2 needs one training and one validation rollout window of ``horizon`` steps."""
    need = 2 * (horizon + 1)
    if n_frames < need:
        raise SysidInputError(
            f"the dataset has {n_frames} steps but --refine rolls out training.homeostasis_time_step = {horizon} "
            f"steps and needs at least {need}: use a longer dataset or a smaller homeostasis_time_step"
        )
