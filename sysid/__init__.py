"""sysid: system identification of metabolic-network dynamics.

Recover weak homeostatic regulation -lambda_i (c_i - cb_i) hidden under the
errors of a frozen reaction model, in two stages: regression on the frozen
model's residuals (with its errors partialled out) and grouping, then a neural
refine of MLP_node and embeddings by Euler rollouts.
"""

from sysid.checkpoint import load_checkpoint, save_checkpoint
from sysid.config import Config, load_config
from sysid.dataset import Dataset, load_dataset, load_truth, write_dataset
from sysid.errors import SysidInputError
from sysid.fitresult import HomeostasisFit
from sysid.model import MetabolismModel, euler_rollout
from sysid.simulate import Truth, simulate
from sysid.stage1 import Stage1Result, fit_stage1

__all__ = [
    "Config", "Dataset", "HomeostasisFit", "MetabolismModel", "Stage1Result", "SysidInputError", "Truth",
    "euler_rollout", "fit_stage1", "load_checkpoint", "load_config", "load_dataset", "load_truth",
    "save_checkpoint", "simulate", "write_dataset",
]
__version__ = "0.1.0"
