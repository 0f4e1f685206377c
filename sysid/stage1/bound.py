"""Cramer-Rao bound of each metabolite's homeostatic slope and offset: the physical limit of any estimator.

The data model is output error over windows: the recorded concentrations are

    y_i(t_k) = c_i(t_k; theta, x_w) + e_ik,

where c follows the corrected frozen model of :mod:`sysid.stage1.shooting`
(dc/dt = sum_j S_ij beta_j v_j(c) + s_i c_i + o_i, Euler with ``substeps`` per
recorded interval, each step clamped at zero as the simulator does: a clamped
state's sensitivities are zero), each window w of ``window`` recorded intervals starts from
its own unknown state x_w, and e is Gaussian measurement noise: absolute
(sd sigma) or relative (sd sigma * c, the first-order form of log-normal noise).
The parameters are theta = (s, o, beta): the per-reaction rate multipliers
beta are nuisance parameters, and so are the window starts.

The Fisher information is sum_w sum_k J_wk^T W_k J_wk with J the sensitivities
of the recorded states to (theta, x_w), propagated forward through the
discrete variational equations (:func:`sysid.stage1.output_error.window_sensitivities`,
the same pass the output-error fit uses), summed in float64 in the blocks the
elimination needs (:class:`sysid.stage1.information.BlockSums`). Each window's start is eliminated by its Schur
complement, the information on theta is inverted, and the bound on a parameter
is the square root of its diagonal entry: the smallest standard deviation an
unbiased estimator can have. Windows must be short enough for the linearisation
to hold on a chaotic system (a few hundred integration steps).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg

from sysid.model import MetabolismModel
from sysid.stage1.information import BlockSums, StartBlocks
from sysid.stage1.output_error import Corrected, window_sensitivities
from sysid.stage1.shooting import scaled_pseudo_inverse
from sysid.stage1.windows import output_error_starts


@dataclass(frozen=True, eq=False)
class SlopeBound:
    """Cramer-Rao standard deviations of each slope and offset, and the covariance bound of all slopes."""

    slope_sd: np.ndarray  # (n_metabolites,)
    offset_sd: np.ndarray  # (n_metabolites,)
    covariance: np.ndarray  # (2 n_met, 2 n_met): inverse information of (slopes, offsets), nuisances eliminated

    def mean_slope_sd(self, members: np.ndarray) -> float:
        """Bound on the mean of the slopes of a set of metabolites (boolean mask), each with its own slope."""
        a = members / members.sum()
        n = len(members)
        return float(np.sqrt(a @ self.covariance[:n, :n] @ a))

    def shared_slope_sd(self, labels: np.ndarray) -> np.ndarray:
        """Bound on each group's slope when all its members share one slope and one offset: (n_groups,)."""
        n, n_groups = len(labels), int(labels.max()) + 1
        A = np.zeros((2 * n, 2 * n_groups))
        A[np.arange(n), labels] = 1.0
        A[n + np.arange(n), n_groups + labels] = 1.0
        info = linalg.pinvh(self.covariance)
        return np.sqrt(np.diag(linalg.pinvh(A.T @ info @ A))[:n_groups])


def cramer_rao_bound(model: MetabolismModel, concentrations: np.ndarray, delta_t: float, *, slope: np.ndarray,
                     offset: np.ndarray, noise_level: float, noise_kind: str = "absolute", window: int = 10,
                     substeps: int = 1, scale: np.ndarray | None = None) -> SlopeBound:
    """The bound at parameters (slope, offset, scale) for a record of noise-free states ``concentrations``
    (n_frames + 1, n_met) sampled every ``delta_t``, cut into windows of ``window`` recorded samples."""
    n_met, n_rxn = model.network().S.shape
    params = Corrected(slope, offset, np.ones(n_rxn) if scale is None else scale)
    n_par = 2 * n_met + n_rxn
    starts = output_error_starts(len(concentrations) - 1, window)
    info = BlockSums(len(starts), n_par, n_met, np.float64)
    for _, x, sens in window_sensitivities(model, concentrations[starts], params, window=window, substeps=substeps,
                                           delta_t=delta_t):
        assert sens is not None  # asked for
        sd = noise_level * (x if noise_kind == "relative" else np.ones_like(x))
        info.add(sens, 1.0 / np.maximum(sd, 1e-12) ** 2)
    return _bound(info.result(), n_met)


def _bound(info: StartBlocks, n_met: int) -> SlopeBound:
    """Eliminate each window's start (Schur complement, pseudo-inverse), invert; keep the slope and offset
    block."""
    total = info.params.copy()
    for b, d in zip(info.cross, info.starts, strict=True):
        total -= b @ linalg.pinvh(d) @ b.T
    cov = scaled_pseudo_inverse(total)
    keep = cov[: 2 * n_met, : 2 * n_met]
    diag = np.sqrt(np.maximum(np.diag(keep), 0.0))
    return SlopeBound(diag[:n_met], diag[n_met:], keep)
