"""Which metabolites' homeostasis the data can resolve, and what it is confused with.

For every metabolite: the z-score |slope| / se of its fitted slope, whether it
is identified (as decided by stage 1, see :mod:`sysid.stage1.identifiability`
and :mod:`sysid.stage1.misfit`), and the per-reaction corrections whose design
columns are most collinear with its slope column (absolute cosine over the
regression rows): the frozen-model errors its slope is most easily confused
with. The Cramer-Rao bounds of
:mod:`sysid.stage1.bound`, when computed, are attached by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

Z_GUIDE = 2.0  # drawn in the figure: a slope closer to zero than this many standard errors is not resolved
N_COLLINEAR = 3


@dataclass(frozen=True, eq=False)
class Detectability:
    z_score: np.ndarray  # (n_metabolites,) |slope| / se
    identified: np.ndarray  # (n_metabolites,) bool
    collinear_reactions: np.ndarray  # (n_metabolites, N_COLLINEAR) reaction indices, most collinear first (-1: none)
    collinear_cosine: np.ndarray  # (n_metabolites, N_COLLINEAR) absolute cosine of those columns with the slope's
    crb_slope: np.ndarray | None = None  # Cramer-Rao bound (sd) of each slope, when computed
    crb_offset: np.ndarray | None = None


def z_scores(slope: np.ndarray, slope_se: np.ndarray) -> np.ndarray:
    return np.abs(slope) / np.maximum(slope_se, 1e-300)


def column_cosines(X, columns: slice, others: slice) -> np.ndarray:
    """|cos| between each column of X[:, columns] and each of X[:, others]: (n_columns, n_others)."""
    a, b = X[:, columns], X[:, others]
    if sparse.issparse(X):
        dot = np.asarray((a.T @ b).todense())
        na = np.sqrt(np.asarray(a.multiply(a).sum(0))).ravel()
        nb = np.sqrt(np.asarray(b.multiply(b).sum(0))).ravel()
    else:
        dot = a.T @ b
        na, nb = np.linalg.norm(a, axis=0), np.linalg.norm(b, axis=0)
    return np.abs(dot) / np.maximum(na[:, None] * nb[None, :], 1e-300)


def detectability(slope: np.ndarray, slope_se: np.ndarray, identified: np.ndarray, X, slope_cols: slice,
                  reaction_cols: slice, *, top: int = N_COLLINEAR) -> Detectability:
    """The per-metabolite report from a fitted regression's design matrix X (sparse or dense)."""
    z = z_scores(slope, slope_se)
    cos = column_cosines(X, slope_cols, reaction_cols)
    k = min(top, cos.shape[1])
    order = np.argsort(-cos, axis=1, kind="stable")[:, :k]
    best = np.take_along_axis(cos, order, axis=1)
    order = np.where(best > 0, order, -1)
    pad = ((0, 0), (0, top - k))
    return Detectability(z, identified, np.pad(order, pad, constant_values=-1),
                         np.pad(best, pad))
