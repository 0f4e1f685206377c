"""Cells: the cartesian product of the grid, each with its full resolved config and a content hash."""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from dataclasses import dataclass

from sysid.config import Config, config_from_dict
from sysid.errors import SysidInputError
from sysid.sweep.spec import LOG_K_NOISE_AXIS, SweepSpec

ID_LENGTH = 12


@dataclass(frozen=True)
class Cell:
    """One run of the sweep; everything a worker needs, picklable."""

    index: int  # position in the expansion (rows of results.csv are kept in this order)
    id: str  # hash of ``resolved``: equal configs give equal ids across sweep files
    kind: str
    values: tuple[tuple[str, object], ...]  # (axis, value) for the columns of results.csv
    resolved: str  # canonical JSON of the full resolved cell: config, frozen model, stage
    stage: str
    from_truth: bool
    log_k_noise: float

    def config_dict(self) -> dict:
        return json.loads(self.resolved)["config"]

    def config(self) -> Config:
        """The typed config; raises SysidInputError for a value the config refuses (the cell then fails)."""
        return config_from_dict(self.config_dict())


def expand(spec: SweepSpec) -> list[Cell]:
    """All cells, the last grid key varying fastest, then the log_k noise."""
    keys = [key for key, _ in spec.grid]
    cells = []
    combos = itertools.product(*(values for _, values in spec.grid), spec.frozen.log_k_noise)
    for index, combo in enumerate(combos):
        *values, noise = combo
        config = copy.deepcopy(spec.base)
        for key, value in zip(keys, values, strict=True):
            _set(config, key, list(value) if isinstance(value, tuple) else value)
        resolved = {
            "kind": spec.kind, "config": config, "stage": spec.stage,
            "frozen": {"from_truth": spec.frozen.from_truth,
                       "log_k_noise": noise if spec.frozen.from_truth else None},
        }
        text = json.dumps(resolved, sort_keys=True, separators=(",", ":"))
        axis_values = list(zip(keys, values, strict=True))
        if spec.frozen.noise_is_axis:
            axis_values.append((LOG_K_NOISE_AXIS, noise))
        cells.append(Cell(index, hashlib.sha256(text.encode()).hexdigest()[:ID_LENGTH], spec.kind,
                          tuple(axis_values), text, spec.stage, spec.frozen.from_truth, noise))
    ids = {c.id for c in cells}
    if len(ids) != len(cells):
        raise SysidInputError("the sweep grid repeats a cell (a value listed twice?): list each value once")
    return cells


def _set(config: dict, dotted: str, value) -> None:
    *sections, key = dotted.split(".")
    for section in sections:
        config = config[section]
    config[key] = value
