"""Kinds of cells: a registry from the sweep file's ``kind`` to the function that runs one cell.

A runner takes the cell and an empty folder, writes the cell's outputs there
with the pipeline's jobs and returns the analysis.log keys. The registry
holds either the function or its ``"module:function"`` path, imported on
first use, so that reading a sweep file loads no pipeline code. New kinds
(cells that simulate an SBML model or a genome-scale network, say) register
with :func:`register` and need nothing else from the sweep machinery.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

CellRunner = Callable[[Any, Path], dict[str, float]]  # (cell, folder) -> analysis.log keys
KINDS: dict[str, CellRunner | str] = {"synthetic": "sysid.sweep.synthetic:run_synthetic"}


def register(kind: str) -> Callable[[CellRunner], CellRunner]:
    def add(runner: CellRunner) -> CellRunner:
        KINDS[kind] = runner
        return runner

    return add


def runner(kind: str) -> CellRunner:
    target = KINDS[kind]
    if isinstance(target, str):
        module, name = target.split(":")
        target = getattr(importlib.import_module(module), name)
        KINDS[kind] = target
    return target
