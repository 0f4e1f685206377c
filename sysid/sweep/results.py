"""results.csv: one row per cell, rewritten atomically after every finished cell.

Each write goes to a temporary file that then replaces results.csv, so a
reader (or a crash, or Ctrl-C) never sees a partial row. Rows are kept in the
order of the expansion whatever order the cells finish in, and values of rows
read back (``--resume``) are kept as the exact strings of the file.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

from sysid.io.atomic import atomic_file
from sysid.sweep.cells import Cell
from sysid.sweep.execute import OK, Outcome

FRONT = ("cell_id",)
TIMING = ("status", "error", "seconds", "peak_memory_mb")


class ResultsTable:
    def __init__(self, path: Path, cells: Sequence[Cell], axes: Sequence[str]):
        self.path = Path(path)
        self.axes = tuple(axes)
        self.cells = {cell.id: cell for cell in cells}
        self.rows: dict[str, dict[str, str]] = {}
        self.metric_keys: list[str] = []
        if self.path.is_file():
            self._read()

    def _read(self) -> None:
        with open(self.path, newline="") as fh:
            reader = csv.DictReader(fh)
            fixed = set(FRONT) | set(TIMING) | set(self.axes)
            self.metric_keys = [k for k in reader.fieldnames or () if k not in fixed]
            for row in reader:
                self.rows[row["cell_id"]] = row

    def is_ok(self, cell: Cell) -> bool:
        row = self.rows.get(cell.id)
        return row is not None and row.get("status") == OK

    @property
    def columns(self) -> list[str]:
        return [*FRONT, *self.axes, *TIMING, *self.metric_keys]

    def add(self, outcome: Outcome) -> None:
        """Record a finished cell (replacing its earlier row) and rewrite the file."""
        cell = self.cells[outcome.cell_id]
        row = {"cell_id": cell.id, **{axis: _text(value) for axis, value in cell.values}}
        row.update(status=outcome.status, error=outcome.error, seconds=f"{outcome.seconds:.3f}",
                   peak_memory_mb=_text(round(outcome.peak_memory_mb, 1)))
        for key, value in outcome.metrics.items():
            if key not in self.metric_keys:
                self.metric_keys.append(key)
            row[key] = _text(value)
        self.rows[cell.id] = row
        self.write()

    def write(self) -> None:
        order = {cid: cell.index for cid, cell in self.cells.items()}
        # rows of cells that are no longer in the sweep file stay, after the others
        ordered = sorted(self.rows.values(), key=lambda r: order.get(r["cell_id"], len(order)))
        with atomic_file(self.path, force=True) as tmp:
            with open(tmp, "w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=self.columns, restval="", extrasaction="ignore")
                writer.writeheader()
                writer.writerows(ordered)


def _text(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    if isinstance(value, tuple | list):
        return " ".join(_text(v) for v in value)
    return str(value)
