"""The console script's garbage-collector freeze: in the `sysid` process only, never in a test's own process."""

import gc
import subprocess
import sys

from tests.helpers import sysid

ENTRY = """
import gc, sys
sys.argv = ["sysid", *sys.argv[1:]]
from sysid_cli.main import entry
try:
    entry()
finally:
    print("frozen", gc.get_freeze_count(), file=sys.stderr)
"""


def test_the_console_script_freezes_and_keeps_the_exit_code(small_dir, small_frozen, tmp_path):
    proc = subprocess.run([sys.executable, "-c", ENTRY, "residuals", "--data", str(small_dir), "--model",
                           str(small_frozen), "--out", str(tmp_path / "res")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stderr.strip().splitlines()[-1].split()[1]) > 0
    bad = subprocess.run([sys.executable, "-c", ENTRY, "fit", "--data", str(tmp_path / "missing")],
                         capture_output=True, text=True)
    assert bad.returncode == 2


def test_a_command_run_in_this_process_leaves_the_collector_alone(small_dir, small_frozen, tmp_path):
    before = gc.get_freeze_count()
    proc = sysid("residuals", "--data", small_dir, "--model", small_frozen, "--out", tmp_path / "res")
    assert proc.returncode == 0, proc.stderr
    assert gc.get_freeze_count() == before
