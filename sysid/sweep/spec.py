"""The sweep file, parsed once into typed frozen objects and checked before any cell runs.

A sweep file is YAML::

    base: configs/default.yaml     # a config file (relative to the sweep file), a mapping, or omitted
    grid:                          # dotted config keys -> lists of values (cartesian product)
      simulation.seed: [1, 2]
    frozen:                        # how each cell gets its frozen reaction model
      from_truth: true
      log_k_noise: [0.0, 0.1]      # a list is a grid axis, a number a fixed value
    stage: fit                     # fit | refine
    timeout_s: 900                 # per cell (omitted: no limit)
    kind: synthetic                # the cell kind (see sysid.sweep.kinds)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from sysid.config import coerce_key, config_from_dict, load_config, read_yaml
from sysid.errors import SysidInputError
from sysid.sweep.kinds import KINDS

KEYS = ("base", "grid", "frozen", "stage", "timeout_s", "kind")
STAGES = ("fit", "refine")
LOG_K_NOISE_AXIS = "frozen.log_k_noise"


@dataclass(frozen=True)
class FrozenSpec:
    """The frozen model of a cell: built from the truth (with log_k noise) or trained by Phase 1."""

    from_truth: bool = True
    log_k_noise: tuple[float, ...] = (0.0,)  # one cell per value
    noise_is_axis: bool = False  # given as a list in the sweep file: a column of results.csv


@dataclass(frozen=True)
class SweepSpec:
    base: dict  # the fully resolved base config, as nested plain mappings
    grid: tuple[tuple[str, tuple], ...]  # (dotted key, values) in file order, values checked and converted
    frozen: FrozenSpec
    stage: str = "fit"
    timeout_s: float | None = None
    kind: str = "synthetic"

    @property
    def axes(self) -> tuple[str, ...]:
        """The columns of results.csv that name a cell: the grid keys, then the log_k noise if it varies."""
        extra = (LOG_K_NOISE_AXIS,) if self.frozen.noise_is_axis else ()
        return tuple(key for key, _ in self.grid) + extra

    def to_dict(self) -> dict:
        return {
            "base": self.base, "grid": {k: list(v) for k, v in self.grid},
            "frozen": {"from_truth": self.frozen.from_truth, "phase1": not self.frozen.from_truth,
                       "log_k_noise": list(self.frozen.log_k_noise)},
            "stage": self.stage, "timeout_s": self.timeout_s, "kind": self.kind,
        }


def load_sweep(path: str | Path) -> SweepSpec:
    return sweep_from_dict(read_yaml(path, "sweep file"), root=Path(path).parent)


def sweep_from_dict(data, root: Path = Path(".")) -> SweepSpec:
    """Check every part of a parsed sweep file; ``root`` resolves a relative ``base`` path."""
    if not isinstance(data, dict):
        raise SysidInputError("a sweep file must be a YAML mapping with at least a 'grid' key: see docs/sweeps.md")
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise SysidInputError(f"sweep file key {unknown[0]!r} is not known: use only {', '.join(KEYS)}")
    kind = data.get("kind", "synthetic")
    if kind not in KINDS:
        raise SysidInputError(f"sweep kind {kind!r} is not known: use one of {', '.join(sorted(KINDS))}")
    stage = data.get("stage", "fit")
    if stage not in STAGES:
        raise SysidInputError(f"sweep stage {stage!r} is not known: use 'fit' or 'refine'")
    return SweepSpec(base=_base(data.get("base"), root), grid=_grid(data.get("grid")),
                     frozen=_frozen(data.get("frozen")), stage=stage,
                     timeout_s=_timeout(data.get("timeout_s")), kind=kind)


def _base(base, root: Path) -> dict:
    if base is None:
        return dataclasses.asdict(load_config(None))
    if isinstance(base, dict):
        return dataclasses.asdict(config_from_dict(base))
    if isinstance(base, str):
        path = Path(base) if Path(base).is_absolute() else root / base
        return dataclasses.asdict(load_config(path))
    raise SysidInputError(f"sweep base is {base!r}: give the path of a config file or a mapping of config sections")


def _grid(grid) -> tuple[tuple[str, tuple], ...]:
    if grid is None or grid == {}:
        raise SysidInputError("the sweep grid is empty: give at least one key, e.g. grid: {simulation.seed: [1, 2]}")
    if not isinstance(grid, dict):
        raise SysidInputError("the sweep grid must map dotted config keys to lists: e.g. simulation.seed: [1, 2]")
    axes = []
    for key, values in grid.items():
        if key == LOG_K_NOISE_AXIS:
            raise SysidInputError(f"{key} is not a grid key: give the list under frozen: log_k_noise")
        if not isinstance(values, list) or not values:
            raise SysidInputError(f"grid key {key} must have a non-empty list of values, got {values!r}")
        converted = tuple(coerce_key(str(key), value) for value in values)
        axes.append((str(key), tuple(tuple(v) if isinstance(v, list) else v for v in converted)))
    return tuple(axes)


def _frozen(frozen) -> FrozenSpec:
    if frozen is None:
        return FrozenSpec()
    if not isinstance(frozen, dict) or set(frozen) - {"from_truth", "phase1", "log_k_noise"}:
        raise SysidInputError("sweep frozen must be {from_truth: true, log_k_noise: [...]} or {phase1: true}")
    from_truth, phase1 = frozen.get("from_truth", False), frozen.get("phase1", False)
    if not isinstance(from_truth, bool) or not isinstance(phase1, bool) or from_truth == phase1:
        raise SysidInputError("sweep frozen needs exactly one of from_truth: true or phase1: true")
    noise = frozen.get("log_k_noise", 0.0)
    if phase1 and "log_k_noise" in frozen:
        raise SysidInputError("frozen.log_k_noise only applies with from_truth: true: drop it or use from_truth")
    values = noise if isinstance(noise, list) else [noise]
    if not values or not all(isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in values):
        raise SysidInputError(f"frozen.log_k_noise is {noise!r}: give a number >= 0 or a non-empty list of them")
    return FrozenSpec(from_truth, tuple(float(v) for v in values), noise_is_axis=isinstance(noise, list))


def _timeout(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise SysidInputError(f"sweep timeout_s is {value!r}: give seconds > 0 (or omit it for no limit)")
    return float(value)
