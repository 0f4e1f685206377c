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
    """Column-scaled, ridged normal equations with each metabolite's (slope, offset) pair eliminated.

    Built one metabolite at a time: a metabolite's rows touch its own pair and the nuisance columns of its
    reactions only, so its Gram block is small and dense, and its pair is eliminated right away.
    """

    used: np.ndarray  # nuisance columns (indices into the design) with data
    scale: np.ndarray  # 1 / column norm of each used nuisance column
    reduced: np.ndarray  # Schur complement over the used nuisance columns
    rhs: np.ndarray  # its right-hand side
    pairs: list  # per metabolite: (nuisance positions, P^-1 (2 x 2), B (2 x k), g_p (2,), pair scales) or None


def _gram_blocks(design, row_weights: np.ndarray):
    """Per metabolite: its nuisance columns and the Gram matrix / right-hand side of [slope, offset, those]."""
    X = design.X.tocsr()
    bounds = np.searchsorted(design.rows_met, np.arange(design.n_met + 1))
    n_pair = 2 * design.n_met
    for i in range(design.n_met):
        rows = slice(bounds[i], bounds[i + 1])
        block = X[rows]
        cols = np.unique(block.indices[block.indices >= n_pair])
        D = block[:, np.r_[i, design.n_met + i, cols]].toarray()
        Dw = D * row_weights[rows, None]
        yield i, cols, Dw.T @ D, Dw.T @ design.y[rows]


def eliminate_pairs(design, row_weights: np.ndarray, ridge: float) -> Eliminated:
    n_col = design.X.shape[1]
    n_pair = 2 * design.n_met
    blocks = list(_gram_blocks(design, row_weights))
    diag = np.zeros(n_col)
    for i, cols, G, _ in blocks:
        diag[np.r_[i, design.n_met + i, cols]] += np.diag(G)
    used = np.nonzero(diag[n_pair:] > 0)[0] + n_pair
    position = -np.ones(n_col, np.int64)
    position[used] = np.arange(len(used))
    scale_all = 1.0 / np.sqrt(np.where(diag > 0, diag, 1.0))
    reduced, rhs = np.zeros((len(used), len(used))), np.zeros(len(used))
    pairs: list = []
    for i, cols, G, g in blocks:
        if G[0, 0] <= 0 or G[1, 1] <= 0:
            pairs.append(None)
            continue
        sc = scale_all[np.r_[i, design.n_met + i, cols]]
        Gs, gs = G * sc[:, None] * sc[None, :], g * sc
        P_inv = np.linalg.inv(Gs[:2, :2] + ridge * np.eye(2))
        B, pos = Gs[:2, 2:], position[cols]
        reduced[np.ix_(pos, pos)] += Gs[2:, 2:] - B.T @ P_inv @ B
        rhs[pos] += gs[2:] - B.T @ P_inv @ gs[:2]
        pairs.append((pos, P_inv, B, gs[:2], sc[:2]))
    reduced[np.diag_indices_from(reduced)] += ridge
    return Eliminated(used, scale_all[used], reduced, rhs, pairs)


def solve_eliminating_pairs(design, row_weights: np.ndarray, ridge: float) -> np.ndarray:
    """The column-scaled, ridged least-squares solution of the windowed design (the dense solve's, up to
    round-off), with each metabolite's pair eliminated first; unused columns get 0."""
    e = eliminate_pairs(design, row_weights, ridge)
    try:
        zq = linalg.solve(e.reduced, e.rhs, assume_a="pos")
    except linalg.LinAlgError:
        zq = linalg.lstsq(e.reduced, e.rhs)[0]
    coef = np.zeros(design.X.shape[1])
    coef[e.used] = zq * e.scale
    for i, pair in enumerate(e.pairs):
        if pair is not None:
            pos, P_inv, B, gp, sc = pair
            coef[[i, design.n_met + i]] = P_inv @ (gp - B @ zq[pos]) * sc
    return coef


def pair_inflation(design, row_weights: np.ndarray, ridge: float) -> np.ndarray:
    """(n_met, 2) variance inflation of each slope and offset by the joint estimation of the frozen-model
    corrections: the diagonal of the metabolite's block of the joint inverse over that of its own 2 x 2 block
    (P^-1 + (P^-1 B) R^-1 (P^-1 B)^T over P^-1, with R the Schur complement; inf: no data)."""
    e = eliminate_pairs(design, row_weights, ridge)
    out = np.full((design.n_met, 2), np.inf)
    U = np.zeros((len(e.used), 2 * design.n_met))
    own = np.ones((design.n_met, 2))
    for i, pair in enumerate(e.pairs):
        if pair is not None:
            pos, P_inv, B, _, _ = pair
            U[pos, 2 * i : 2 * i + 2] = (P_inv @ B).T
            own[i] = np.diag(P_inv)
    try:
        W = linalg.solve_triangular(linalg.cholesky(e.reduced, lower=True), U, lower=True)
        extra = np.sum(W**2, axis=0)
    except linalg.LinAlgError:
        extra = np.einsum("ij,ij->j", U, linalg.lstsq(e.reduced, U)[0])
    ok = np.array([p is not None for p in e.pairs], bool)
    out[ok] = 1.0 + extra.reshape(-1, 2)[ok] / own[ok]
    return out
