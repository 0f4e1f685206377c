"""Stage 1 on SBML ground truth (issue 11 targets): both example models, 2 types, 4 experiments.

For each model, seed and setting (frozen model = the exact model, --rate-noise 0.1, --param-noise 0.1;
relative measurement noise 0 and 0.002) prints the per-type slope ratios (mean fitted slope over the
identified species of a type / -lambda_t), group accuracy over identified species, flagged species,
the baseline error |cb_fit / cb - 1| (median, p90, identified species), the share of species with lambda
more than 2x off among the identified ones, and the stage-1 time. Writes benchmarks/results/sbml_targets.txt.

    PYTHONPATH=. python benchmarks/sbml_targets.py [--seeds 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from sysid.config import Config, SbmlConfig
from sysid.evaluation.metrics import hungarian_accuracy
from sysid.frozen import load_frozen
from sysid.io.dataset import load_dataset
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
    truth = __import__("json").loads((data / "truth.json").read_text())
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
    fit = result.fit
    types, lam, cb = np.array(truth["types"]), np.array(truth["lambda"]), np.array(truth["cb"])
    ok = fit.identified & (types >= 0)
    ratios = [float(np.mean(fit.slope[ok & (types == t)]) / -truth["lambda_per_type"][t])
              for t in range(len(truth["lambda_per_type"])) if (ok & (types == t)).any()]
    raw_ratio = -fit.raw_slope[ok] / lam[ok]
    cb_err = np.abs((fit.raw_offset[ok] / -fit.raw_slope[ok]) / cb[ok] - 1)
    return {
        "ratios": ratios, "acc": hungarian_accuracy(fit.groups[ok], types[ok]) if ok.any() else float("nan"),
        "flagged": int((~fit.identified).sum()), "n": len(types), "cb_med": float(np.median(cb_err)),
        "cb_p90": float(np.quantile(cb_err, 0.9)), "off2x": int(np.sum((raw_ratio > 2) | (raw_ratio < 0.5))),
        "misfit": int(getattr(result, "frozen_misfit", 0)), "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    lines = [f"{'model':<20} {'seed':>4} {'noise':>6} {'frozen':>6}  slope ratios per type   acc  flagged  "
             "cb_med  cb_p90  >2x_off  misfit  stage1_s"]
    with tempfile.TemporaryDirectory() as tmp:
        for name in MODELS:
            for seed in range(args.seeds):
                for noise, kind in ((0.0, "exact"), (0.0, "rate"), (0.002, "rate"), (0.0, "param")):
                    r = run(ROOT / "examples" / "sbml" / name, seed, noise, kind, Path(tmp))
                    ratios = " ".join(f"{x:.3f}" for x in r["ratios"])
                    lines.append(f"{name[:-4]:<20} {seed:>4} {noise:>6} {kind:>6}  {ratios:<22} {r['acc']:.3f}  "
                                 f"{r['flagged']:>2}/{r['n']:<4} {r['cb_med']:.4f}  {r['cb_p90']:.4f}  "
                                 f"{r['off2x']:>7}  {r['misfit']:>6}  {r['seconds']:.2f}")
                    print(lines[-1], flush=True)
    out = ROOT / "benchmarks" / "results" / "sbml_targets.txt"
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
