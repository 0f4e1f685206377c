"""Large stage-1 problems: sparse products with S, and normal equations solved by eliminating the
per-metabolite columns first (genome-scale networks; docs/genome.md).

The normal matrix of the windowed design has one (slope_i, offset_i) pair per
metabolite, and a row of metabolite i touches only its own pair: that part of
the matrix is block-diagonal with 2 x 2 blocks. Eliminating it (a Schur
complement) leaves a dense system over the frozen-model corrections only,
which is what costs O(n_reactions^3) instead of O((2 n_metabolites + n_reactions)^3).
The result is the same least-squares solution as the dense solve, up to round-off.
Small problems (the default regime) keep the dense path, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg, sparse
from scipy.sparse.linalg import SuperLU, splu

DENSE_LIMIT = 2_000_000  # n_metabolites * n_reactions up to which dense products with S are used
BLOCK_COLUMNS = 3000  # design columns above which the per-metabolite block is eliminated first


def is_large(S: np.ndarray) -> bool:
    return S.shape[0] * S.shape[1] > DENSE_LIMIT


def times_st(per_frame: np.ndarray, S: np.ndarray, S_sparse: sparse.csr_matrix | None = None) -> np.ndarray:
    """per_frame @ S.T ((frames, n_rxn) -> (frames, n_met)), through a sparse S on large networks."""
    if not is_large(S):
        return per_frame @ S.T
    S_sparse = sparse.csr_matrix(S) if S_sparse is None else S_sparse
    return np.asarray((S_sparse @ per_frame.T).T)


def log_monomials(logc: np.ndarray, substrates: np.ndarray) -> np.ndarray:
    """logc @ substrates ((frames, n_met) -> (frames, n_rxn)), sparse on large networks."""
    if not is_large(substrates):
        return logc @ substrates
    return np.asarray((sparse.csc_matrix(substrates).T @ logc.T).T)


@dataclass(frozen=True, eq=False)
class Eliminated:
    """Scaled, ridged normal equations with the (slope, offset) pairs p eliminated from the other columns q."""

    used: np.ndarray  # columns with data
    scale: np.ndarray  # 1 / column norm of each used column
    p: np.ndarray  # positions (in used) of the per-metabolite columns
    q: np.ndarray  # positions of the other columns
    lu: SuperLU  # factor of A_pp (block-diagonal 2 x 2)
    Apq: sparse.csc_matrix
    Y: np.ndarray  # A_pp^-1 A_pq
    reduced: np.ndarray  # Schur complement A_qq - A_qp A_pp^-1 A_pq


def eliminate_pairs(A: sparse.spmatrix, n_met: int, ridge: float) -> Eliminated:
    A = sparse.csc_matrix(A)
    d = np.sqrt(A.diagonal())
    used = np.nonzero(d > 0)[0]
    scale = 1.0 / d[used]
    As = sparse.csc_matrix(sparse.diags(scale) @ A[used][:, used] @ sparse.diags(scale)
                           + ridge * sparse.identity(len(used)))
    is_pair = used < 2 * n_met
    p, q = np.nonzero(is_pair)[0], np.nonzero(~is_pair)[0]
    App, Apq = As[p][:, p].tocsc(), As[p][:, q].tocsc()
    lu = splu(App)  # block-diagonal 2 x 2: cheap, exact
    Y = lu.solve(Apq.toarray()) if len(q) else np.zeros((len(p), 0))
    reduced = As[q][:, q].toarray() - np.asarray(Apq.T @ Y)
    return Eliminated(used, scale, p, q, lu, Apq, Y, reduced)


def solve_eliminating_pairs(A: sparse.spmatrix, b: np.ndarray, n_met: int, ridge: float) -> np.ndarray:
    """Column-scaled, ridged normal equations A x = b whose first 2 n_met columns are (slope, offset) pairs,
    solved by eliminating those pairs; unused columns get 0."""
    e = eliminate_pairs(A, n_met, ridge)
    bs = b[e.used] * e.scale
    rhs = bs[e.q] - e.Apq.T @ e.lu.solve(bs[e.p])
    try:
        zq = linalg.solve(e.reduced, rhs, assume_a="pos")
    except linalg.LinAlgError:
        zq = linalg.lstsq(e.reduced, rhs)[0]
    z = np.empty(len(e.used))
    z[e.p], z[e.q] = e.lu.solve(bs[e.p] - e.Apq @ zq), zq
    coef = np.zeros(A.shape[0])
    coef[e.used] = z * e.scale
    return coef


def slope_inflation(A: sparse.spmatrix, n_met: int, ridge: float) -> np.ndarray:
    """(n_met,) variance inflation of each slope: its variance in the joint fit over its variance given its own
    offset alone (1: the frozen-model corrections take nothing from it; inf: no data)."""
    e = eliminate_pairs(A, n_met, ridge)
    slope = np.nonzero(e.used[e.p] < n_met)[0]
    own = np.array([e.lu.solve(np.eye(1, len(e.p), k).ravel())[k] for k in slope]) if len(slope) else slope
    out = np.full(n_met, np.inf)
    if len(e.q) == 0:
        out[e.used[e.p][slope]] = 1.0
        return out
    try:
        L = linalg.cholesky(e.reduced, lower=True)
        W = linalg.solve_triangular(L, e.Y[slope].T, lower=True)
        extra = np.sum(W**2, axis=0)
    except linalg.LinAlgError:
        extra = np.einsum("ij,ji->i", e.Y[slope], linalg.lstsq(e.reduced, e.Y[slope].T)[0])
    out[e.used[e.p][slope]] = 1.0 + extra / own
    return out
