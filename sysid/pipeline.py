"""Pipeline jobs: read inputs, run a stage, write a result folder atomically.

With :mod:`sysid.reports` (the writers) this is the only code that touches files
and figures; the CLI calls these functions and nothing below them.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from sysid.config import Config
from sysid.errors import SysidInputError
from sysid.evaluation.curve_metrics import curve_errors, node_curve_errors
from sysid.evaluation.metrics import rate_constants_r2, species_stage1_metrics, stage1_metrics
from sysid.frozen import FrozenModel, check_species, load_frozen, transient_frames
from sysid.io.atomic import atomic_dir, atomic_file, check_writable
from sysid.io.checkpoint import check_compatible, load_checkpoint
from sysid.io.dataset import Dataset, load_dataset, load_species_truth, load_truth, write_dataset
from sysid.model import MetabolismModel
from sysid.reports import (
    ANALYSIS_LOG,
    true_homeostasis,
    write_analysis_log,
    write_detectability,
    write_fits,
    write_model_report,
    write_phase1,
    write_residuals,
    write_stage1_figures,
)
from sysid.stage1.fit import fit_stage1
from sysid.stage1.output_error import OutputErrorRegression
from sysid.stage1.residuals import compute_residuals, evaluate_frozen, integral_form, summary
from sysid.truth import Truth

if TYPE_CHECKING:
    from sysid.phase1.trainer import Phase1Result

# A job imports what only some runs need (the refine, phase 1, the simulator, SBML) inside the function that
# needs it: `sysid fit` without --refine then loads neither the refine nor the simulator.

def simulate_to_folder(
    cfg: Config, out: Path, *, force: bool = False, progress: Callable[[int], None] | None = None
) -> Path:
    from sysid.simulation import simulate

    with atomic_dir(out, force) as tmp:
        write_dataset(simulate(cfg.simulation, cfg.training.measurement_noise_level, progress,
                                    noise_kind=cfg.training.measurement_noise_kind), tmp)
    return Path(out)


def simulate_network_to_folder(network: str, cfg: Config, out: Path, *, force: bool = False,
                               progress: Callable[[int], None] | None = None) -> Path:
    """``sysid simulate --network``: a real topology (SBML file or cobra:NAME) with synthetic kinetics."""
    from sysid.simulation.genome import simulate_network

    check_writable(Path(out), force)
    sim = simulate_network(network, cfg, progress)
    with atomic_dir(out, force) as tmp:
        write_dataset(sim, tmp)
    return Path(out)


def evaluate_to_folder(data: Path, model: Path, out: Path, cfg: Config, *, force: bool = False) -> dict[str, float]:
    check_writable(Path(out), force)
    dataset = load_dataset(data)
    truth = _require_truth(load_truth(data), data, "evaluation")
    net = load_checkpoint(model, cfg.graph_model.aggr_type)
    check_compatible(net, dataset.network)
    with atomic_dir(out, force) as tmp:
        metrics = write_model_report(net, dataset, truth, tmp, cfg.training.cluster_distance_threshold)
    return metrics


def residuals_to_folder(data: Path, model: Path, out: Path, cfg: Config, *, force: bool = False) -> dict[str, float]:
    """residuals.npz, a summary of magnitudes and trace plots; returns the summary."""
    check_writable(Path(out), force)
    dataset, net, truth = _load_pair(data, model, cfg)
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
    data: Path, model: Path, out: Path, cfg: Config, *, force: bool = False, refine_stage: bool = False,
    progress: Callable[..., None] | None = None, stage1_progress: Callable[..., None] | None = None,
) -> dict[str, float]:
    """Stage 1 (and stage 2 with ``refine_stage``): fits.csv, groups.json, analysis.log, figures. ``progress``
    follows the refine, ``stage1_progress`` stage 1's output-error fit (when it runs)."""
    check_writable(Path(out), force)
    if refine_stage:
        from sysid.stage2.refine import check_rollout_length, refine
        from sysid.stage2.sbml_node import SbmlNodeModel, sbml_refine_options
    dataset, net, truth = _load_pair(data, model, cfg)
    options = cfg.refine_options()
    stage2_model = net if isinstance(net, MetabolismModel) else None
    if refine_stage:
        check_rollout_length(dataset.n_frames, cfg.training.homeostasis_time_step)
        if stage2_model is None:  # an SBML frozen model: MLP_node and a on top of its rate laws
            stage2_model = SbmlNodeModel(net, cfg.graph_model, seed=cfg.training.seed)
            options = sbml_refine_options(options)
    stage1 = fit_stage1(dataset, net, cfg.sysid.stage1, seed=cfg.training.seed, progress=stage1_progress)
    fit = stage1.fit
    metrics: dict[str, float] = {}
    species_truth = load_species_truth(data) if truth is None else None
    with atomic_dir(out, force) as tmp:
        write_fits(tmp, fit, truth)
        write_detectability(tmp, stage1.detectability, fit)
        if refine_stage and stage2_model is not None:
            from sysid.evaluation.metrics import refine_metrics, species_node_metrics
            from sysid.reports import write_refine_outputs

            device = "cpu" if stage2_model is not net else None  # compiled SBML laws run on the CPU
            result = refine(stage2_model, dataset, fit, options=options, seed=cfg.training.seed,
                            progress=progress, device=device)
            eps = cfg.training.cluster_distance_threshold
            both = refine_metrics(result, dataset.concentrations[0], truth, eps) if truth is not None else {}
            curves = _node_curve_errors(result, truth, dataset)
            write_refine_outputs(result, fit, tmp, {k: {**v, **curves.get(k, {})} for k, v in both.items()}, truth,
                                 dataset.concentrations)
            # analysis.log holds the model keys of the kept model; refine_summary.json has both candidates
            metrics.update(both.get("kept", {"phase2_loss": result.phase2_loss}))  # the loss needs no truth
            if species_truth is not None:
                metrics.update(species_node_metrics(result.model, dataset.concentrations, fit, species_truth))
        if truth is not None:
            metrics.update(stage1_metrics(fit.slope, fit.offset, fit.groups, truth))
            if isinstance(net, MetabolismModel):
                metrics.setdefault("rate_constants_R2", rate_constants_r2(net, truth.log_k))
        if species_truth is not None:
            metrics.update(species_stage1_metrics(fit, species_truth))
        metrics["stage1_n_groups"] = float(fit.n_groups)
        metrics["stage1_n_unidentifiable"] = float((~fit.identified).sum()) if fit.identified is not None else 0.0
        metrics["stage1_frozen_misfit"] = float(stage1.misfit.misfit)
        metrics["stage1_misfit_statistic"] = stage1.misfit.statistic
        metrics["stage1_output_error"] = float(isinstance(stage1.regression, OutputErrorRegression))
        if truth is not None:  # the curve keys come last, so the line keys keep their place
            metrics.update(curve_errors("stage1", fit.curve_values, truth, dataset.concentrations))
            metrics.update(curves.get("kept", {}) if refine_stage else {})
        write_analysis_log(metrics, tmp / ANALYSIS_LOG)
        write_stage1_figures(tmp, fit, stage1.detectability, truth)  # last: the tables and the log come first
    return metrics


