"""Correction of stage 1's group curves by the conserved-space identity of the rollouts.

Each stage-1 group g has a curve h_g(c) = sum_k beta_gk F_gk(c): a line (F = c, 1)
or its chosen nonlinear form with the shape held fixed. Along a conservation
law L (L @ S = 0) the reactions cancel for any state, so an Euler rollout from
an observed state c(t0) satisfies exactly (away from clamps)

    L c_hat(t0 + k) = L c(t0) + dt * sum_{j<k} sum_i L_i h_g(i)(c_hat_i(t0 + j)).

The frozen reaction model enters only through the rolled-out states c_hat at
which h is evaluated, and those drift away from the data as the frozen model's
errors accumulate, which biases the fitted h. Evaluating h at the observed
states instead (teacher forcing) removes the reaction model entirely, and the
rollout residual becomes linear in the coefficients beta: one weighted
least-squares solve moves all of them at once, however badly scaled. A 10%
slope error and the offset that compensates it along the data are told apart
in one solve, where Adam on the rollout loss mostly moves the easy direction
(the offsets). The solve is a Gauss-Newton step that is exact because the
problem is linear; it is kept only if the residual goes down.

With few conservation laws the rows see only some combinations of the
coefficients (one law sees one weighted sum over all metabolites: the split of
the offsets between groups is invisible). A Gaussian prior centred on stage 1
with stage 1's standard errors pins those directions. The rows are weighted by
the inverse of their noise variance, estimated as what the best unregularised
solve leaves over (not the start's residual, which a biased start inflates), so
the data overrule the prior wherever they carry information, and only there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
import torch

from sysid.model import MetabolismModel
from sysid.stage1.forms import GroupCurve, features
from sysid.stage1.result import HomeostasisFit

log = logging.getLogger(__name__)
STEP_SIZES = (1.0, 0.5, 0.25)  # the problem is linear: the full step is exact unless the prior fights the rows
CURVE_PRIOR_SD = 1.0  # relative prior sd of a nonlinear form's coefficients (stage 1 gives no errors for them)


@dataclass(frozen=True)
class GroupBasis:
    """Per group: the features F_g (a line, or a stage-1 curve with its shape fixed) and the coefficients."""

    curves: tuple[GroupCurve | None, ...]  # None: the line slope * c + offset
    beta: tuple[np.ndarray, ...]
    prior_sd: tuple[np.ndarray, ...]

    def feats(self, g: int, c: np.ndarray) -> np.ndarray:
        curve = self.curves[g]
        if curve is None:
            return np.stack([c, np.ones_like(c)], axis=-1)
        return features(curve.form, curve.shape, curve.centre, c)

    @classmethod
    def from_fit(cls, fit: HomeostasisFit) -> GroupBasis:
        slopes, offsets = fit.group_means()
        curves: list[GroupCurve | None] = []
        beta, sd = [], []
        for g in range(fit.n_groups):
            m = fit.groups == g
            if fit.is_curved(g):
                coef = np.asarray(fit.curve(g).coef)
                curves.append(fit.curve(g))
                beta.append(coef)
                sd.append(CURVE_PRIOR_SD * np.maximum(np.abs(coef), 1e-12))
            else:
                curves.append(None)
                beta.append(np.array([slopes[g], offsets[g]]))
                sd.append(np.array([_pooled_se(fit.slope_se[m]), _pooled_se(fit.offset_se[m])]))
        return cls(tuple(curves), tuple(beta), tuple(sd))

    def to_fit(self, fit: HomeostasisFit) -> HomeostasisFit:
        """``fit`` with these coefficients: lines as every member's slope and offset, curves replaced."""
        slope, offset = fit.slope.copy(), fit.offset.copy()
        curves: list[GroupCurve] = list(fit.curves or ())
        for g, (curve, beta) in enumerate(zip(self.curves, self.beta, strict=True)):
            if curve is None:
                slope[fit.groups == g], offset[fit.groups == g] = beta
            else:
                curves[g] = replace(curve, coef=tuple(float(b) for b in beta))
        return replace(fit, slope=slope, offset=offset, curves=tuple(curves) if fit.curves is not None else None)


def _pooled_se(se: np.ndarray) -> float:
    se = se[np.isfinite(se) & (se > 0)]
    return float(1.0 / np.sqrt(np.sum(1.0 / se**2))) if len(se) else np.inf


def _h(basis: GroupBasis, groups: np.ndarray, c: np.ndarray) -> np.ndarray:
    out = np.zeros_like(c)
    for g, beta in enumerate(basis.beta):
        m = groups == g
        out[..., m] = basis.feats(g, c[..., m]) @ beta
    return out


