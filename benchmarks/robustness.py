"""How stage-1 accuracy depends on the frozen model's quality and on measurement noise.

    python benchmarks/robustness.py [--quick] [--out DIR]

A grid over the sd of the Gaussian noise on the frozen model's log_k (the
frozen model is built from the truth, as ``sysid phase1 --from-truth
--log-k-noise SD`` does) and over ``training.measurement_noise_level`` (noise
on the stored concentrations). Each cell simulates the regime, builds the
frozen model, runs stage 1 and scores it against the truth (evaluation only).
Writes ``robustness.png`` and ``robustness.md`` (a Markdown table) into DIR
(default: benchmarks/results). ``--quick`` runs a tiny regime and two cells
(used by the docs test).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sysid.config import Config  # noqa: E402
from sysid.evaluation.metrics import rate_constants_r2, stage1_metrics  # noqa: E402
from sysid.io.dataset import Dataset  # noqa: E402
from sysid.phase1.from_truth import model_from_truth  # noqa: E402
from sysid.simulation import simulate  # noqa: E402
from sysid.stage1.fit import fit_stage1  # noqa: E402

FULL = {"simulation": {}, "log_k_noise": (0.0, 0.1, 0.2, 0.4), "noise": (0.0, 0.002, 0.01)}
QUICK = {
    "simulation": {"n_metabolites": 18, "n_reactions": 36, "n_frames": 600, "seed": 3},
    "log_k_noise": (0.3,),
    "noise": (0.0, 0.005),
}
MODEL_SEED = 1


def run_cell(cfg: Config, sim, log_k_noise: float) -> dict[str, float]:
    """Stage 1 against a frozen model with the given log_k noise; metrics from the truth afterwards."""
    model = model_from_truth(sim.network, sim.truth.log_k, cfg.graph_model, log_k_noise=log_k_noise,
                             seed=MODEL_SEED, concentrations=sim.concentrations)
    data = Dataset(sim.concentrations, sim.dcdt, sim.positions, sim.network, sim.delta_t)  # no labels
    start = time.perf_counter()
    fit = fit_stage1(data, model, cfg.sysid.stage1, seed=cfg.training.seed).fit
    seconds = time.perf_counter() - start
    m = stage1_metrics(fit.slope, fit.offset, fit.groups, sim.truth)
    ratios = [m[k] for k in m if "_ratio_" in k]
    return {
        "rate_constants_R2": rate_constants_r2(model, sim.truth.log_k),
        "worst_ratio_error": float(np.max(np.abs(np.asarray(ratios) - 1.0))),
        "stage1_avg_slope_ratio": m["stage1_avg_slope_ratio"],
        "stage1_group_acc": m["stage1_group_acc"],
        "stage1_n_groups": m["stage1_n_groups"],
        "seconds": seconds,
    }


def run_grid(grid: dict) -> list[dict[str, float]]:
    rows = []
    for noise in grid["noise"]:
        cfg = Config().replace("simulation", **grid["simulation"]) if grid["simulation"] else Config()
        cfg = cfg.replace("training", measurement_noise_level=noise)
        sim = simulate(cfg.simulation, noise)
        for sd in grid["log_k_noise"]:
            row = {"measurement_noise_level": noise, "log_k_noise": sd, **run_cell(cfg, sim, sd)}
            print(_row(row), flush=True)
            rows.append(row)
    return rows


HEADER = ("| measurement noise | log_k noise sd | k R2 | worst abs(ratio - 1) | avg slope ratio | group acc | groups "
          "| stage 1 s |\n| --- | --- | --- | --- | --- | --- | --- | --- |")


def _row(r: dict[str, float]) -> str:
    return (f"| {r['measurement_noise_level']:g} | {r['log_k_noise']:g} | {r['rate_constants_R2']:.3f} | "
            f"{r['worst_ratio_error']:.4f} | {r['stage1_avg_slope_ratio']:.4f} | {r['stage1_group_acc']:.2f} | "
            f"{int(r['stage1_n_groups'])} | {r['seconds']:.1f} |")


def plot(rows: list[dict[str, float]], path: Path) -> None:
    fig, (ax_err, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for noise in sorted({r["measurement_noise_level"] for r in rows}):
        sel = [r for r in rows if r["measurement_noise_level"] == noise]
        sd = [r["log_k_noise"] for r in sel]
        label = f"measurement noise {noise:g}"
        ax_err.plot(sd, [max(r["worst_ratio_error"], 1e-6) for r in sel], marker="o", label=label)
        ax_acc.plot(sd, [r["stage1_group_acc"] for r in sel], marker="o", label=label)
    ax_err.axhline(0.03, color="grey", linestyle="--", label="3% bar")
    ax_err.set(xlabel="log_k noise sd of the frozen model", ylabel="worst |stage-1 ratio - 1| over types",
               yscale="log", title="slope/offset accuracy")
    ax_acc.set(xlabel="log_k noise sd of the frozen model", ylabel="stage1_group_acc", ylim=(0, 1.05),
               title="grouping")
    ax_err.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny regime, two cells")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results", help="folder for the results")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    grid = QUICK if args.quick else FULL
    print(HEADER)
    rows = run_grid(grid)
    regime = ", ".join(f"{k} {v}" for k, v in grid["simulation"].items()) or "default regime"
    table = "\n".join([HEADER, *map(_row, rows)])
    (args.out / "robustness.md").write_text(f"Stage 1 robustness ({regime}; frozen model from the truth, "
                                            f"seed {MODEL_SEED}).\n\n{table}\n")
    plot(rows, args.out / "robustness.png")
    print(f"results written to {args.out.absolute()}")


if __name__ == "__main__":
    main()
