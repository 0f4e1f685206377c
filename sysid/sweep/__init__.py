"""Sweeps: a grid of configs x frozen-model quality, one cell per combination, run in-process or on Ray.

See docs/sweeps.md. The public names::

    spec = load_sweep("sweep.yaml")          # typed, checked before anything runs
    cells = expand(spec)                     # the cartesian product, each cell with its content hash
    run_sweep(spec, "out", workers=2)        # results.csv, summary.md, plots/, cells/
"""

from sysid.sweep.cells import Cell, expand
from sysid.sweep.execute import Outcome, run_cell
from sysid.sweep.kinds import KINDS, register
from sysid.sweep.run import SweepProgress, SweepReport, run_sweep
from sysid.sweep.spec import FrozenSpec, SweepSpec, load_sweep, sweep_from_dict

__all__ = [
    "KINDS", "Cell", "FrozenSpec", "Outcome", "SweepProgress", "SweepReport", "SweepSpec", "expand", "load_sweep",
    "register", "run_cell", "run_sweep", "sweep_from_dict",
]
