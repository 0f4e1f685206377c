"""Stage 1 accuracy and speed across regimes.

    python benchmarks/stage1_bench.py [--repeats 3] [--quick]

For each regime: simulate, take a frozen model (the shipped reference on the
default regime; otherwise Phase 1 from the truth with log_k noise 0.1, the
checkpoint quality of the seeds), run stage 1 end to end (frozen-model
evaluation, residuals, regression, grouping) and print the stage1_* metrics and
the median wall time of several runs. The truth is read only to score.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from sysid.config import Config
from sysid.evaluation.metrics import stage1_metrics
from sysid.io.checkpoint import load_checkpoint
from sysid.io.dataset import Dataset
from sysid.io.defaults import reference_checkpoint
from sysid.phase1.from_truth import model_from_truth
from sysid.simulation import simulate
from sysid.stage1.fit import fit_stage1

REGIMES = {
    "default (shipped model)": ({}, 0.0, "reference"),
    "default, noise 0.002": ({}, 0.002, "reference"),
    "default, noise 0.01": ({}, 0.01, "reference"),
    "seed 7": ({"seed": 7}, 0.0, "truth"),
    "seed 123": ({"seed": 123}, 0.0, "truth"),
    "3 types": ({"n_metabolite_types": 3, "homeostatic_lambda_per_type": [0.001, 0.002, 0.003],
                 "homeostatic_baseline_per_type": [4.0, 6.0, 3.0]}, 0.0, "truth"),
    "4 types, other lambda/cb": ({"n_metabolite_types": 4,
                                  "homeostatic_lambda_per_type": [0.0005, 0.0015, 0.003, 0.001],
                                  "homeostatic_baseline_per_type": [7.0, 3.0, 5.0, 2.0], "seed": 11}, 0.0, "truth"),
    "1 type": ({"n_metabolite_types": 1, "homeostatic_lambda_per_type": [0.0015],
                "homeostatic_baseline_per_type": [5.0]}, 0.0, "truth"),
}
QUICK = ("default (shipped model)", "3 types")


def as_dataset(sim) -> Dataset:
    """What fitting code sees of a simulation: no truth."""
    return Dataset(sim.concentrations, sim.dcdt, sim.positions, sim.network, sim.delta_t)


def frozen_model(kind: str, sim, cfg: Config):
    if kind == "reference":
        return load_checkpoint(reference_checkpoint()).freeze_reactions()
    return model_from_truth(sim.network, sim.truth.log_k, cfg.graph_model, log_k_noise=0.1, seed=1,
                            concentrations=sim.concentrations)


def run(name: str, repeats: int) -> str:
    changes, noise, kind = REGIMES[name]
    cfg = Config().replace("simulation", **changes) if changes else Config()
    sim = simulate(cfg.simulation, noise)
    model = frozen_model(kind, sim, cfg)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fit_stage1(as_dataset(sim), model, cfg.sysid.stage1, seed=cfg.training.seed)
        times.append(time.perf_counter() - start)
    m = stage1_metrics(result.fit.slope, result.fit.offset, result.fit.groups, sim.truth)
    slopes = " ".join(f"{m[f'stage1_slope_ratio_{t}']:.4f}" for t in range(sim.truth.n_types))
    offsets = " ".join(f"{m[f'stage1_offset_ratio_{t}']:.4f}" for t in range(sim.truth.n_types))
    return (f"| {name} | {kind} | {result.window} | {statistics.median(times):.2f} | {slopes} | {offsets} | "
            f"{m['stage1_group_acc']:.2f} | {int(m['stage1_n_groups'])}/{sim.truth.n_types} |")


def main() -> None:
    torch.set_num_threads(1)  # as `sysid fit` runs
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="two regimes, one run each")
    args = parser.parse_args()
    names = QUICK if args.quick else tuple(REGIMES)
    print("| regime | frozen model | window | median s | slope ratios | offset ratios | group acc | groups |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in names:
        print(run(name, 1 if args.quick else args.repeats), flush=True)


if __name__ == "__main__":
    main()
