"""Where the time of `sysid fit` goes, on the embedded default regime.

    python benchmarks/fit_speed.py [--repeats 5] [--out DIR] [--detail]
    python benchmarks/fit_speed.py --imports [--repeats 5]   (what each dependency's import costs)

Each repeat runs in a fresh interpreter (imports are part of what a user waits
for) and times the real pipeline, ``sysid.pipeline.fit_to_folder``, with timers
wrapped around its parts:

| part | what |
| --- | --- |
| import | the modules the fit command imports before it starts (``sysid.pipeline`` and what it pulls in) |
| load | dataset and frozen checkpoint (``_load_pair``) |
| frozen evaluation | the frozen model's rates on every frame (torch) |
| regression | residuals, joint windowed regression, per-metabolite HAC fits and the c^2 check |
| grouping | detectability, groups, curve forms per group |
| writing outputs | fits.csv, groups.json, detectability.csv, analysis.log and the figures |
| of which figures | the matplotlib part of writing (import of pyplot included) |

It also times the whole command, ``python -m sysid_cli.main fit --out DIR --force``
(interpreter start included), over the same number of repeats. Every number is
the median over the repeats, in seconds of wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("import", "load", "frozen evaluation", "regression", "grouping", "writing outputs", "of which figures")
# inside stage 1 (with --detail): (module, function or Class.method, label); the labels name the files
DETAIL = (
    ("sysid.stage1.regression", "shape_features", "regression: shape features (design.py)"),
    ("sysid.stage1.regression", "build_design", "regression: windowed design, all iterations (design.py)"),
    ("sysid.stage1.regression", "solve_normal_equations", "regression: normal equations, all iterations "
                                                           "(regression.py)"),
    ("sysid.stage1.regression", "HomeostasisRegression._set_per_metabolite",
     "regression: per-metabolite HAC OLS (statsmodels) and c^2 check"),
    ("sysid.stage1.regression", "collinear_reactions", "regression: collinear corrections (identifiability.py)"),
    ("sysid.stage1.regression", "pair_inflation", "regression: slope and offset variance inflation (block_solve.py)"),
    ("sysid.stage1.fit", "find_groups", "grouping: groups (grouping.py)"),
    ("sysid.stage1.fit", "fit_group_forms", "grouping: curve forms per group (forms.py, nonlinear.py)"),
)


# the declared dependencies the fit imports, in this order; each is timed on top of those before it
IMPORTS = ("numpy", "scipy.optimize", "torch", "sklearn.mixture", "statsmodels.regression.linear_model", "pysindy",
           "matplotlib.pyplot")


def _timed(table: dict, key: str, fn):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            table[key] = table.get(key, 0.0) + time.perf_counter() - start
    return wrapper


def _wrap_detail(t: dict) -> None:
    import importlib

    for module, name, label in DETAIL:
        owner = importlib.import_module(module)
        *cls, attr = name.split(".")
        if cls:
            owner = getattr(owner, cls[0])
        setattr(owner, attr, _timed(t, label, getattr(owner, attr)))


def child(out: str) -> None:
    """One timed fit in this interpreter; prints the parts as JSON on the last line."""
    t: dict[str, float] = {}
    start = time.perf_counter()
    import torch

    import sysid.pipeline as pipeline
    t["import"] = time.perf_counter() - start
    import sysid.stage1.fit as stage1
    from sysid.config import load_config
    from sysid.io.defaults import default_dataset_dir, reference_checkpoint

    torch.set_num_threads(1)  # as the fit command does
    pipeline._load_pair = _timed(t, "load", pipeline._load_pair)
    pipeline.fit_stage1 = _timed(t, "stage 1", pipeline.fit_stage1)
    stage1.evaluate_frozen = _timed(t, "frozen evaluation", stage1.evaluate_frozen)
    stage1._group = _timed(t, "grouping", stage1._group)
    _wrap_detail(t)
    plots_import = _wrap_figures(t)
    cfg = load_config(None)
    data = default_dataset_dir(cfg)
    begin = time.perf_counter()
    pipeline.fit_to_folder(data, reference_checkpoint(), Path(out), cfg, force=True)
    total = time.perf_counter() - begin
    t["regression"] = t["stage 1"] - t["frozen evaluation"] - t["grouping"]
    t["writing outputs"] = total - t["load"] - t["stage 1"] + plots_import
    t["of which figures"] = t.get("figures", 0.0)
    print(json.dumps(t))


def _wrap_figures(t: dict) -> float:
    """Time every figure function of sysid.evaluation.plots; returns the seconds its import took here (0 when
    the pipeline had imported it already): the fit imports it only to write figures."""
    start = time.perf_counter()
    fresh = "sysid.evaluation.plots" not in sys.modules
    import sysid.evaluation.plots as plots
    seconds = time.perf_counter() - start if fresh else 0.0
    for name in dir(plots):
        fn = getattr(plots, name)
        if not name.startswith("_") and callable(fn) and getattr(fn, "__module__", None) == plots.__name__:
            setattr(plots, name, _timed(t, "figures", fn))
    t["figures"] = seconds
    return seconds


def _env() -> dict[str, str]:
    """The caller's environment (a user's threads: OMP_NUM_THREADS as set, else the BLAS default of every core)."""
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def import_floor(repeats: int) -> None:
    """Seconds each dependency adds to the import, on top of those before it (IMPORTS), each in a fresh
    interpreter: what no change inside sysid can take off the whole command."""
    rows = []
    for k, module in enumerate(IMPORTS):
        before = "; ".join(f"import {m}" for m in IMPORTS[:k]) or "pass"
        code = f"{before}\nimport time\nt = time.perf_counter()\nimport {module}\nprint(time.perf_counter() - t)"
        times = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(),
                                      check=True).stdout) for _ in range(repeats)]
        rows.append((module, statistics.median(times), min(times), max(times)))
    print(f"| import (on top of the rows above) | median s (of {repeats}) | min s | max s |")
    print("| --- | --- | --- | --- |")
    for module, med, lo, hi in rows:
        print(f"| {module} | {med:.2f} | {lo:.2f} | {hi:.2f} |")
    print(f"| all of them | {sum(r[1] for r in rows):.2f} | | |")


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="result folder of the timed fits (a temporary one)")
    parser.add_argument("--detail", action="store_true", help="also the parts of stage 1, by function")
    parser.add_argument("--imports", action="store_true", help="only the import time of each dependency")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child)
        return
    if args.imports:
        import_floor(args.repeats)
        return
    with tempfile.TemporaryDirectory() as tmp:
        out = str(args.out or Path(tmp) / "fit")
        loads = [_load()]
        runs, whole = [], []
        for _ in range(args.repeats):
            proc = subprocess.run([sys.executable, __file__, "--child", out], capture_output=True, text=True,
                                  env=_env(), cwd=ROOT, check=True)
            runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "sysid_cli.main", "fit", "--out", out, "--force"],
                           capture_output=True, env=_env(), cwd=ROOT, check=True)
            whole.append(time.perf_counter() - start)
            loads.append(_load())
    print(f"| part | median s (of {args.repeats}) | min s | max s |")
    print("| --- | --- | --- | --- |")
    for part in PARTS:
        values = [r.get(part, 0.0) for r in runs]
        print(f"| {part} | {statistics.median(values):.2f} | {min(values):.2f} | {max(values):.2f} |")
    stage1 = [r["stage 1"] for r in runs]
    print(f"| stage 1 (frozen evaluation + regression + grouping) | {statistics.median(stage1):.2f} | "
          f"{min(stage1):.2f} | {max(stage1):.2f} |")
    print(f"| whole `sysid fit --out DIR --force` (new interpreter) | {statistics.median(whole):.2f} | "
          f"{min(whole):.2f} | {max(whole):.2f} |")
    if args.detail:
        print()
        print(f"| inside stage 1 | median s (of {args.repeats}) | min s | max s |")
        print("| --- | --- | --- | --- |")
        for _, _, label in DETAIL:
            values = [r.get(label, 0.0) for r in runs]
            print(f"| {label} | {statistics.median(values):.2f} | {min(values):.2f} | {max(values):.2f} |")
    print()
    detail = " --detail" if args.detail else ""
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    print(f"# python benchmarks/fit_speed.py --repeats {args.repeats}{detail}   (OMP_NUM_THREADS={threads},"
          f" torch 1 thread outside the frozen evaluation; {os.cpu_count()} CPUs)")
    print(f"# load average (1, 5, 15 min) before and after each repeat: {' | '.join(loads)}")


if __name__ == "__main__":
    main()
