"""`sysid fit` loads only what it uses: no refine, no phase 1 training, no matplotlib before a figure is drawn."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import sysid

ROOT = Path(sysid.__file__).resolve().parent.parent
NOT_FOR_FIT = ("sysid.stage2.refine", "sysid.stage2.sbml_node", "sysid.phase1.trainer", "sysid.phase1.from_truth",
               "sysid.sbml.reader")

CODE = """
import json, sys
from pathlib import Path
import sysid.pipeline
from sysid.config import Config
before = sorted(sys.modules)
sysid.pipeline.fit_to_folder(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), Config())
import matplotlib
print(json.dumps({"before": before, "after": sorted(sys.modules), "backend": matplotlib.get_backend()}))
"""


def test_fit_without_refine_imports_neither_the_refine_nor_matplotlib_up_front(small_dir, small_frozen, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", CODE, str(small_dir), str(small_frozen), str(tmp_path / "fit")],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    before, after = set(seen["before"]), set(seen["after"])
    assert not {m for m in before if m.split(".")[0] == "matplotlib"}, "importing the pipeline loads matplotlib"
    assert "sysid.evaluation.plots" not in before
    assert not before.intersection(NOT_FOR_FIT) and not after.intersection(NOT_FOR_FIT), \
        sorted(after.intersection(NOT_FOR_FIT))
    # the figures are drawn, off-screen
    assert "sysid.evaluation.plots" in after and seen["backend"].lower() == "agg"
    assert (tmp_path / "fit" / "stage1_fits.png").is_file() and (tmp_path / "fit" / "detectability.png").is_file()
