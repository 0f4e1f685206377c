"""The information of the output error's Gauss-Newton steps, and the elimination of the window starts.

Each window w of the output error has its own start x_w besides the shared
parameters theta. Its information J^T W J splits into theta's block A_w, the
cross block B_w and the start's block D_w. Only the sum of the A_w over windows
is needed: a step solves the reduced system (sum_w A_w - B_w D_w^-1 B_w^T)
d theta = sum_w (g_theta - B_w D_w^-1 g_x), and each window's start follows by
back-substitution (a Schur complement per window).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from scipy import linalg
from scipy.linalg import blas

from sysid.stage1.readings import Weighed


class StartBlocks(NamedTuple):
    """The information J^T W J in the blocks the elimination of the window starts needs: the parameters' own block
    summed over windows (P, P), and per window the parameters-by-start block (B, P, M) and the start's own block
    (B, M, M)."""

    params: np.ndarray
    cross: np.ndarray
    starts: np.ndarray

    @classmethod
    def of(cls, info: np.ndarray, n_par: int) -> StartBlocks:
        """The blocks of each window's whole information (B, P + M, P + M)."""
        return cls(info[:, :n_par, :n_par].sum(axis=0), info[:, :n_par, n_par:], info[:, n_par:, n_par:])


class BlockSums:
    """The blocks (:class:`StartBlocks`) of the sum over a pass's readings of weight * J^T J, in float32 or
    float64. Each step's parameter block, summed over windows, is one symmetric rank-k update (BLAS syrk: half
    the products of the windows' whole blocks; a pass over the default regime's windows took 36-43% less time in
    float32 than with every window's whole block), added up over the steps in float64; the per-window blocks are
    batched products (torch)."""

    def __init__(self, n_windows: int, n_par: int, n_met: int, dtype: type = np.float32):
        self.n_par, self.dtype = n_par, np.dtype(dtype)
        self.syrk = blas.ssyrk if self.dtype == np.float32 else blas.dsyrk
        self.params = np.zeros((n_par, n_par))  # upper triangle (syrk's)
        torch_dtype = torch.float32 if self.dtype == np.float32 else torch.float64
        self.cross = torch.zeros((n_windows, n_par, n_met), dtype=torch_dtype)
        self.starts = torch.zeros((n_windows, n_met, n_met), dtype=torch_dtype)

    def add(self, sens: np.ndarray, weight: np.ndarray) -> None:
        """One recorded sample of every window: sensitivities (B, M, P + M), the readings' weights (B, M)."""
        (n_win, n_met), root = sens.shape[:2], np.sqrt(weight)[:, :, None]
        # a window whose trajectory runs away can have sensitivities beyond float32: the sums are then not finite,
        # and a step built on them is refused (a non-finite system: levenberg.minimise damps more, or stops)
        with np.errstate(over="ignore", invalid="ignore"):
            par = np.multiply(sens[:, :, : self.n_par], root, out=np.empty((n_win, n_met, self.n_par), self.dtype))
            start = np.multiply(sens[:, :, self.n_par :], root, out=np.empty((n_win, n_met, n_met), self.dtype))
            if self.n_par:
                self.params += self.syrk(1.0, par.reshape(-1, self.n_par).T)
        self.cross.baddbmm_(torch.from_numpy(par).transpose(1, 2), torch.from_numpy(start))
        self.starts.baddbmm_(torch.from_numpy(start).transpose(1, 2), torch.from_numpy(start))

    def result(self) -> StartBlocks:
        full = np.triu(self.params) + np.triu(self.params, 1).T
        return StartBlocks(full, self.cross.double().numpy(), self.starts.double().numpy())


class StepInformation:
    """The information of a Gauss-Newton step (the readings' weights w), in float32 :class:`BlockSums`."""

    def __init__(self, n_windows: int, n_par: int, n_met: int):
        self.sums = BlockSums(n_windows, n_par, n_met, np.float32)

    def add(self, sens: np.ndarray, weighed: Weighed) -> None:
        self.sums.add(sens, weighed.w)

    def result(self) -> StartBlocks:
        return self.sums.result()


class SandwichInformation:
    """The bread (the information, weights w) and meat (the squared scores, weights (w r)^2) of the sandwich
    covariance, each in float64 :class:`BlockSums` (float32 sums gave negative variances on (c) seed 10)."""

    def __init__(self, n_windows: int, n_par: int, n_met: int):
        self.bread, self.meat = (BlockSums(n_windows, n_par, n_met, np.float64) for _ in range(2))

    def add(self, sens: np.ndarray, weighed: Weighed) -> None:
        self.bread.add(sens, weighed.w)
        self.meat.add(sens, weighed.wr**2)

    def result(self) -> tuple[StartBlocks, StartBlocks]:
        return self.bread.result(), self.meat.result()


def profiled_meat(meat: StartBlocks, parts) -> np.ndarray:
    """The sandwich's meat of the parameters with each window's start profiled out: sum over windows of
    P_b Meat_b P_b^T, P_b = [I, -(D_b^-1 B_b^T)^T] (``parts`` of :func:`eliminate` on the bread), from the meat's
    blocks: its parameters' block summed over windows less the cross terms, plus the starts' terms."""
    profiled = meat.params.copy()
    for (solved, _), cross, start in zip(parts, meat.cross, meat.starts, strict=True):
        mixed = cross @ solved
        profiled += solved.T @ start @ solved - mixed - mixed.T
    return profiled


def eliminate(info: StartBlocks, grad: np.ndarray, damping: float):
    """The parameters' information summed over windows less the Schur complements of the starts' blocks (damped
    by ``damping`` times their diagonal), the reduced right-hand side, and per window (D^-1 B^T, D^-1 g_x) for
    back-substitution."""
    n_par = len(info.params)
    reduced, rhs, parts = info.params.copy(), grad[:, :n_par].sum(axis=0), []
    for b, d, g in zip(info.cross, info.starts, grad, strict=True):
        d = d + np.diag(damping * np.diag(d) + 1e-12 * max(float(np.trace(d)), 1e-300) / len(d))
        rhs_d = np.column_stack([b.T, g[n_par:]])
        try:
            solved = linalg.solve(d, rhs_d, assume_a="pos")
        except linalg.LinAlgError:  # a start the window does not determine (a state held at zero): no step there
            solved = linalg.pinvh(d, rtol=1e-6) @ rhs_d  # directions below float32 precision (the sums') dropped
        reduced -= b @ solved[:, :-1]
        rhs -= b @ solved[:, -1]
        parts.append((solved[:, :-1], solved[:, -1]))
    return reduced, rhs, parts
