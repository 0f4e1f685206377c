"""Nonlinear homeostasis (issue 14 targets) and the planted slope bias, at the default size.

1. For the example regimes examples/nonlinear/{saturating,hill}.yaml (default network, seed 42, the
   shipped reference frozen model): `fit --refine` through the pipeline; prints the chosen forms, group
   accuracy, stage1_curve_err_t and node_curve_err_t of the stage-1 initialisation, the refined and the
   kept model.
2. Planted bias on the default linear regime (frozen model from the truth with 5% log_k noise): every
   stage-1 slope 10% too steep with standard errors claiming 1%; the slope ratio of MLP_node after the
   refine with the conserved-identity correction (gauss_newton_steps 3) and without it (0).

3. With --variants: other seeds (networks), parameters and a 3-type regime (VARIANTS below), each with a
   frozen model from the truth with 10% log_k noise.

Writes benchmarks/results/nonlinear.txt (nonlinear_variants.txt with --variants).

    PYTHONPATH=. python benchmarks/nonlinear_targets.py [--variants]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from sysid.config import Config, RefineConfig, load_config
from sysid.curves import SWEEP, line_fits, node_curves
from sysid.io.dataset import load_dataset, write_dataset
from sysid.io.defaults import reference_checkpoint
from sysid.phase1.from_truth import model_from_truth
from sysid.pipeline import fit_to_folder, phase1_to_file, simulate_to_folder
from sysid.reports import read_analysis_log
from sysid.simulation import simulate
from sysid.stage1.result import HomeostasisFit
from sysid.stage2.refine import refine

ROOT = Path(__file__).resolve().parents[1]


# Variants the example configs do not show: other seeds (so other networks), parameters, set points, and a
# third type; the frozen model is made from the truth with 10% log_k noise (seed 1).
VARIANTS = {
    "saturating seed 7": dict(homeostasis_form="saturating", seed=7, homeostatic_lambda_per_type=[0.002, 0.001],
                              homeostatic_baseline_per_type=[5.0, 3.0], homeostatic_scale_per_type=[1.5, 4.0]),
    "saturating seed 11": dict(homeostasis_form="saturating", seed=11, homeostatic_lambda_per_type=[0.0015, 0.003],
                               homeostatic_baseline_per_type=[3.0, 7.0], homeostatic_scale_per_type=[3.0, 1.0]),
    "saturating 3 types, seed 13": dict(homeostasis_form="saturating", seed=13, n_metabolite_types=3,
                                        homeostatic_lambda_per_type=[0.001, 0.002, 0.003],
                                        homeostatic_baseline_per_type=[4.0, 6.0, 3.0],
                                        homeostatic_scale_per_type=[2.0, 3.0, 1.5]),
    "hill seed 7": dict(homeostasis_form="hill", seed=7, homeostatic_vmax_per_type=[0.01, 0.006],
                        homeostatic_scale_per_type=[5.0, 3.0], homeostatic_hill_per_type=[1.5, 4.0],
                        homeostatic_decay_per_type=[0.0015, 0.001]),
    "hill seed 11": dict(homeostasis_form="hill", seed=11, homeostatic_vmax_per_type=[0.012, 0.012],
                         homeostatic_scale_per_type=[3.0, 8.0], homeostatic_hill_per_type=[2.0, 2.5],
                         homeostatic_decay_per_type=[0.001, 0.0008]),
}


def regime(name: str, cfg: Config, model: Path | None, work: Path) -> list[str]:
    """``fit --refine`` on one regime (``model`` None: a frozen model from the truth with 10% log_k noise)."""
    tag = name.replace(" ", "_").replace(",", "")
    data, out = work / f"data_{tag}", work / f"fit_{tag}"
    simulate_to_folder(cfg, data)
    if model is None:
        model = work / f"frozen_{tag}.pt"
        phase1_to_file(data, model, cfg, from_truth=True, log_k_noise=0.1, seed=1)
    fit_to_folder(data, model, out, cfg, refine_stage=True)
    log = read_analysis_log(out / "analysis.log")
    summary = json.loads((out / "refine_summary.json").read_text())
    groups = json.loads((out / "groups.json").read_text())["groups"]
    lines = [f"{name}: forms {[g['form'] for g in groups]}, group accuracy {log['stage1_group_acc']:.2f}, "
             f"kept {summary['kept']} (step {summary['best_step']})"]
    for t in range(cfg.simulation.n_metabolite_types):
        m = {k: summary["metrics"][k][f"node_curve_err_{t}"] for k in ("stage1_init", "refined")}
        lines.append(f"  type {t}: stage1_curve_err {log[f'stage1_curve_err_{t}']:.4f}  node_curve_err: "
                     f"init {m['stage1_init']:.4f}, refined {m['refined']:.4f}, kept {log[f'node_curve_err_{t}']:.4f}")
    return lines


def example(name: str, work: Path) -> list[str]:
    return regime(name, load_config(ROOT / "examples" / "nonlinear" / f"{name}.yaml"), reference_checkpoint(), work)


def variant(name: str, work: Path) -> list[str]:
    return regime(name, Config().replace("simulation", **VARIANTS[name]), None, work)


def planted_bias(work: Path) -> list[str]:
    cfg = Config().replace("training", data_augmentation_loop=8, homeostasis_time_step=16)
    sim = simulate(cfg.simulation)
    write_dataset(sim, work)
    data = load_dataset(work)
    frozen = model_from_truth(sim.network, sim.truth.log_k, cfg.graph_model, log_k_noise=0.05, seed=2,
                              concentrations=sim.concentrations)
    t = sim.truth
    s, o = t.slopes()[t.types] * 1.10, t.offsets()[t.types].copy()
    fit = HomeostasisFit(s, o, 0.01 * np.abs(s), 0.01 * np.abs(o), t.types.copy())
    lines = []
    for steps in (3, 0):
        c = cfg.replace("sysid", refine=RefineConfig(validate_every=2, eval_windows=32, gauss_newton_steps=steps))
        result = refine(frozen, data, fit, options=c.refine_options(), seed=0)
        slopes, offsets = line_fits(SWEEP, node_curves(result.model))
        ratio = [float(np.mean(slopes[t.types == k]) / t.slopes()[k]) for k in range(2)]
        off = [float(np.mean(offsets[t.types == k]) / t.offsets()[k]) for k in range(2)]
        lines.append(f"planted +10% slope, gauss_newton_steps {steps}: kept {result.kept}, slope ratios "
                     f"{ratio[0]:.4f} {ratio[1]:.4f}, offset ratios {off[0]:.4f} {off[1]:.4f}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", action="store_true", help="the variants instead (nonlinear_variants.txt)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.variants:
            lines, name = [line for v in VARIANTS for line in variant(v, work)], "nonlinear_variants.txt"
        else:
            lines, name = example("hill", work) + example("saturating", work), "nonlinear.txt"
            (work / "bias").mkdir()
            lines += planted_bias(work / "bias")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    (ROOT / "benchmarks" / "results" / name).write_text(text)


if __name__ == "__main__":
    main()
