"""The homeostasis function read as curves and lines.

MLP_node is compared with the truth, and initialised from stage 1, as lines over
the concentration sweep ``SWEEP`` = linspace(0, 40, 50) (docs/reference.md, metrics).
"""

from __future__ import annotations

import numpy as np
import torch

from sysid.model import MetabolismModel

SWEEP = np.linspace(0.0, 40.0, 50)


def line_fits(x: np.ndarray, curves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares slope and intercept of each row of ``curves`` against ``x``."""
    slope, intercept = np.polyfit(x, np.asarray(curves, np.float64).T, 1)
    return slope, intercept


@torch.no_grad()
def node_curves(model: MetabolismModel, c: np.ndarray = SWEEP) -> np.ndarray:
    """MLP_node([c, a_i]) for every metabolite i over concentrations c: (n_metabolites, len(c))."""
    grid = torch.as_tensor(c, dtype=model.dtype, device=model.device)[:, None].expand(-1, model.n_metabolites)
    return model.node(grid).T.cpu().double().numpy()
