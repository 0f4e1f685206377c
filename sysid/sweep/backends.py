"""Where cells run: in-process one after another, or as Ray tasks (local or on a cluster).

Both backends are generators of events, ``("start", cell)`` when a cell is
handed out and ``("done", outcome)`` when it has finished, so the caller keeps
the books (results.csv, progress) in one place whatever runs the cells.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

from sysid.errors import SysidInputError
from sysid.sweep.cells import Cell
from sysid.sweep.execute import FAILED, TIMEOUT, Outcome, one_line, run_cell

Event = tuple[str, object]
POLL_S = 1.0  # how often the driver looks for cells past their timeout
# a cluster's worker processes start with one BLAS/OpenMP thread (read when those libraries load)
THREAD_ENV = {name: "1" for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
RAY_HINT = 'pip install "sysid[ray]"'


def serial_events(cells: Sequence[Cell], cells_dir: Path, timeout_s: float | None) -> Generator[Event, None, None]:
    for cell in cells:
        yield "start", cell
        yield "done", run_cell(cell, cells_dir, timeout_s)


def import_ray():
    try:
        import ray
    except ImportError:
        raise SysidInputError(f"sysid sweep runs the cells on Ray unless --workers 1, and Ray is not installed: "
                              f"{RAY_HINT} (or pass --workers 1)") from None
    return ray


def ray_events(
    cells: Sequence[Cell], cells_dir: Path, timeout_s: float | None, *, workers: int | None, address: str | None
) -> Generator[Event, None, None]:
    """One Ray task per cell, at most ``workers`` in flight (default: the CPUs Ray sees).

    With no ``address`` a local Ray is started with ``workers`` CPUs; ``auto`` or
    ``ray://host:port`` joins a running cluster. A cell past its timeout stops
    itself inside the task; one stuck in native code is killed by the driver
    after a grace period.
    """
    ray = import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        _start(ray, workers, address)
    limit = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    task = ray.remote(num_cpus=1, max_retries=0)(run_cell)
    queue = list(cells)
    pending: dict[Any, tuple[Cell, float]] = {}  # Ray object ref -> (cell, time handed out)
    try:
        while queue or pending:
            while queue and len(pending) < limit:
                cell = queue.pop(0)
                pending[task.remote(cell, str(cells_dir), timeout_s)] = (cell, time.monotonic())
                yield "start", cell
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
            for ref in ready:
                cell, started = pending.pop(ref)
                yield "done", _result(ray, ref, cell, started)
            for ref, (cell, started) in list(pending.items()):
                if timeout_s is not None and time.monotonic() - started > timeout_s + _grace(timeout_s):
                    ray.cancel(ref, force=True)
                    del pending[ref]
                    yield "done", Outcome(cell.id, TIMEOUT, f"killed {_grace(timeout_s):g} s after timeout_s",
                                          time.monotonic() - started)
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
        if started_here:
            ray.shutdown()


def _start(ray, workers: int | None, address: str | None) -> None:
    # a local Ray's workers inherit this process's environment; a cluster's get the thread settings
    # (run_cell pins the threads again at run time, whatever the environment)
    cluster = {} if address is None else {"runtime_env": {"env_vars": THREAD_ENV}}
    try:
        # "local": a new Ray even when a `ray start` cluster runs on this machine (None would join it)
        ray.init(address=address or "local", num_cpus=workers if address is None else None, include_dashboard=False,
                 log_to_driver=False, logging_level=logging.WARNING, **cluster)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        if address is None:
            raise
        raise SysidInputError(f"could not join the Ray cluster at {address} ({one_line(exc)}): check --address "
                              "and that the cluster is running (ray status)") from None


def _grace(timeout_s: float) -> float:
    return max(30.0, 0.1 * timeout_s)


def _result(ray, ref, cell: Cell, started: float) -> Outcome:
    """The task's outcome; a worker that died (out of memory, a crash) gives a failed one."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as exc:
        return Outcome(cell.id, FAILED, one_line(exc), time.monotonic() - started)
