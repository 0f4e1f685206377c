"""Stage 1 on SBML ground truth (issue 11 targets): both example models, 2 types, 4 experiments.

For each model, seed and setting (frozen model = the exact model, --rate-noise 0.1, --param-noise 0.1;
relative measurement noise 0 and 0.002) prints the analysis.log keys of docs/reference.md computed by
sysid.evaluation.metrics.species_stage1_metrics (per-type slope ratios over the identified species,
group accuracy over them, the set-point error |cb_fit / cb - 1| median and p90), the flagged species,
the number of species whose raw lambda is more than 2x off and NOT flagged (a confident wrong answer),
the number more than 2x off in all, the misfit statistic and verdict (stage1_frozen_misfit), and the
stage-1 time. Ends with a summary per setting. Writes benchmarks/results/sbml_targets.txt.

    PYTHONPATH=. python benchmarks/sbml_targets.py [--seeds 4]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from sysid.config import Config, SbmlConfig
from sysid.evaluation.metrics import species_stage1_metrics
from sysid.frozen import load_frozen
from sysid.io.dataset import load_dataset, load_species_truth
from sysid.sbml import _deps
from sysid.sbml.perturb import perturb
from sysid.sbml.reader import read_document
from sysid.sbml.simulate import simulate_sbml, write_sbml_dataset
from sysid.stage1.fit import fit_stage1

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("BIOMD0000000064.xml", "BIOMD0000000206.xml")


def run(model: Path, seed: int, noise: float, frozen_kind: str, work: Path) -> dict:
    data = work / f"data_{model.stem}_{seed}_{noise}"
    if not data.exists():
        data.mkdir()
        sim = simulate_sbml(model, SbmlConfig(seed=seed, measurement_noise_level=noise))
        write_sbml_dataset(sim, data)
    frozen_path = model
    if frozen_kind != "exact":
        frozen_path = work / f"frozen_{model.stem}_{seed}_{frozen_kind}.xml"
        sd = {"rate": (0.1, None), "param": (None, 0.1)}[frozen_kind]
        doc = perturb(read_document(model), rate_noise=sd[0], param_noise=sd[1], seed=seed + 100)
        _deps.libsbml().writeSBMLToFile(doc, str(frozen_path))
    dataset = load_dataset(data)
    frozen = load_frozen(frozen_path)
    t0 = time.perf_counter()
    result = fit_stage1(dataset, frozen, Config().sysid.stage1, seed=seed)
    seconds = time.perf_counter() - t0
    fit, truth = result.fit, load_species_truth(data)
    assert truth is not None and fit.identified is not None
    m = species_stage1_metrics(fit, truth)
    has = truth.types >= 0
    raw_ratio = -fit.raw_slope / np.where(truth.lambdas > 0, truth.lambdas, np.nan)
    off = has & ((raw_ratio > 2) | (raw_ratio < 0.5))
    return {
        "ratios": [m[f"stage1_slope_ratio_{t}"] for t in range(len(truth.lambda_per_type))],
        "acc": m["stage1_group_acc"], "flagged": int((~fit.identified).sum()), "n": len(truth.types),
        "cb_med": m["stage1_baseline_err_median"], "cb_p90": m["stage1_baseline_err_p90"],
        "wrong": int((off & fit.identified).sum()), "off2x": int(off.sum()),
        "stat": result.misfit.statistic, "misfit": int(result.misfit.misfit), "seconds": seconds,
    }


SETTINGS = ((0.0, "exact"), (0.0, "rate"), (0.002, "rate"), (0.0, "param"))


def summary(rows: list[tuple[float, str, dict]]) -> list[str]:
    out = ["", "summary per setting (runs = models x seeds):"]
    for noise, kind in SETTINGS:
        rs = [r for n, k, r in rows if (n, k) == (noise, kind)]
        ratios = np.array([x for r in rs for x in r["ratios"]], float)
        ok = ratios[np.isfinite(ratios)]
        within = int(np.sum(np.abs(ok - 1) <= (0.05 if noise == 0 else 0.1)))
        accs = np.array([r["acc"] for r in rs], float)
        acc_min = np.nanmin(accs) if np.isfinite(accs).any() else np.nan
        out.append(
            f"noise {noise} frozen {kind}: misfit warned in {sum(r['misfit'] for r in rs)}/{len(rs)} runs; "
            f"runs with a species >2x off and not flagged: {sum(r['wrong'] > 0 for r in rs)}/{len(rs)} "
            f"(species >2x off: {sum(r['off2x'] for r in rs)}, of them flagged: "
            f"{sum(r['off2x'] - r['wrong'] for r in rs)}); type slope ratios within "
            f"{0.05 if noise == 0 else 0.1}: {within}/{len(ratios)} (range {ok.min() if len(ok) else np.nan:.3f}-"
            f"{ok.max() if len(ok) else np.nan:.3f}); group acc min {acc_min:.3f}"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=4)
    args = parser.parse_args()
    lines = [f"{'model':<16} {'seed':>4} {'noise':>6} {'frozen':>6}  slope ratios   acc    flagged  cb_med  "
             "cb_p90   >2x_unflagged  >2x_all  misfit_stat  misfit  stage1_s"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in MODELS:
            for seed in range(args.seeds):
                for noise, kind in SETTINGS:
                    r = run(ROOT / "examples" / "sbml" / name, seed, noise, kind, Path(tmp))
                    rows.append((noise, kind, r))
                    ratios = " ".join(f"{x:.3f}" for x in r["ratios"])
                    lines.append(f"{name[:-4]:<16} {seed:>4} {noise:>6} {kind:>6}  {ratios:<13} {r['acc']:.3f}  "
                                 f"{r['flagged']:>2}/{r['n']:<4} {r['cb_med']:.4f}  {r['cb_p90']:8.4f}  "
                                 f"{r['wrong']:>13}  {r['off2x']:>7}  {r['stat']:11.3g}  {r['misfit']:>6}  "
                                 f"{r['seconds']:.2f}")
                    print(lines[-1], flush=True)
    lines += summary(rows)
    print("\n".join(lines[-5:]))
    out = ROOT / "benchmarks" / "results" / "sbml_targets.txt"
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
