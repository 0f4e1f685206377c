"""Reaction networks: stoichiometry and the edge lists the learned model uses.

A network is given by two (n_metabolites, n_reactions) matrices: ``S``, the
signed net stoichiometry, and ``substrates``, the substrate coefficients |s|
(an autocatalytic A + B -> 2B has B as a substrate with |s| = 1 and a net +1).
Edge lists (MetabolismGraph layout) are derived from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from sysid.errors import SysidInputError


@dataclass(frozen=True)
class Edges:
    """Edge lists of a network in the MetabolismGraph layout (int64 / float32)."""

    met_sub: np.ndarray
    rxn_sub: np.ndarray
    sto_sub: np.ndarray
    met_all: np.ndarray
    rxn_all: np.ndarray
    sto_all: np.ndarray
    sub_to_all: np.ndarray
    met_prod: np.ndarray
    rxn_prod: np.ndarray
    prod_indices: np.ndarray


@dataclass(frozen=True, eq=False)
class Network:
    S: np.ndarray
    substrates: np.ndarray

    def __post_init__(self) -> None:
        if self.S.ndim != 2 or self.S.shape != self.substrates.shape:
            raise SysidInputError(
                f"stoichiometry has shape {self.S.shape} and substrates {self.substrates.shape}: "
                "both must be (n_metabolites, n_reactions)"
            )
        if np.any(self.substrates < 0):
            raise SysidInputError("substrate coefficients must be >= 0: store |s| of each substrate")

    @property
    def n_metabolites(self) -> int:
        return self.S.shape[0]

    @property
    def n_reactions(self) -> int:
        return self.S.shape[1]

    @cached_property
    def edges(self) -> Edges:
        return _edges(self.S, self.substrates)

    def left_null_space(self, tol: float = 1e-9) -> np.ndarray:
        """Rows L with L @ S = 0 (conservation laws), orthonormal."""
        u, s, _ = np.linalg.svd(self.S.astype(np.float64), full_matrices=True)
        rank = int(np.sum(s > tol * max(1.0, s.max(initial=0.0))))
        return u[:, rank:].T

    @classmethod
    def from_edges(cls, n_metabolites: int, n_reactions: int, sub, all_, *, source: str = "edge lists") -> Network:
        """Build from MetabolismGraph edge triples (met, rxn, coefficient); ``source`` names them in errors."""
        S = np.zeros((n_metabolites, n_reactions), np.float32)
        substrates = np.zeros_like(S)
        met, rxn, sto = _edge_triple(all_, "all", n_metabolites, n_reactions, source)
        S[met, rxn] = sto
        met, rxn, sto = _edge_triple(sub, "sub", n_metabolites, n_reactions, source)
        substrates[met, rxn] = np.abs(sto)
        return cls(S=S, substrates=substrates)


def _edge_triple(triple, name: str, n_met: int, n_rxn: int, source: str):
    """Check one (met, rxn, coefficient) triple: three 1-D arrays of one length, indices in range."""
    fix = "rebuild it from the network's stoichiometry"
    try:
        met, rxn, sto = (np.asarray(t) for t in triple)
    except (TypeError, ValueError):
        raise SysidInputError(f"{source}: '{name}' edges must be a triple (met, rxn, coefficient): {fix}") from None
    if not (met.ndim == rxn.ndim == sto.ndim == 1 and len(met) == len(rxn) == len(sto)):
        raise SysidInputError(f"{source}: '{name}' edge arrays have shapes {met.shape}, {rxn.shape}, {sto.shape} "
                              f"but must be 1-D of one length: {fix}")
    if not (np.issubdtype(met.dtype, np.integer) and np.issubdtype(rxn.dtype, np.integer)):
        raise SysidInputError(
            f"{source}: '{name}' edge indices have dtypes {met.dtype}, {rxn.dtype}: store them as int64"
        )
    if not np.all(np.isfinite(sto.astype(np.float64))):
        raise SysidInputError(f"{source}: '{name}' edge coefficients contain NaN or inf: {fix}")
    for idx, size, what in ((met, n_met, "metabolite"), (rxn, n_rxn, "reaction")):
        if len(idx) and (idx.min() < 0 or idx.max() >= size):
            bad = int(idx.max() if idx.max() >= size else idx.min())
            raise SysidInputError(f"{source}: '{name}' edges refer to {what} {bad} but there are {size} {what}s "
                                  "(0-based): the edge lists and the stoichiometry come from different networks")
    return met, rxn, sto


def _edges(S: np.ndarray, substrates: np.ndarray) -> Edges:
    # Column-major order: edges grouped by reaction, metabolites ascending.
    rxn_all, met_all = np.nonzero(S.T)
    rxn_sub, met_sub = np.nonzero(substrates.T)
    all_index = {(m, r): e for e, (m, r) in enumerate(zip(met_all, rxn_all, strict=True))}
    missing = [(m, r) for m, r in zip(met_sub, rxn_sub, strict=True) if (m, r) not in all_index]
    if missing:
        m, r = missing[0]
        raise SysidInputError(
            f"metabolite {m} is a substrate of reaction {r} but its net stoichiometry is 0: "
            "give every substrate a non-zero net coefficient"
        )
    sub_to_all = np.array([all_index[(m, r)] for m, r in zip(met_sub, rxn_sub, strict=True)], np.int64)
    prod_indices = np.nonzero(S.T[rxn_all, met_all] > 0)[0]
    return Edges(
        met_sub=met_sub.astype(np.int64),
        rxn_sub=rxn_sub.astype(np.int64),
        sto_sub=substrates.T[rxn_sub, met_sub].astype(np.float32),
        met_all=met_all.astype(np.int64),
        rxn_all=rxn_all.astype(np.int64),
        sto_all=S.T[rxn_all, met_all].astype(np.float32),
        sub_to_all=sub_to_all,
        met_prod=met_all[prod_indices].astype(np.int64),
        rxn_prod=rxn_all[prod_indices].astype(np.int64),
        prod_indices=prod_indices.astype(np.int64),
    )
