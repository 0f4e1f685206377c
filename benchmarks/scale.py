"""Cost of each stage against network size: default 100x256, textbook, iJO1366, salmonella.

Run: python benchmarks/scale.py [--networks default cobra:textbook cobra:iJO1366 cobra:salmonella]
                                [--stages simulate phase1 trainer fit refine] [--out benchmarks/results]

Each stage is one `sysid` command in a child process (OMP_NUM_THREADS=1), timed
by wall clock and by the child's CPU seconds, with its peak resident memory
(os.wait4). The frozen model is `phase1 --from-truth --log-k-noise 0.1`; `trainer`
is the phase 1 trainer (`phase1` without --from-truth; its R2 is reported, its
model is not used further); `fit` is stage 1, `refine` is `fit --refine`. Size is n_metabolites + n_reactions.
Writes scale.txt (the table, fitted exponents of cost against size and the
accuracy keys of analysis.log) and scale.png (log-log plot) under --out.
The load average is printed: on a shared machine wall >> cpu means it was busy.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from sysid.evaluation.metrics import hungarian_accuracy
from sysid.io.dataset import load_truth

KEYS = ("stage1_slope_ratio_0", "stage1_slope_ratio_1", "stage1_offset_ratio_0", "stage1_offset_ratio_1",
        "stage1_group_acc", "stage1_group_acc_identified", "stage1_n_unidentifiable", "stage1_n_groups")


def command(stage: str, net: str, folder: Path) -> list[str]:
    data, model = folder / "data", folder / "model.pt"
    return {
        "simulate": ["simulate", "--out", data] + ([] if net == "default" else ["--network", net]),
        "phase1": ["phase1", "--data", data, "--from-truth", "--log-k-noise", "0.1", "--out", model],
        "trainer": ["phase1", "--data", data, "--out", folder / "trained.pt"],
        "fit": ["fit", "--data", data, "--model", model, "--out", folder / "fit"],
        "refine": ["fit", "--data", data, "--model", model, "--refine", "--out", folder / "refine"],
    }[stage]


def run(args: list, env: dict) -> tuple[float, float, float, int]:
    """(wall s, cpu s, peak RSS GB, exit code) of one sysid command in a child process."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "sysid_cli.main", *map(str, args)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        print(f"  {' '.join(map(str, args[:1]))} failed ({code}): {proc.stderr.read().decode()[-300:]}", flush=True)
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 2**20, code


def size_of(folder: Path) -> tuple[int, int]:
    S = json.loads((folder / "data" / "truth.json").read_text())["log_k"]
    x = np.load(folder / "data" / "x_list_0.npy", mmap_mode="r")
    return int(x.shape[1]), len(S)


def accuracy(folder: Path) -> dict[str, float]:
    """The stage-1 keys of analysis.log, the group accuracy over identified metabolites (fits.csv), and the
    trainer's rate_constants_R2 (trained.pt.json)."""
    trained = folder / "trained.pt.json"
    out = {"trainer_R2": json.loads(trained.read_text())["rate_constants_R2"]} if trained.is_file() else {}
    log = folder / "fit" / "analysis.log"
    if not log.is_file():
        return out
    pairs = (line.split(":", 1) for line in log.read_text().splitlines() if ":" in line)
    out |= {k.strip(): float(v) for k, v in pairs if k.strip() in KEYS}
    fits = np.genfromtxt(folder / "fit" / "fits.csv", delimiter=",", names=True, dtype=None, encoding="utf-8")
    identified = np.array([str(v).lower() == "true" for v in fits["identified"]])
    truth = load_truth(folder / "data")
    if truth is not None and identified.any():
        out["stage1_group_acc_identified"] = hungarian_accuracy(fits["group"][identified], truth.types[identified])
    return out


def exponents(rows: list[dict], stages: list[str], column: int = 0) -> dict[str, float]:
    """Slope of log(cost) against log(n_met + n_rxn), per stage (least squares over the networks);
    column 0: wall seconds, 1: CPU seconds."""
    out = {}
    for stage in stages:
        pts = [(r["size"], r[stage][column]) for r in rows if stage in r and r[stage][3] == 0]
        if len(pts) >= 2:
            x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
            out[stage] = float(np.polyfit(x, y, 1)[0])
    return out


def table(rows: list[dict], stages: list[str]) -> str:
    head = f"{'network':<18} {'n_met':>6} {'n_rxn':>6} " + " ".join(
        f"{s + ' wall/cpu s, GB':>26}" for s in stages)
    lines = [head]
    for r in rows:
        cells = [f"{r[s][0]:>8.1f} {r[s][1]:>7.1f} {r[s][2]:>6.2f}{'' if r[s][3] == 0 else ' FAIL':>3}"
                 if s in r else f"{'-':>26}" for s in stages]
        lines.append(f"{r['net']:<18} {r['n_met']:>6} {r['n_rxn']:>6} " + " ".join(f"{c:>26}" for c in cells))
    return "\n".join(lines)


def plot(rows: list[dict], stages: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for stage in stages:
        pts = sorted((r["size"], r[stage][0], r[stage][2]) for r in rows if stage in r and r[stage][3] == 0)
        if pts:
            size, wall, mem = zip(*pts, strict=True)
            axes[0].loglog(size, wall, "o-", label=stage)
            axes[1].loglog(size, mem, "o-", label=stage)
    for ax, label in zip(axes, ("wall seconds", "peak RSS (GB)"), strict=True):
        ax.set_xlabel("n_metabolites + n_reactions")
        ax.set_ylabel(label)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", nargs="+",
                        default=["default", "cobra:textbook", "cobra:iJO1366", "cobra:salmonella"])
    parser.add_argument("--stages", nargs="+", default=["simulate", "phase1", "trainer", "fit", "refine"])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()), flush=True)
    rows = []
    for net in args.networks:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            row: dict = {"net": net}
            for stage in args.stages:
                row[stage] = run(command(stage, net, folder), env)
                print(f"{net} {stage}: wall {row[stage][0]:.1f} s, cpu {row[stage][1]:.1f} s, "
                      f"peak {row[stage][2]:.2f} GB", flush=True)
                if row[stage][3] != 0 and stage in ("simulate", "phase1"):  # the later stages need their output
                    break
            row["n_met"], row["n_rxn"] = size_of(folder)
            row["size"] = row["n_met"] + row["n_rxn"]
            row["accuracy"] = accuracy(folder)
            rows.append(row)
    text = [table(rows, args.stages), "", "fitted exponent of wall time against size (log-log slope):"]
    text += [f"  {s}: {e:.2f}" for s, e in exponents(rows, args.stages).items()]
    text += ["fitted exponent of CPU time against size:"]
    text += [f"  {s}: {e:.2f}" for s, e in exponents(rows, args.stages, 1).items()]
    text += ["", "stage-1 accuracy (analysis.log of `sysid fit`):"]
    text += [f"  {r['net']}: " + ", ".join(f"{k}={v:.4g}" for k, v in r["accuracy"].items()) for r in rows]
    text.append("load average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    print("\n".join(text))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale.txt").write_text("\n".join(text) + "\n")
    plot(rows, args.stages, args.out / "scale.png")


if __name__ == "__main__":
    main()
