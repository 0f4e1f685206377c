"""The exact solve of log_k for a fixed MLP_sub: rates are linear in k, so log_k has a MAP solution.

Used by the Phase 1 trainer (:mod:`sysid.phase1.trainer`) at its start, between epochs and at its end.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.csgraph
import torch

from sysid.model import MetabolismModel

LN10 = float(np.log(10.0))
COLLINEAR_TOL = 1e-9  # regressor columns with |cosine| > 1 - COLLINEAR_TOL count as collinear
NEWTON_ITERATIONS = 200
NEWTON_TOL = 1e-7  # decades: the MAP solve stops when no log_k moves more than this
MAX_DROP = 10.0  # one Newton step lowers no rate constant by more than this factor


@torch.no_grad()
def rate_design(model: MetabolismModel, c: torch.Tensor, y: torch.Tensor, scale: torch.Tensor):
    """Normal equations of dc/dt = S diag(k) phi(c) in k, for the current MLP_sub (float64 numpy).

    With W = diag(1/scale**2) and n = frames * metabolites, the normalised loss
    mean(((S diag(k) phi_t - y_t) / scale)**2) equals k'Gk - 2b'k + mean((y/scale)**2), where
    G = (Phi'Phi) o (S'WS) / n is the Gram matrix of the regressor columns S_j phi_j(c)
    and b = sum_t phi_t o (S'W y_t) / n. Returns (G, b).
    """
    phi = model.rate_features(c).double()
    S = torch.as_tensor(model.network().S, dtype=torch.float64, device=c.device)
    w = scale.double().pow(-2)
    n = y.numel()
    gram = (phi.T @ phi) * (S.T @ (w[:, None] * S)) / n
    rhs = (phi * ((y.double() * w) @ S)).sum(0) / n
    return gram.cpu().numpy(), rhs.cpu().numpy()


def unidentifiable_families(gram: np.ndarray, tol: float = COLLINEAR_TOL) -> list[np.ndarray]:
    """Groups of reactions whose regressor columns are (anti)collinear: only a combination of their k is in the data.

    Two columns are collinear when their |cosine| (from the Gram matrix) exceeds
    1 - tol; families are the connected groups of two or more. Example: A+B->2B and
    B+A->2A have columns phi(c) (e_B - e_A) and -phi(c) (e_B - e_A): only k1 - k2 shows.
    """
    d = np.sqrt(np.clip(np.diag(gram), 0.0, None))
    live = d > 0
    cos = np.zeros_like(gram)
    cos[np.ix_(live, live)] = gram[np.ix_(live, live)] / np.outer(d[live], d[live])
    linked = np.abs(cos) > 1.0 - tol
    np.fill_diagonal(linked, False)
    _, label = scipy.sparse.csgraph.connected_components(scipy.sparse.csr_matrix(linked), directed=False)
    groups = [np.flatnonzero(label == g) for g in np.unique(label)]
    return [g for g in groups if len(g) > 1]


def map_log_k(gram: np.ndarray, rhs: np.ndarray, u0: np.ndarray, offset: np.ndarray, prior: float) -> np.ndarray:
    """argmin_u k'Gk - 2b'k + prior * var(u + offset), k = 10**u: the data fit plus a spread prior on log10 k.

    The prior's centre is the mean of (u + offset) itself, so it is set by the data;
    with a small ``prior`` it only decides the directions the data leaves free (the
    families of :func:`unidentifiable_families`, reactions that never fire) and keeps
    every k positive. Damped Newton in k (where the data term is quadratic and its
    flat directions are straight lines), each k kept above 1/MAX_DROP of its value.
    """
    n = len(u0)
    rho = prior / n

    def objective(k):
        m = np.log10(k) + offset
        m = m - m.mean()
        return k @ gram @ k - 2.0 * rhs @ k + rho * m @ m

    k = 10.0 ** np.asarray(u0, np.float64)
    f, damping = objective(k), 0.0
    for _ in range(NEWTON_ITERATIONS):
        step = _newton_step(gram, rhs, k, offset, rho, damping)
        trial = objective(k + step)
        if not trial <= f:  # no descent: damp more and retry
            damping = max(10.0 * damping, 1e-12)
            if damping > 1e8:
                break
            continue
        k, f = k + step, trial
        damping /= 10.0
        if np.abs(np.log10(1.0 + step / (k - step))).max() < NEWTON_TOL:
            break
    return np.log10(k)


def _newton_step(gram, rhs, k, offset, rho, damping: float) -> np.ndarray:
    """Newton step in k (the prior's negative curvature dropped, Levenberg damping); k stays above k / MAX_DROP."""
    n = len(k)
    m = np.log10(k) + offset
    m = m - m.mean()
    jac = 1.0 / (k * LN10)  # du/dk
    grad = 2.0 * (gram @ k - rhs) + 2.0 * rho * m * jac
    prior_hess = 2.0 * rho * np.outer(jac, jac) * (np.eye(n) - 1.0 / n)
    hess = 2.0 * gram + prior_hess + np.diag(np.maximum(-2.0 * rho * m * jac / k, 0.0))
    scale = np.abs(np.diag(hess)).mean()
    while True:
        try:
            chol = np.linalg.cholesky(hess + (damping + 1e-13) * scale * np.eye(n))
            break
        except np.linalg.LinAlgError:
            damping = max(10.0 * damping, 1e-10)
    step = -scipy.linalg.cho_solve((chol, True), grad)
    shrink = np.min(np.where(step < 0, (1.0 - 1.0 / MAX_DROP) * k / np.maximum(-step, 1e-300), 1.0))
    return step * min(shrink, 1.0)


@torch.no_grad()
def solve_log_k(model: MetabolismModel, c: torch.Tensor, y: torch.Tensor, scale: torch.Tensor, prior: float) -> None:
    """Set log_k to the MAP rate constants (:func:`map_log_k`) for the current MLP_sub.

    The prior acts on the metric's corrected log_k (log_k + n_sub * log10 |MLP_sub([1, 1])|),
    so reactions with different numbers of substrates share one centre.
    """
    gram, rhs = rate_design(model, c, y, scale)
    offset = model.log_k_offset()
    u = map_log_k(gram, rhs, model.log_k.detach().cpu().double().numpy(), offset, prior)
    model.log_k.copy_(torch.as_tensor(u, dtype=torch.float32))


@torch.no_grad()
def initial_log_k(model: MetabolismModel, c: torch.Tensor, y: torch.Tensor, scale: torch.Tensor) -> None:
    """A common start for the MAP solve: the one k that best fits the data when all rate constants are equal."""
    gram, rhs = rate_design(model, c, y, scale)
    offset = model.log_k_offset()
    shape = 10.0 ** -offset  # equal corrected log_k
    k = max(float(rhs @ shape) / max(float(shape @ gram @ shape), 1e-300), 1e-30)
    model.log_k.copy_(torch.as_tensor(np.log10(k * shape), dtype=torch.float32))
