"""Helpers shared by the tests: running the command line, checking one-line errors, small regimes."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import traceback
from pathlib import Path
from unittest import mock

from sysid.config import Config

MG_SAMPLE = Path(__file__).resolve().parent / "data" / "mg_sample"  # written by the original MetabolismGraph code
SMALL = {"n_metabolites": 30, "n_reactions": 60, "n_frames": 1500}


def small_config(**simulation) -> Config:
    return Config().replace("simulation", **{**SMALL, **simulation})


def sysid(*args, subprocess_run: bool = False):
    """Run the command line; in-process by default (fast), in a real subprocess on request."""
    argv = ["sysid", *map(str, args)]
    if subprocess_run:
        return subprocess.run([sys.executable, "-m", "sysid_cli.main", *argv[1:]], capture_output=True, text=True)
    from sysid_cli.main import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with mock.patch.object(sys, "argv", argv), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except Exception:
            traceback.print_exc(file=err)
            code = 1
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


def assert_one_line_error(proc, *words):
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert "Traceback" not in proc.stderr
    for w in words:
        assert w in lines[0]
