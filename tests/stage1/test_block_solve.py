"""Genome-scale stage-1 algebra: the pair-eliminating solve equals the dense solve; variance inflation."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from sysid.stage1 import block_solve, regression
from sysid.stage1.design import Design


def _design(seed: int, n_met: int = 12, n_win: int = 30, n_nuis: int = 9) -> Design:
    """Rows (metabolite, window) metabolite-major: slope, offset and 3 random nuisance columns per metabolite."""
    rng = np.random.default_rng(seed)
    rows_met = np.repeat(np.arange(n_met), n_win)
    rows_win = np.tile(np.arange(n_win), n_met)
    n = len(rows_met)
    blocks = [sparse.csr_matrix((rng.uniform(1, 9, n), (np.arange(n), rows_met)), shape=(n, n_met)),
              sparse.csr_matrix((np.ones(n), (np.arange(n), rows_met)), shape=(n, n_met))]
    nuis = np.zeros((n, n_nuis))
    for i in range(n_met if n_nuis else 0):
        cols = rng.choice(n_nuis, 3, replace=False)
        nuis[np.ix_(rows_met == i, cols)] = rng.normal(size=(n_win, 3))
    X = sparse.hstack([*blocks, sparse.csr_matrix(nuis)], format="csr")
    y = X @ rng.normal(size=X.shape[1]) + 0.01 * rng.normal(size=n)
    return Design(X, y, rows_met, rows_win, n_met, n_nuis, 0)


def test_eliminating_pairs_matches_the_dense_solve():
    for seed in (0, 1, 2):
        design = _design(seed)
        w = np.random.default_rng(seed).uniform(0.5, 2.0, len(design.y))
        dense = regression.solve_normal_equations(design, 1e-10, w)  # small: the dense path
        np.testing.assert_allclose(block_solve.solve_eliminating_pairs(design, w, 1e-10), dense,
                                   rtol=1e-7, atol=1e-9)


def test_inflation_is_one_without_shared_columns_and_large_when_collinear():
    design = _design(3, n_nuis=0)
    inflation = block_solve.pair_inflation(design, np.ones(len(design.y)), 1e-10)[:, 0]
    np.testing.assert_allclose(inflation, 1.0)
    # metabolite 0's only nuisance column copies its own concentration column: its slope is not identifiable
    X = design.X.tolil()
    n0 = np.nonzero(design.rows_met == 0)[0]
    extra = sparse.lil_matrix((X.shape[0], 1))
    extra[n0, 0] = X[n0, 0].toarray() * 1.0001 + 1e-3 * np.random.default_rng(0).normal(size=(len(n0), 1))
    X = sparse.hstack([X, extra], format="csr")
    collinear = Design(X, design.y, design.rows_met, design.rows_win, design.n_met, 1, 0)
    inflation = block_solve.pair_inflation(collinear, np.ones(len(design.y)), 1e-10)[:, 0]
    assert inflation[0] > 1e3
    np.testing.assert_allclose(inflation[1:], 1.0)


def test_pair_inflation_is_the_joint_over_the_own_variance_of_slope_and_offset():
    design = _design(4)
    A = (design.X.T @ design.X).toarray()
    joint = np.diag(np.linalg.inv(A))
    n = design.n_met
    expected = np.zeros((n, 2))
    for i in range(n):
        own = np.diag(np.linalg.inv(A[np.ix_([i, n + i], [i, n + i])]))
        expected[i] = joint[[i, n + i]] / own
    inflation = block_solve.pair_inflation(design, np.ones(len(design.y)), 1e-12)
    np.testing.assert_allclose(inflation, expected, rtol=1e-5)
    assert np.all(inflation > 1.0)
