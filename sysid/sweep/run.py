"""A sweep from start to end: check, expand, skip what is done, run the rest, write the tables and figures.

The output folder::

    OUT/sweep.json          the sweep as parsed (base config resolved)
    OUT/results.csv         one row per cell (see sysid.sweep.results)
    OUT/summary.md          pivot tables against each axis
    OUT/plots/*.png         heatmaps / lines of the main metrics
    OUT/cells/<id>/         each finished cell: cell.json, data/, frozen.pt, fit/ (or refine/)
    OUT/cells/<id>.error.txt  the traceback of a failed cell
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sysid.errors import SysidInputError
from sysid.io.atomic import atomic_dir, atomic_file
from sysid.sweep.backends import import_ray, ray_events, serial_events
from sysid.sweep.cells import Cell, expand
from sysid.sweep.execute import OK
from sysid.sweep.results import ResultsTable
from sysid.sweep.spec import SweepSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepProgress:
    total: int  # cells this run has to do (finished ones skipped by --resume not counted)
    done: int = 0  # finished ok
    failed: int = 0  # finished failed or timed out
    running: int = 0

    @property
    def finished(self) -> int:
        return self.done + self.failed


@dataclass(frozen=True)
class SweepReport:
    out: Path
    n_cells: int
    skipped: int  # ok rows kept from an earlier run (--resume)
    progress: SweepProgress


def prepare_out(out: Path, *, resume: bool, force: bool) -> None:
    """Refuse an existing --out unless told what to do with it; --force starts afresh."""
    out = Path(out)
    if resume and force:
        raise SysidInputError("--resume and --force contradict each other: --resume keeps OUT, --force clears it")
    if out.exists() and not (resume or force):
        raise SysidInputError(f"{out} already exists: pass --resume to finish that sweep, --force to start it afresh, "
                              "or choose another --out")
    if not out.parent.exists():
        raise SysidInputError(f"the parent folder of {out} does not exist: create {out.parent} first")
    if out.exists() and force:
        shutil.rmtree(out) if out.is_dir() else out.unlink()


def run_sweep(
    spec: SweepSpec, out: Path, *, workers: int | None = 1, address: str | None = None, resume: bool = False,
    force: bool = False, progress: Callable[[SweepProgress], None] | None = None,
) -> SweepReport:
    """Run every cell not already ok in ``out``; ``workers=1`` in-process, otherwise on Ray.

    Everything is checked before the first cell runs. Ctrl-C stops the sweep:
    finished rows stay in results.csv and the summary is written for them.
    """
    if workers is not None and workers < 1:
        raise SysidInputError(f"--workers is {workers}: use 1 (in-process) or more (Ray)")
    if address is not None and workers == 1:
        raise SysidInputError("--address joins a Ray cluster but --workers 1 runs in-process: drop one of them")
    cells = expand(spec)
    if workers != 1:
        import_ray()
    prepare_out(out, resume=resume, force=force)
    out = Path(out)
    (out / "cells").mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(out / "cells")
    _write_json(out / "sweep.json", spec.to_dict())
    table = ResultsTable(out / "results.csv", cells, spec.axes)
    todo = [cell for cell in cells if not table.is_ok(cell)]
    _warn_foreign(table, cells)
    state = SweepProgress(total=len(todo))
    if todo:
        events = (serial_events(todo, out / "cells", spec.timeout_s) if workers == 1 else
                  ray_events(todo, out / "cells", spec.timeout_s, workers=workers, address=address))
        try:
            state = _consume(events, table, state, progress)
        finally:
            events.close()  # on Ctrl-C: cancels the Ray tasks still running
            if table.rows:
                write_reports(out, spec)
    elif table.rows and not (out / "summary.md").is_file():
        write_reports(out, spec)
    return SweepReport(out, len(cells), len(cells) - len(todo), state)


def _consume(events, table: ResultsTable, state: SweepProgress, progress) -> SweepProgress:
    if progress is not None:
        progress(state)
    for kind, item in events:
        if kind == "start":
            state = _replace(state, running=state.running + 1)
        else:
            table.add(item)
            ok = item.status == OK
            state = _replace(state, running=state.running - 1, done=state.done + ok, failed=state.failed + (not ok))
        if progress is not None:
            progress(state)
    return state


def _replace(state: SweepProgress, **changes) -> SweepProgress:
    return SweepProgress(**{**state.__dict__, **changes})


def write_reports(out: Path, spec: SweepSpec) -> None:
    from sysid.sweep.plots import sweep_figures
    from sysid.sweep.summary import PLOTTED, varying_axes, write_summary

    title = f"{spec.kind} cells, stage {spec.stage}, frozen model " + (
        "from the truth" if spec.frozen.from_truth else "trained by Phase 1")
    frame = write_summary(out / "results.csv", out / "summary.md", spec.axes, title)
    ok = frame[frame["status"] == OK]
    metrics = [m for m in PLOTTED if m in ok.columns]
    with atomic_dir(out / "plots", force=True) as tmp:
        if len(ok):
            sweep_figures(ok, varying_axes(ok, spec.axes), metrics, tmp)


def _write_json(path: Path, data: dict) -> None:
    with atomic_file(path, force=True) as tmp:
        tmp.write_text(json.dumps(data, indent=1) + "\n")


def _warn_foreign(table: ResultsTable, cells: list[Cell]) -> None:
    ids = {cell.id for cell in cells}
    foreign = [cid for cid in table.rows if cid not in ids]
    if foreign:
        log.warning("results.csv has %d rows of cells that are not in this sweep file; they are kept", len(foreign))


def _remove_stale_temporaries(cells_dir: Path) -> None:
    """Temporary folders of cells whose worker was killed (Ctrl-C, timeout) before it could clean up."""
    for stale in cells_dir.glob(".*.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
