"""Phase 1 trainer: rate_constants_R2, dc/dt fit and time, for a few Adam-epoch budgets and seeds.

Run: python benchmarks/phase1_bench.py [--seeds 42 7 123] [--epochs 0 1]
Prints one row per (seed, budget), the medians per budget and the load average.
Wall seconds on a shared machine mislead: the CPU seconds of this process are
printed beside them (wall >> cpu/threads means the machine was busy).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from sysid.config import load_config
from sysid.evaluation.metrics import rate_constants_r2
from sysid.io.dataset import load_dataset, load_truth, write_dataset
from sysid.phase1.trainer import train_phase1
from sysid.simulation import simulate

HEADER = f"{'seed':>6} {'epochs':>7} {'wall_s':>8} {'cpu_s':>8} {'fit':>9} {'R2':>8}"


def dataset_for(seed: int, folder: Path):
    cfg = load_config(None).replace("simulation", seed=seed)
    write_dataset(simulate(cfg.simulation), folder)
    return cfg, load_dataset(folder), load_truth(folder)


def run(cfg, data, truth, n_epochs: int) -> tuple[float, float, float, float]:
    p1 = dataclasses.replace(cfg.sysid.phase1, n_epochs=n_epochs)
    cpu = time.process_time()
    result = train_phase1(data, cfg.graph_model, p1)
    cpu = time.process_time() - cpu
    return result.seconds, cpu, result.losses[-1], rate_constants_r2(result.model, truth.log_k)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 7, 123])
    parser.add_argument("--epochs", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    torch.set_num_threads(2)
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    rows = []
    print(HEADER)
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            cfg, data, truth = dataset_for(seed, Path(tmp))
            for n_epochs in args.epochs:
                wall, cpu, fit, r2 = run(cfg, data, truth, n_epochs)
                rows.append((seed, n_epochs, wall, cpu, fit, r2))
                print(f"{seed:>6} {n_epochs:>7} {wall:>8.1f} {cpu:>8.1f} {fit:>9.3g} {r2:>8.4f}", flush=True)
    print("\nmedians over seeds")
    print(f"{'epochs':>7} {'wall_s':>8} {'cpu_s':>8} {'fit':>9} {'R2':>8}")
    for n_epochs in args.epochs:
        sel = [r for r in rows if r[1] == n_epochs]
        med = [statistics.median(r[i] for r in sel) for i in (2, 3, 4, 5)]
        print(f"{n_epochs:>7} {med[0]:>8.1f} {med[1]:>8.1f} {med[2]:>9.3g} {med[3]:>8.4f}")
    print("load average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
