"""The synthetic cell: simulate -> frozen model (from the truth with log_k noise, or Phase 1) -> fit or refine."""

from __future__ import annotations

from pathlib import Path

from sysid.pipeline import fit_to_folder, phase1_to_file, simulate_to_folder
from sysid.reports import ANALYSIS_LOG, read_analysis_log
from sysid.sweep.cells import Cell


def run_synthetic(cell: Cell, folder: Path) -> dict[str, float]:
    """simulate -> frozen model (from the truth with log_k noise, or Phase 1) -> fit or refine -> analysis.log."""
    cfg = cell.config()
    data = simulate_to_folder(cfg, folder / "data")
    model = folder / "frozen.pt"
    phase1_to_file(data, model, cfg, from_truth=cell.from_truth, log_k_noise=cell.log_k_noise)
    fit = folder / cell.stage
    fit_to_folder(data, model, fit, cfg, refine_stage=cell.stage == "refine")
    return read_analysis_log(fit / ANALYSIS_LOG)
