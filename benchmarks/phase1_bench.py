"""Phase 1 trainer: rate_constants_R2 against wall time, for a few epoch budgets and seeds.

Run: python benchmarks/phase1_bench.py [--seeds 42 7 123] [--epochs 1 4 12]
Prints one row per (seed, budget) and the medians per budget.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
from pathlib import Path

import torch

from sysid.config import load_config
from sysid.dataset import load_dataset, load_truth, write_dataset
from sysid.metrics import rate_constants_r2
from sysid.phase1 import train_phase1
from sysid.simulate import simulate


def dataset_for(seed: int, folder: Path):
    cfg = load_config(None).replace("simulation", seed=seed)
    write_dataset(simulate(cfg.simulation), folder)
    return cfg, load_dataset(folder), load_truth(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 7, 123])
    parser.add_argument("--epochs", type=int, nargs="+", default=[1, 4, 12])
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows = []
    print(f"{'seed':>6} {'epochs':>7} {'seconds':>8} {'R2':>8}")
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            cfg, data, truth = dataset_for(seed, Path(tmp))
            for n_epochs in args.epochs:
                p1 = dataclasses.replace(cfg.sysid.phase1, n_epochs=n_epochs)
                result = train_phase1(data, cfg.graph_model, p1)
                r2 = rate_constants_r2(result.model, truth.log_k)
                rows.append((seed, n_epochs, result.seconds, r2))
                print(f"{seed:>6} {n_epochs:>7} {result.seconds:>8.1f} {r2:>8.4f}", flush=True)
    print("\nmedians over seeds")
    print(f"{'epochs':>7} {'seconds':>8} {'R2':>8}")
    for n_epochs in args.epochs:
        sel = [r for r in rows if r[1] == n_epochs]
        sec = statistics.median(r[2] for r in sel)
        r2 = statistics.median(r[3] for r in sel)
        print(f"{n_epochs:>7} {sec:>8.1f} {r2:>8.4f}")


if __name__ == "__main__":
    main()
