"""Running one cell, guarded: pinned threads, time and memory measured, any failure turned into a status.

:func:`run_cell` never raises for a problem of the cell (a crash, a bad value,
its timeout): it returns an :class:`Outcome` with status ``failed`` or
``timeout`` and the error's one line; only Ctrl-C goes through. The same
function runs in-process (``--workers 1``) and inside a Ray task.
"""

from __future__ import annotations

import contextlib
import json
import logging
import resource
import signal
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sysid.io.atomic import atomic_dir
from sysid.sweep.cells import Cell
from sysid.sweep.kinds import runner
from sysid.threads import torch_threads

log = logging.getLogger(__name__)
OK, FAILED, TIMEOUT = "ok", "failed", "timeout"
_PROC_STATUS = Path("/proc/self/status")
_PROC_CLEAR_REFS = Path("/proc/self/clear_refs")


class CellTimeout(Exception):
    """The cell ran past the sweep's timeout_s."""


@dataclass(frozen=True)
class Outcome:
    cell_id: str
    status: str  # ok | failed | timeout
    error: str = ""  # one line
    seconds: float = 0.0
    peak_memory_mb: float = float("nan")  # peak resident memory of the process while the cell ran
    metrics: dict[str, float] = field(default_factory=dict)  # the analysis.log keys


def run_cell(cell: Cell, cells_dir: str | Path, timeout_s: float | None = None) -> Outcome:
    """Run ``cell`` into ``cells_dir/<cell id>`` (written atomically: complete or absent)."""
    cells_dir = Path(cells_dir)
    cells_dir.mkdir(parents=True, exist_ok=True)  # a cluster node without the driver's file system
    error_file = cells_dir / f"{cell.id}.error.txt"
    start = time.perf_counter()
    _reset_peak_memory()
    try:
        with pinned_threads(), _deadline(timeout_s), atomic_dir(cells_dir / cell.id, force=True) as tmp:
            (tmp / "cell.json").write_text(json.dumps(json.loads(cell.resolved), indent=1) + "\n")
            metrics = runner(cell.kind)(cell, tmp)
        status, error = OK, ""
    except CellTimeout:
        status, error = TIMEOUT, f"ran past timeout_s = {timeout_s:g} s"
    except Exception as exc:  # a failing cell is a result of the sweep, not a reason to stop it
        status, error = FAILED, one_line(exc)
        error_file.write_text(traceback.format_exc())
        log.warning("cell %s failed: %s (traceback in %s)", cell.id, error, error_file)
    seconds = time.perf_counter() - start
    if status == OK:
        error_file.unlink(missing_ok=True)
        return Outcome(cell.id, OK, "", seconds, _peak_memory_mb(), metrics)
    return Outcome(cell.id, status, error, seconds, _peak_memory_mb())


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    message = text[0] if text else ""
    return message if type(exc).__name__ == "SysidInputError" else f"{type(exc).__name__}: {message}".rstrip(": ")


@contextlib.contextmanager
def pinned_threads() -> Iterator[None]:
    """One torch and one BLAS/OpenMP thread, so that parallel cells do not fight over the cores."""
    from threadpoolctl import threadpool_limits

    with torch_threads(1), threadpool_limits(limits=1):
        yield


@contextlib.contextmanager
def _deadline(timeout_s: float | None) -> Iterator[None]:
    """Raise CellTimeout in the running code after ``timeout_s`` (SIGALRM: main thread, Unix only)."""
    if timeout_s is None:
        yield
        return
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        log.warning("no in-process timeout here (not the main thread of a Unix process)")
        yield
        return

    def expire(signum, frame):
        raise CellTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _reset_peak_memory() -> None:
    """Linux: start the peak-RSS counter (VmHWM) afresh, so the peak is the cell's, not the process's."""
    with contextlib.suppress(OSError):
        _PROC_CLEAR_REFS.write_text("5")


def _peak_memory_mb() -> float:
    with contextlib.suppress(OSError, ValueError):
        for line in _PROC_STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024.0  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports kB
