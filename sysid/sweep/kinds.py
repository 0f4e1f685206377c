"""Kinds of cells: a registry from the sweep file's ``kind`` to the function that runs one cell.

A runner takes the cell and an empty folder, writes the cell's outputs there
with the pipeline's jobs and returns the analysis.log keys. New kinds (cells
that simulate an SBML model or a genome-scale network, say) register with
:func:`register` and need nothing else from the sweep machinery.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sysid.sweep.cells import Cell

CellRunner = Callable[[Cell, Path], dict[str, float]]
KINDS: dict[str, CellRunner] = {}


def register(kind: str) -> Callable[[CellRunner], CellRunner]:
    def add(runner: CellRunner) -> CellRunner:
        KINDS[kind] = runner
        return runner

    return add


@register("synthetic")
def run_synthetic(cell: Cell, folder: Path) -> dict[str, float]:
    """simulate -> frozen model (from the truth with log_k noise, or Phase 1) -> fit or refine -> analysis.log."""
    from sysid.pipeline import fit_to_folder, phase1_to_file, simulate_to_folder
    from sysid.reports import ANALYSIS_LOG, read_analysis_log

    cfg = cell.config()
    data = simulate_to_folder(cfg, folder / "data")
    model = folder / "frozen.pt"
    phase1_to_file(data, model, cfg, from_truth=cell.from_truth, log_k_noise=cell.log_k_noise)
    fit = folder / cell.stage
    fit_to_folder(data, model, fit, cfg, refine_stage=cell.stage == "refine")
    return read_analysis_log(fit / ANALYSIS_LOG)