def phase1_to_file(
    data: Path,
    out: Path,
    cfg: Config,
    *,
    force: bool = False,
    from_truth: bool = False,
    log_k_noise: float = 0.0,
    seed: int | None = None,
    progress: Callable[..., None] | None = None,
) -> dict:
    """Make a frozen model for ``data`` and write CKPT, CKPT.json (summary) and CKPT.loss.png, atomically.

    The truth (gt_model.pt) is read for ``from_truth`` and, otherwise, only to
    report rate_constants_R2 while training; it never enters the loss.
    """
    out = Path(out)
    paths = (out, out.with_name(out.name + ".json"), out.with_name(out.name + ".loss.png"))
    for path in paths:
        check_writable(path, force)
    dataset = load_dataset(data)
    truth = load_truth(data)
    seed = cfg.sysid.phase1.seed if seed is None else seed
    from sysid.phase1.trainer import train_phase1

    if from_truth:
        result = _from_truth(dataset, _require_truth(truth, data, "--from-truth"), cfg, log_k_noise, seed)
    else:
        monitor = (lambda m: {"R2": rate_constants_r2(m, truth.log_k)}) if truth is not None else None
        p1 = dataclasses.replace(cfg.sysid.phase1, seed=seed)
        result = train_phase1(dataset, cfg.graph_model, p1, progress=progress, monitor=monitor)
    summary = _phase1_summary(result, data, from_truth, log_k_noise, seed, truth)
    with atomic_file(paths[0], force) as ckpt, atomic_file(paths[1], force) as js, \
            atomic_file(paths[2], force) as png:
        write_phase1(result, summary, (ckpt, js, png))
    return summary


