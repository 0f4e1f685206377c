"""The Jacobian of the corrected frozen model's reaction term in the concentrations, from the rates' derivatives
at the substrate pairs.

A rate v_j depends on its substrates' concentrations alone, so d v_j / d c_m is
zero outside the (reaction, substrate) pairs of the network
(:func:`sysid.stage1.shooting.substrate_pairs`: about 500 of the default
regime's 25,600 reaction-metabolite entries). The Jacobian of sum_j S_ij v_j(c)
is then, per state, the pairs' derivatives times a fixed sparse matrix: entry
(i, m) sums S_ij over the pairs (j, m). The output error takes it at every
integration step of every window; as a dense S @ (dv/dc) it took about 0.06 s
a step on the default regime's 288 windows, as the sparse product 0.003 s.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse


class DriftJacobian:
    """sum_j S_ij w_jm for the derivatives w at the substrate pairs (``rxn``, ``met``) of a network with
    stoichiometry ``S`` (M, J): called with w (B, pairs), it gives (B, M, M)."""

    def __init__(self, S: np.ndarray, rxn: np.ndarray, met: np.ndarray):
        self.n_met = S.shape[0]
        columns = sparse.csc_matrix(S)
        counts = np.diff(columns.indptr)[rxn]  # metabolites each pair's reaction changes
        before = np.cumsum(counts) - counts  # each pair's first place in the list of (pair, metabolite) entries
        entries = np.repeat(columns.indptr[rxn] - before, counts) + np.arange(counts.sum())  # places in S's data
        rows = columns.indices[entries] * self.n_met + np.repeat(met, counts)  # entry (i, m) of the Jacobian
        self.matrix = sparse.csr_matrix((columns.data[entries], (rows, np.repeat(np.arange(len(rxn)), counts))),
                                        shape=(self.n_met * self.n_met, len(rxn)))

    def __call__(self, at_pairs: np.ndarray) -> np.ndarray:
        product = self.matrix @ at_pairs.T  # (M * M, B)
        return np.ascontiguousarray(product.T).reshape(len(at_pairs), self.n_met, self.n_met)
