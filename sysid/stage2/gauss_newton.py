"""Correction of stage 1's group curves by the conserved-space identity of the rollouts.

Each stage-1 group g has a curve h_g(c) = sum_k beta_gk F_gk(c; theta_g): a line
(F = c, 1) or its chosen nonlinear form with shape theta_g. Along a conservation
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
(the offsets). For lines and polynomials the Gauss-Newton step is exact
(the problem is linear); a curve's shape enters nonlinearly and takes a few
steps. A step is kept only if the residual goes down (halved up to twice).

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
from sysid.stage1.forms import N_SHAPE, GroupCurve, features, free_to_shape, shape_to_free, shaped_feature_grad
from sysid.stage1.result import HomeostasisFit

log = logging.getLogger(__name__)
STEP_SIZES = (1.0, 0.5, 0.25)  # linear in the coefficients: the full step is exact unless the prior or a shape fights
CURVE_PRIOR_SD = 1.0  # relative prior sd of a nonlinear form's coefficients (stage 1 gives no errors for them)
SHAPE_PRIOR_SD = 1.0  # prior sd of a shape's log K and log n, and of c0 in units of the group's range


@dataclass(frozen=True)
class GroupBasis:
    """Per group: the features F_g (a line, or a stage-1 curve) and its free parameters.

    A group's parameters are its coefficients ``beta`` followed, for a shaped form (saturating, rational),
    by its shape in free coordinates ``theta`` (log K, c0 or log n): the shape is corrected with the
    coefficients, since a shape that stage 1 got slightly wrong is otherwise paid for by every coefficient
    the conservation laws see, other groups' included."""

    curves: tuple[GroupCurve | None, ...]  # None: the line slope * c + offset
    beta: tuple[np.ndarray, ...]
    theta: tuple[np.ndarray, ...]  # empty for lines and polynomials
    prior_sd: tuple[np.ndarray, ...]  # of (beta, theta) per group

    def shape(self, g: int) -> tuple[float, ...]:
        curve = self.curves[g]
        return () if curve is None or len(self.theta[g]) == 0 else free_to_shape(curve.form, self.theta[g])

    def feats(self, g: int, c: np.ndarray) -> np.ndarray:
        curve = self.curves[g]
        if curve is None:
            return np.stack([c, np.ones_like(c)], axis=-1)
        return features(curve.form, self.shape(g), curve.centre, c)

    def shape_jac(self, g: int, c: np.ndarray) -> np.ndarray:
        """d h_g / d theta_g at c: (*c.shape, len(theta_g)) (the shaped feature is the last column)."""
        curve = self.curves[g]
        if curve is None or len(self.theta[g]) == 0:
            return np.zeros((*c.shape, 0))
        return self.beta[g][-1] * shaped_feature_grad(curve.form, self.shape(g), c)

    def params(self) -> np.ndarray:
        return np.concatenate([np.concatenate([b, t]) for b, t in zip(self.beta, self.theta, strict=True)])

    def with_params(self, x: np.ndarray) -> GroupBasis:
        beta, theta, at = [], [], 0
        for b, t in zip(self.beta, self.theta, strict=True):
            beta.append(x[at:at + len(b)])
            theta.append(x[at + len(b):at + len(b) + len(t)])
            at += len(b) + len(t)
        return replace(self, beta=tuple(beta), theta=tuple(theta))

    @classmethod
    def from_fit(cls, fit: HomeostasisFit) -> GroupBasis:
        slopes, offsets = fit.group_means()
        curves: list[GroupCurve | None] = []
        beta, theta, sd = [], [], []
        for g in range(fit.n_groups):
            m = fit.groups == g
            if fit.is_curved(g):
                curve = fit.curve(g)
                coef = np.asarray(curve.coef)
                free = shape_to_free(curve.form, curve.shape) if curve.form in N_SHAPE else np.zeros(0)
                curves.append(curve)
                beta.append(coef)
                theta.append(free)
                sd.append(np.concatenate([CURVE_PRIOR_SD * np.maximum(np.abs(coef), 1e-12),
                                          _shape_prior_sd(curve)[:len(free)]]))
            else:
                curves.append(None)
                beta.append(np.array([slopes[g], offsets[g]]))
                theta.append(np.zeros(0))
                sd.append(np.array([_pooled_se(fit.slope_se[m]), _pooled_se(fit.offset_se[m])]))
        return cls(tuple(curves), tuple(beta), tuple(theta), tuple(sd))

    def to_fit(self, fit: HomeostasisFit) -> HomeostasisFit:
        """``fit`` with these parameters: lines as every member's slope and offset, curves replaced."""
        slope, offset = fit.slope.copy(), fit.offset.copy()
        curves: list[GroupCurve] = list(fit.curves or ())
        for g, (curve, beta) in enumerate(zip(self.curves, self.beta, strict=True)):
            if curve is None:
                slope[fit.groups == g], offset[fit.groups == g] = beta
            else:
                curves[g] = replace(curve, coef=tuple(float(b) for b in beta),
                                    shape=self.shape(g) if len(self.theta[g]) else curve.shape)
        return replace(fit, slope=slope, offset=offset, curves=tuple(curves) if fit.curves is not None else None)