def _conserved_rows(basis, groups, conc, starts, horizon, dt, projection):
    """Residual of the conserved-space identity over each window, and its Jacobian in the coefficients.

    r_k = L c(t0 + k) - L c(t0) - dt sum_{j<k} L h(c(t0 + j)) at the observed states; windows in which a
    concentration touches 0 (where the clamp breaks the identity) are left out.
    """
    frames = starts[:, None] + np.arange(horizon + 1)
    observed = conc[frames]  # (B, H+1, n)
    keep = ~np.any(observed == 0, axis=(1, 2))
    observed = observed[keep]
    drift = (observed[:, 1:] - observed[:, :1]) @ projection  # (B, H, r)
    blocks = []
    for g in range(len(basis.beta)):
        m = groups == g
        f = basis.feats(g, observed[:, :-1][..., m])  # (B, H, n_g, p)
        blocks.append(dt * np.cumsum(np.einsum("bhnp,nr->bhrp", f, projection[m]), axis=1))
    jac = np.concatenate(blocks, axis=-1)
    predicted = jac @ np.concatenate(basis.beta)
    return (predicted - drift).reshape(-1), jac.reshape(-1, jac.shape[-1])


def _noise_floor(residual: np.ndarray, jac: np.ndarray) -> float:
    """Mean square of the rollout residual left by the best linearised step without the prior (the part no
    coefficient explains): the rows' noise variance, free of the start's own error."""
    scale = np.maximum(np.linalg.norm(jac, axis=0), 1e-300)
    step = np.linalg.lstsq(jac / scale, -residual, rcond=None)[0]
    return max(float(np.mean((residual + (jac / scale) @ step) ** 2)), 1e-300)


def correct_group_curves(fit: HomeostasisFit, concentrations: np.ndarray,
                         starts: np.ndarray, horizon: int, delta_t: float, projection: np.ndarray,
                         n_steps: int) -> tuple[HomeostasisFit, list[float]]:
    """Stage 1's group curves after ``n_steps`` prior-weighted Gauss-Newton steps; the rollout losses."""
    basis = GroupBasis.from_fit(fit)
    conc = np.asarray(concentrations, np.float64)
    sizes = [len(b) for b in basis.beta]
    beta0, sd = np.concatenate(basis.beta), np.concatenate(basis.prior_sd)
    precision = 1.0 / np.maximum(sd, 1e-300) ** 2

    def split(beta):
        return replace(basis, beta=tuple(np.split(beta, np.cumsum(sizes)[:-1])))

    beta = beta0.copy()
    residual, jac = _conserved_rows(basis, fit.groups, conc, starts, horizon, delta_t, projection)
    history = [float(np.mean(residual**2))]
    for _ in range(n_steps):
        w = 1.0 / (_noise_floor(residual, jac) * horizon)  # rows of one rollout are cumulative: ~1 per window
        gram = w * jac.T @ jac + np.diag(precision)
        delta = np.linalg.solve(gram, -(w * jac.T @ residual) - precision * (beta - beta0))
        for size in STEP_SIZES:
            trial_res, trial_jac = _conserved_rows(split(beta + size * delta), fit.groups, conc, starts, horizon,
                                                   delta_t, projection)
            if np.mean(trial_res**2) < history[-1]:
                beta, residual, jac = beta + size * delta, trial_res, trial_jac
                history.append(float(np.mean(residual**2)))
                break
        else:
            break
    log.info("refine: stage 1's group curves corrected by the conserved identity, residual %s",
             " -> ".join(f"{v:.4g}" for v in history))
    return split(beta).to_fit(fit), history


@torch.no_grad()
def conserved_identity_loss(model: MetabolismModel, concentrations: np.ndarray, starts: np.ndarray, horizon: int,
                            delta_t: float, projection: np.ndarray) -> float:
    """Mean square of the conserved-space identity with MLP_node at the observed states (windows from
    ``starts``, those touching 0 left out): the rollout error along the conservation laws without the drift
    of the frozen model's states."""
    conc = np.asarray(concentrations, np.float64)
    frames = np.asarray(starts)[:, None] + np.arange(horizon + 1)
    observed = conc[frames]
    observed = observed[~np.any(observed == 0, axis=(1, 2))]
    h = model.node(torch.as_tensor(observed[:, :-1], dtype=model.dtype, device=model.device)).cpu().double().numpy()
    predicted = delta_t * np.cumsum(h @ projection, axis=1)
    drift = (observed[:, 1:] - observed[:, :1]) @ projection
    return float(np.mean((predicted - drift) ** 2))
