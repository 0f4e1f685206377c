"""Rollout throughput: one batched (batch, N) Euler rollout vs a per-sample Python loop.

Run: python benchmarks/rollout_bench.py [--batch 8 32] [--horizon 32] [--repeats 5]
Default regime (100 metabolites, 256 reactions), the shipped reference frozen model.
Reports state-steps per second (batch * horizon / seconds), forward only and
forward + backward (gradients into MLP_node and a, reactions frozen), as
medians over repeats, with CPU seconds beside wall seconds (a busy shared
machine shows as wall >> cpu / threads). Writes benchmarks/results/rollout.txt.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from sysid.config import load_config
from sysid.io.checkpoint import load_checkpoint
from sysid.io.dataset import load_dataset, load_truth
from sysid.io.defaults import default_dataset_dir, reference_checkpoint
from sysid.model import MetabolismModel, euler_rollout, pick_device
from sysid.stage1.result import HomeostasisFit
from sysid.stage2.init import initialise_from_fit

RESULT = Path(__file__).parent / "results" / "rollout.txt"


def make_model(device: torch.device) -> tuple[MetabolismModel, torch.Tensor, float]:
    """The shipped reference frozen model on the default-regime data, MLP_node set to the true lines.

    A realistic state matters: a random MLP_node drives rollouts to huge or
    subnormal values, which run 10-40x slower on CPUs and measure nothing useful.
    """
    cfg = load_config(None)
    folder = default_dataset_dir(cfg)
    data, truth = load_dataset(folder), load_truth(folder)
    model = load_checkpoint(reference_checkpoint())
    fit = HomeostasisFit(truth.slopes()[truth.types], truth.offsets()[truth.types],
                         np.ones(len(truth.types)), np.ones(len(truth.types)), truth.types.copy())
    initialise_from_fit(model, fit, float(data.concentrations.max()))
    model.freeze_reactions()
    for p in model.homeostasis_parameters():
        p.requires_grad_(True)
    return model.to(device), torch.as_tensor(data.concentrations, device=device), data.delta_t


def batched(model, c0, horizon, dt, backward: bool) -> None:
    out = euler_rollout(model, c0, horizon, dt)
    if backward:
        out.square().mean().backward()


def looped(model, c0, horizon, dt, backward: bool) -> None:
    outs = [euler_rollout(model, c0[i : i + 1], horizon, dt) for i in range(len(c0))]
    if backward:
        torch.cat(outs).square().mean().backward()


def time_once(fn, model, c0, horizon, dt, backward: bool) -> tuple[float, float]:
    model.zero_grad(set_to_none=True)
    wall, cpu = time.perf_counter(), time.process_time()
    if backward:
        fn(model, c0, horizon, dt, True)
    else:
        with torch.no_grad():
            fn(model, c0, horizon, dt, False)
    if c0.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--horizon", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--keep-denormals", action="store_true", help="do not flush float32 subnormals to zero")
    args = parser.parse_args()
    flush = not args.keep_denormals and torch.set_flush_denormal(True)
    device = pick_device()
    model, conc, dt = make_model(device)
    header = (f"{'mode':>8} {'pass':>9} {'batch':>6} {'wall_s':>8} {'cpu_s':>8} {'state-steps/s':>14} "
              f"{'per cpu-s':>10} {'speedup':>8}")
    lines = [f"device {device}, torch threads {torch.get_num_threads()}, flush denormals {bool(flush)}, "
             f"horizon {args.horizon}, "
             f"medians of {args.repeats} runs", header]
    for backward in (False, True):
        for b in args.batch:
            c0 = conc[torch.linspace(0, len(conc) - args.horizon - 2, b).long()]
            rates = {}
            for name, fn in (("batched", batched), ("loop", looped)):
                time_once(fn, model, c0, args.horizon, dt, backward)  # warm-up
                runs = [time_once(fn, model, c0, args.horizon, dt, backward) for _ in range(args.repeats)]
                wall = statistics.median(r[0] for r in runs)
                cpu = statistics.median(r[1] for r in runs)
                rates[name] = b * args.horizon / wall
                speedup = rates[name] / rates["batched"] if name == "loop" else 1.0
                lines.append(f"{name:>8} {'fwd+bwd' if backward else 'fwd':>9} {b:>6} {wall:>8.3f} {cpu:>8.3f} "
                             f"{rates[name]:>14.0f} {b * args.horizon / cpu:>10.0f} {1 / speedup:>8.2f}")
                print(lines[-1], flush=True)
    lines.append(f"state-steps/s = batch * horizon / median wall s; per cpu-s uses this process's CPU time; "
                 f"speedup = batched rate / this row's rate; load average {os.getloadavg()[0]:.1f}")
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:2] + lines[-1:]))
    print(f"table written to {RESULT}")


if __name__ == "__main__":
    main()