def _node_curve_errors(result, truth: Truth | None, dataset: Dataset) -> dict[str, dict[str, float]]:
    """node_curve_err_t of the stage-1 initialisation, the refined and the kept model (empty without truth)."""
    if truth is None:
        return {}
    out = {name: node_curve_errors(model, truth, dataset.concentrations)
           for name, model in (("stage1_init", result.init_model), ("refined", result.refined_model))}
    out["kept"] = out["stage1_init" if result.kept == "stage1" else "refined"]
    return out


def _require_truth(truth: Truth | None, data: Path, purpose: str) -> Truth:
    if truth is None:
        raise SysidInputError(f"dataset {data} has no gt_model.pt: {purpose} needs the ground truth")
    return truth


def _load_pair(data: Path, model: Path, cfg: Config) -> tuple[Dataset, FrozenModel, Truth | None]:
    dataset = load_dataset(data)
    net = load_frozen(model, cfg.graph_model.aggr_type)
    check_species(net, data)
    check_compatible(net, dataset.network)
    return dataset, net.freeze_reactions(), load_truth(data)


def _from_truth(dataset: Dataset, truth: Truth, cfg: Config, log_k_noise: float, seed: int) -> Phase1Result:
    from sysid.phase1.from_truth import model_from_truth
    from sysid.phase1.trainer import Phase1Result

    start = time.perf_counter()
    model = model_from_truth(dataset.network, truth.log_k, cfg.graph_model, log_k_noise=log_k_noise,
                             seed=seed, concentrations=dataset.concentrations)
    return Phase1Result(model, (), (), time.perf_counter() - start, "cpu")


def _phase1_summary(result: Phase1Result, data: Path, from_truth: bool, log_k_noise: float, seed: int,
                    truth: Truth | None) -> dict:
    out = {
        "data": str(Path(data).absolute()),
        "method": "from_truth" if from_truth else "train",
        "seed": seed,
        "seconds": round(result.seconds, 2),
        "device": result.device,
        "epochs": max(len(result.losses) - 2, 0),
        "final_loss": result.losses[-1] if result.losses else None,
    }
    if from_truth:
        out["log_k_noise"] = log_k_noise
    if truth is not None:
        out["rate_constants_R2"] = rate_constants_r2(result.model, truth.log_k)
    return out


# --- SBML models (the sbml extra: python-libsbml, libroadrunner) ---------------------------------


def simulate_sbml_to_folder(model: Path, cfg: Config, out: Path, *, force: bool = False,
                            progress: Callable[[int], None] | None = None) -> Path:
    """``sysid simulate --sbml``: experiments of a homeostatic SBML model simulated by libroadrunner."""
    from sysid.sbml.simulate import simulate_sbml, write_sbml_dataset

    check_writable(Path(out), force)
    sim = simulate_sbml(model, cfg.sbml, progress)
    with atomic_dir(out, force) as tmp:
        write_sbml_dataset(sim, tmp)
    return Path(out)


def perturb_to_file(model: Path, out: Path, *, rate_noise: float | None, param_noise: float | None, seed: int,
                    force: bool = False) -> Path:
    """``sysid perturb``: a frozen SBML model with a controlled error, checked to compile."""
    from sysid.sbml.compiled import compile_model
    from sysid.sbml.perturb import perturb, write_document
    from sysid.sbml.reader import read_document

    check_writable(Path(out), force)
    doc = perturb(read_document(model), rate_noise=rate_noise, param_noise=param_noise, seed=seed)
    compile_model(doc)  # the result must still be a model sysid can use
    with atomic_file(out, force) as tmp:
        write_document(doc, tmp)
    return Path(out)
