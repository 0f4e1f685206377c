"""sysid: system identification of metabolic-network dynamics.

Recover weak homeostatic regulation -lambda_i (c_i - cb_i) hidden under the
errors of a frozen reaction model, in two stages: regression on the frozen
model's residuals (with its errors partialled out) and grouping, then a neural
refine of MLP_node and embeddings by Euler rollouts.

The entry point of every stage is importable from here; the names load on first
use, so ``import sysid`` itself is cheap (torch loads with the first model or dataset).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

_EXPORTS = {
    # configuration and errors
    "Config": "sysid.config", "RefineOptions": "sysid.config", "load_config": "sysid.config",
    "SysidInputError": "sysid.errors",
    # data
    "Dataset": "sysid.io.dataset", "load_dataset": "sysid.io.dataset", "load_truth": "sysid.io.dataset",
    "write_dataset": "sysid.io.dataset", "simulate": "sysid.simulation", "Simulation": "sysid.truth",
    "Truth": "sysid.truth",
    # the frozen model
    "MetabolismModel": "sysid.model", "euler_rollout": "sysid.model",
    "load_checkpoint": "sysid.io.checkpoint", "save_checkpoint": "sysid.io.checkpoint",
    "model_from_truth": "sysid.phase1.from_truth", "train_phase1": "sysid.phase1.trainer",
    "Phase1Result": "sysid.phase1.trainer",
    # stage 1 and stage 2
    "fit_stage1": "sysid.stage1.fit", "Stage1Result": "sysid.stage1.fit", "HomeostasisFit": "sysid.stage1.result",
    "refine": "sysid.stage2.refine", "RefineResult": "sysid.stage2.refine",
    # evaluation against a truth
    "model_metrics": "sysid.evaluation.metrics", "stage1_metrics": "sysid.evaluation.metrics",
}
__all__ = sorted(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'sysid' has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:
    from sysid.config import Config, RefineOptions, load_config
    from sysid.errors import SysidInputError
    from sysid.evaluation.metrics import model_metrics, stage1_metrics
    from sysid.io.checkpoint import load_checkpoint, save_checkpoint
    from sysid.io.dataset import Dataset, load_dataset, load_truth, write_dataset
    from sysid.model import MetabolismModel, euler_rollout
    from sysid.phase1.from_truth import model_from_truth
    from sysid.phase1.trainer import Phase1Result, train_phase1
    from sysid.simulation import simulate
    from sysid.stage1.fit import Stage1Result, fit_stage1
    from sysid.stage1.result import HomeostasisFit
    from sysid.stage2.refine import RefineResult, refine
    from sysid.truth import Simulation, Truth