def _shape_prior_sd(curve: GroupCurve) -> np.ndarray:
    """Prior sd of a shape's free coordinates: a factor e on K and n, the group's range on c0."""
    if curve.form == "saturating":
        return np.array([SHAPE_PRIOR_SD, SHAPE_PRIOR_SD * max(curve.hi - curve.lo, 1e-9)])
    return np.array([SHAPE_PRIOR_SD, SHAPE_PRIOR_SD])


def _pooled_se(se: np.ndarray) -> float:
    se = se[np.isfinite(se) & (se > 0)]
    return float(1.0 / np.sqrt(np.sum(1.0 / se**2))) if len(se) else np.inf


def _observed_windows(concentrations: np.ndarray, starts: np.ndarray, horizon: int, projection: np.ndarray):
    """Observed states of each window (B, H+1, n), windows in which a concentration touches 0 left out (the
    clamp breaks the identity there), and their drift along the conservation laws L c(t0 + k) - L c(t0)
    (B, H, r)."""
    frames = np.asarray(starts)[:, None] + np.arange(horizon + 1)
    observed = np.asarray(concentrations, np.float64)[frames]
    observed = observed[~np.any(observed == 0, axis=(1, 2))]
    return observed, (observed[:, 1:] - observed[:, :1]) @ projection


def _conserved_rows(basis: GroupBasis, groups, observed, drift, dt, projection):
    """Residual of the conserved-space identity over each window, and its Jacobian in the parameters.

    r_k = L c(t0 + k) - L c(t0) - dt sum_{j<k} L h(c(t0 + j)) at the observed states of
    :func:`_observed_windows`. The columns are each group's coefficients, then its shape's free coordinates
    (``GroupBasis.params`` order).
    """
    def integrated(per_state: np.ndarray, m: np.ndarray) -> np.ndarray:
        return dt * np.cumsum(np.einsum("bhnp,nr->bhrp", per_state, projection[m]), axis=1)

    predicted = np.zeros_like(drift)
    blocks = []
    for g in range(len(basis.beta)):
        m = groups == g
        c = observed[:, :-1][..., m]
        f = integrated(basis.feats(g, c), m)
        predicted += f @ basis.beta[g]
        blocks += [f, integrated(basis.shape_jac(g, c), m)]
    jac = np.concatenate(blocks, axis=-1)
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
    observed, drift = _observed_windows(concentrations, starts, horizon, projection)  # the same for every step
    x0 = basis.params()
    precision = 1.0 / np.maximum(np.concatenate(basis.prior_sd), 1e-300) ** 2
    x = x0.copy()
    residual, jac = _conserved_rows(basis, fit.groups, observed, drift, delta_t, projection)
    history = [float(np.mean(residual**2))]
    for _ in range(n_steps):
        w = 1.0 / (_noise_floor(residual, jac) * horizon)  # rows of one rollout are cumulative: ~1 per window
        gram = w * jac.T @ jac + np.diag(precision)
        delta = np.linalg.solve(gram, -(w * jac.T @ residual) - precision * (x - x0))
        for size in STEP_SIZES:
            trial_res, trial_jac = _conserved_rows(basis.with_params(x + size * delta), fit.groups, observed, drift,
                                                   delta_t, projection)
            if np.mean(trial_res**2) < history[-1]:
                x, residual, jac = x + size * delta, trial_res, trial_jac
                history.append(float(np.mean(residual**2)))
                break
        else:
            break
    log.info("refine: stage 1's group curves corrected by the conserved identity, residual %s",
             " -> ".join(f"{v:.4g}" for v in history))
    return basis.with_params(x).to_fit(fit), history


@torch.no_grad()
def conserved_identity_loss(model: MetabolismModel, concentrations: np.ndarray, starts: np.ndarray, horizon: int,
                            delta_t: float, projection: np.ndarray) -> float:
    """Mean square of the conserved-space identity with MLP_node at the observed states (windows from
    ``starts``, those touching 0 left out): the rollout error along the conservation laws without the drift
    of the frozen model's states."""
    observed, drift = _observed_windows(concentrations, starts, horizon, projection)
    h = model.node(torch.as_tensor(observed[:, :-1], dtype=model.dtype, device=model.device)).cpu().double().numpy()
    predicted = delta_t * np.cumsum(h @ projection, axis=1)
    return float(np.mean((predicted - drift) ** 2))
