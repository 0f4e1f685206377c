"""Stage 1 on sparse records: the frozen model integrated between samples (single shooting per interval).

When frames are several integration steps apart, no quadrature of the frozen
rates at the samples is accurate enough: the fast reactions move the state
between samples by far more than the weak homeostasis does. Here every
interval of ``span`` recorded samples is one shooting window:

    c(t_{n+span}) - Phi_theta(c(t_n)) = residual,

where Phi_theta integrates the corrected frozen model

    dc/dt = sum_j S_ij (beta_j v_j(c) + alpha_j prod_k c_k^|s_kj|) + s_i c_i + o_i

from the recorded start c(t_n) by ``substeps`` explicit Euler steps per
interval. theta = (s, o, beta, alpha) is fitted by damped Gauss-Newton; the
sensitivities dPhi/dtheta come from the discrete variational equations, run
backwards once per pass:

    dPhi/dtheta = sum_k h G_k dF/dtheta(c_k),   G_k = prod_{m>k} (I + h J_m),

with J the Jacobian of the right-hand side. The Jacobian of the frozen rates
is computed by forward-mode derivatives (``torch.func.jvp``) along a colouring
of the metabolites in which no two substrates of one reaction share a colour,
so a handful of passes give every dv_j/dc_i exactly.

The corrections are those of :mod:`sysid.stage1.design`: per-reaction scale
beta_j, per-reaction mass-action term alpha_j and shared shape corrections
gamma (v_j -> beta_j v_j exp(sum_m gamma_m f_m), features on the knots of the
recorded data; off by default: with them, on the default regime, the
undamped steps diverged and the iterations stalled at a 10x larger residual).
The Jacobian used for the sensitivities leaves out the derivative of the shape
features, which changes the path of the iterations, not their fixed point. Standard errors are the generalised least
squares ones of the joint linearised model: the (slope, offset) block of the
inverse weighted normal matrix, with every nuisance correction counted.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np
import torch
from scipy import linalg

from sysid.config import Stage1Config
from sysid.io.dataset import Dataset
from sysid.model import MetabolismModel
from sysid.stage1.design import mass_action_monomials, shape_features, shape_knots
from sysid.stage1.levenberg import minimise
from sysid.stage1.regression import floored_variance, normal_solve
from sysid.threads import pools_only

log = logging.getLogger(__name__)
MIN_SCALE = 0.05
MAX_LOG_CORRECTION = 5.0
LM_DAMPING = (1e-6, 1e-4, 1e-2, 1.0)  # relative (column-scaled) damping levels above the plain step (the ridge)
# The first iteration starts damped (on the default regime's noise-free sparse records of seeds 3 and 9 the plain
# first step lowered the weighted rms by sending a few metabolites 10-60 concentration units off their readings,
# and the fit never came back)
FIRST_DAMPING = 1e-2
# Iterations stop when one lowers the weighted rms by less than TOLERANCE of it, or after MAX_ITERATIONS. From the
# damped start the noise-free sparse record of seed 9 needed about 15 (its rms still fell 10% an iteration at the
# 6th, with one metabolite in the wrong group and an offset 4% off); on noisy records the rms is flat after 2-3.
TOLERANCE = 1e-3
MAX_ITERATIONS = 25


def substrate_colouring(substrates: np.ndarray) -> np.ndarray:
    """(n_metabolites,) colour per metabolite; two substrates of one reaction never share a colour (greedy)."""
    n_met = substrates.shape[0]
    has = substrates > 0
    colour = -np.ones(n_met, np.int64)
    for i in np.argsort(-has.sum(1), kind="stable"):
        partners = np.nonzero(has[:, has[i]].any(axis=1))[0]
        taken = set(colour[partners[partners != i]].tolist())
        colour[i] = next(c for c in range(n_met) if c not in taken)
    return colour


class ShootingRegression:
    """Per-metabolite slopes and offsets with per-reaction scale corrections, by shooting over intervals.

    ``fit`` sets ``slope_``, ``offset_``, ``slope_se_``, ``offset_se_``, ``cov_`` (per-metabolite 2x2),
    ``reaction_scale_``, ``quadratic_`` (all False: no library check here), ``collinear_`` (none),
    ``rms_``, ``rms_path_`` (the weighted rms after the first weighted fit and each accepted iteration), ``n_rows_``
    and, for the detectability report, ``design_matrix_``, ``row_weights_``,
    ``slope_cols_`` and ``reaction_cols_``.
    """

    def __init__(self, *, substeps: int, span: int = 1, n_iterations: int = MAX_ITERATIONS,
                 ridge: float = Stage1Config.ridge,
                 shape_knots: int = 0, reuse_jacobian: bool = True):
        self.substeps = substeps
        self.shape_knots = shape_knots
        self.reuse_jacobian = reuse_jacobian
        self.span = span
        self.n_iterations = n_iterations
        self.ridge = ridge

    def fit(self, data: Dataset, model: MetabolismModel) -> ShootingRegression:
        """BLAS on one thread (:func:`sysid.threads.pools_only`): on two, its sums rounded otherwise and the slopes
        moved by up to 2% on a noisy sparse record (case (c) of benchmarks/noise_bench.py), in no less time."""
        with pools_only():
            return self._fit(data, model)

    def _fit(self, data: Dataset, model: MetabolismModel) -> ShootingRegression:
        S = data.network.S.astype(np.float64)
        n_met, n_rxn = S.shape
        starts = interval_starts(data.n_frames, self.span, data.experiment_starts)
        conc = data.concentrations.astype(np.float64)
        c0, target = conc[starts], conc[starts + self.span]
        self._model, self._S, self._S32 = model, S, S.astype(np.float32)
        self._colour = substrate_colouring(data.network.substrates)
        self._h = data.delta_t / self.substeps
        self._substrates = data.network.substrates.astype(np.float64)
        self._dv_cache: dict[int, np.ndarray] = {}
        self._cache_for: np.ndarray | None = None
        self._network = data.network
        self._knots = shape_knots(conc, self._rates_and_jacobian(conc, False)[2], data.network, self.shape_knots)
        n_feat = len(self._knots.names)
        theta = np.concatenate([np.zeros(2 * n_met), np.ones(n_rxn), np.zeros(n_rxn + n_feat)])
        end, X, clamped = self._shoot(c0, theta)
        valid = (c0 > 0) & (target > 0) & ~clamped
        weights = np.ones(n_met)
        A, b, rms = self._normal(X, target - end, valid, weights)
        weights = _metabolite_weights(target - end - X @ normal_solve(A, b, self.ridge), valid)
        A, b, rms = self._normal(X, target - end, valid, weights)
        self.rms_path_ = [rms]
        dampings = (self.ridge, *LM_DAMPING)

        def propose(state, damping):  # state: a _Linearised
            return _step(state.theta, normal_solve(state.A, state.b, damping), n_met, n_rxn)

        def accept(trial):
            t_end, t_X, _ = self._shoot(c0, trial)
            A, b, t_rms = self._normal(t_X, target - t_end, valid, weights)
            return _Linearised(trial, t_end, t_X, A, b), t_rms

        def on_step(iteration, new_rms, _damping):
            log.info("stage 1 shooting iteration %d: weighted rms residual %.3g", iteration, new_rms)
            self.rms_path_.append(new_rms)

        (theta, end, X, _, _), _ = minimise(
            _Linearised(theta, end, X, A, b), rms, propose=propose, accept=accept, dampings=dampings,
            trial_cost=lambda trial: _rms(target - self._shoot(c0, trial, sensitivities=False)[0], valid, weights),
            first=dampings.index(FIRST_DAMPING), max_iterations=self.n_iterations, tolerance=TOLERANCE,
            on_step=on_step)
        self._finish(theta, X, target - end, valid, n_met)
        # for the misfit test: each interval's residual (NaN where not used) and observed change
        self.interval_starts_, self.interval_change_ = starts, target - c0
        self.interval_residual_ = np.where(valid, target - end, np.nan)
        return self

    def _shoot(self, c0: np.ndarray, theta: np.ndarray, sensitivities: bool = True):
        """End states of the corrected frozen model from c0, their sensitivities (B, M, P), clamped entries."""
        S, h = self._S, self._h
        n_met = S.shape[0]
        n_rxn = S.shape[1]
        slope, offset = theta[:n_met], theta[n_met : 2 * n_met]
        scale, alpha = theta[2 * n_met : 2 * n_met + n_rxn], theta[2 * n_met + n_rxn : 2 * n_met + 2 * n_rxn]
        gamma = theta[2 * n_met + 2 * n_rxn :]
        if self._cache_for is not c0:  # the cached Jacobians belong to one set of starts
            self._dv_cache, self._cache_for = {}, c0
        x = c0.copy()
        clamped = np.zeros_like(x, bool)
        path = []
        for k in range(self.span * self.substeps):
            v, dv, agg = self._rates_and_jacobian(x, sensitivities, k)
            mono = mass_action_monomials(x, self._substrates)
            feats = self._features(x, agg)
            factor = scale * np.exp(np.minimum(feats @ gamma, MAX_LOG_CORRECTION))
            vs = v * factor
            step = x + h * ((vs + alpha * mono) @ S.T + slope * x + offset)
            clamped |= step < 0
            if not sensitivities:
                x = np.maximum(step, 0.0)
                continue
            dmono = mono[:, :, None] * self._substrates.T[None] / np.maximum(x, 1e-300)[:, None, :]
            # sensitivities in float32: they only build the regression matrix, the residuals stay float64
            jac = self._S32 @ (dv * factor[:, :, None] + alpha[None, :, None] * dmono).astype(np.float32)
            jac[:, np.arange(n_met), np.arange(n_met)] += slope
            path.append((x.astype(np.float32), vs.astype(np.float32), mono.astype(np.float32),
                         feats.astype(np.float32), jac))
            x = np.maximum(step, 0.0)
        if not sensitivities:
            return x, None, clamped
        G = np.broadcast_to(np.eye(n_met, dtype=np.float32), (len(c0), n_met, n_met)).copy()
        X = np.zeros((len(c0), n_met, len(theta)), np.float32)
        for xk, vs, mono, feats, jac in reversed(path):
            h32 = np.float32(self._h)
            X[:, :, :n_met] += h32 * G * xk[:, None, :]
            X[:, :, n_met : 2 * n_met] += h32 * G
            GS = G @ self._S32
            X[:, :, 2 * n_met : 2 * n_met + n_rxn] += h32 * GS * vs[:, None, :]
            X[:, :, 2 * n_met + n_rxn : 2 * n_met + 2 * n_rxn] += h32 * GS * mono[:, None, :]
            X[:, :, 2 * n_met + 2 * n_rxn :] += h32 * GS @ (vs[:, :, None] * feats)
            G = G + h32 * G @ jac
        return x, X.astype(np.float64), clamped

    def _features(self, x: np.ndarray, aggregate: np.ndarray) -> np.ndarray:
        """Shared shape features (B, J, F) of states x, on the knots of the recorded data."""
        return shape_features(x, aggregate, self._network, self.shape_knots, self._knots).values

    def _rates_and_jacobian(self, x: np.ndarray, jacobian: bool = True, substep: int | None = None):
        """Rates at x; the Jacobian of the frozen rates is computed on the first pass with sensitivities and
        reused at the same sub-step afterwards (the states move little between passes; it shapes the steps
        and the standard errors, not the residuals, which always use the exact rates)."""
        if not jacobian or substep is None or not self.reuse_jacobian:
            return rates_and_jacobian(self._model, x, self._colour, jacobian)
        if substep not in self._dv_cache:
            self._dv_cache[substep] = rates_and_jacobian(self._model, x, self._colour)[1]
        v, _, agg = rates_and_jacobian(self._model, x, self._colour, False)
        return v, self._dv_cache[substep], agg

    def _normal(self, X: np.ndarray, residual: np.ndarray, valid: np.ndarray, weights: np.ndarray):
        """Weighted normal equations over the valid (interval, metabolite) rows, and the weighted rms."""
        rows = X[valid]
        w = np.broadcast_to(weights, valid.shape)[valid]
        return rows.T @ (rows * w[:, None]), rows.T @ (w * residual[valid]), _rms(residual, valid, weights)

    def _finish(self, theta, X, residual, valid, n_met):
        self.slope_, self.offset_ = theta[:n_met].copy(), theta[n_met : 2 * n_met].copy()
        self.reaction_scale_ = theta[2 * n_met : 2 * n_met + self._S.shape[1]].copy()
        var = _metabolite_variance(residual, valid)
        rows, w = X[valid], (1.0 / var)[np.nonzero(valid)[1]]
        n_rows, n_par = rows.shape
        info = rows.T @ (rows * w[:, None]) * n_rows / max(n_rows - n_par, 1)
        cov = scaled_pseudo_inverse(info)
        idx = np.arange(n_met)
        pairs = np.stack([idx, idx + n_met], axis=1)  # (slope, offset) columns of each metabolite
        self.cov_ = cov[pairs[:, :, None], pairs[:, None, :]]
        self.joint_cov_ = self.cov_  # the corrections are part of the same fit: already the joint covariance
        self.slope_se_, self.offset_se_ = np.sqrt(self.cov_[:, 0, 0]), np.sqrt(self.cov_[:, 1, 1])
        self.quadratic_ = np.zeros(n_met, bool)
        self.collinear_ = np.zeros(self._S.shape[1], bool)
        self.rms_ = _rms(residual, valid, 1.0 / var)
        self.n_rows_ = n_rows
        self.design_matrix_, self.row_weights_ = rows, w
        self._dv_cache, self._cache_for = {}, None
        self.slope_cols_, self.reaction_cols_ = slice(0, n_met), slice(2 * n_met, 2 * n_met + self._S.shape[1])


def substrate_pairs(model: MetabolismModel) -> tuple[np.ndarray, np.ndarray]:
    """The (reaction, metabolite) pairs of the substrate edges, each once: where dv/dc can be other than zero."""
    pairs = np.unique(np.stack([model.rxn_sub.cpu().numpy(), model.met_sub.cpu().numpy()], axis=1), axis=0)
    return pairs[:, 0], pairs[:, 1]


def rates_and_jacobian(model: MetabolismModel, x: np.ndarray, colour: np.ndarray, jacobian: bool = True):
    """Frozen rates v (B, J), dv/dc (B, J, M) float32 (None without ``jacobian``), and aggregates (B, J), at
    states x (B, M): :func:`rates_and_pair_jacobian` with dv/dc spread to every (reaction, metabolite)."""
    if not jacobian:
        return rates_and_pair_jacobian(model, x, colour, None)
    rxn, met = substrate_pairs(model)
    v, at_pairs, agg = rates_and_pair_jacobian(model, x, colour, (rxn, met))
    dv = np.zeros((len(x), model.n_reactions, model.n_metabolites), np.float32)
    dv[:, rxn, met] = at_pairs
    return v, dv, agg


@torch.no_grad()
def rates_and_pair_jacobian(model: MetabolismModel, x: np.ndarray, colour: np.ndarray,
                            pairs: tuple[np.ndarray, np.ndarray] | None):
    """Frozen rates v (B, J), dv_j/dc_m at the substrate ``pairs`` (reaction j, metabolite m) of
    :func:`substrate_pairs` (B, pairs) float32 (None without ``pairs``: no derivative), and aggregates (B, J),
    at states x (B, M). Each substrate message depends on one concentration: one forward-mode pass through
    MLP_sub gives every message's derivative, then one (cheap, vectorised) pass per colour through the rest."""
    c = torch.as_tensor(x, dtype=model.dtype, device=model.device)

    def rates(msg):
        return model.rates(c, model.rate_features(c, model.combine(msg)))

    at_pairs = None
    if pairs is None:
        msg = model.substrate_messages(c)
    else:
        msg, dmsg = torch.func.jvp(model.substrate_messages, (c,), (torch.ones_like(c),))  # type: ignore[misc]
        met = model.met_sub.cpu().numpy()
        members = np.stack([colour[met] == k for k in range(int(colour.max()) + 1)])  # (colours, edges)
        tangents = dmsg[None] * torch.as_tensor(members, dtype=dmsg.dtype, device=dmsg.device)[:, None]
        per_colour = torch.func.vmap(lambda t: torch.func.jvp(rates, (msg,), (t,))[1])(tangents).float().cpu().numpy()
        rxn_p, met_p = pairs  # a reaction's substrates differ in colour: the pass of m's colour moves only c_m
        at_pairs = per_colour[colour[met_p], :, rxn_p].T
    agg = model.combine(msg)
    v = model.rates(c, model.rate_features(c, agg))
    return v.double().cpu().numpy(), at_pairs, agg.double().cpu().numpy()


def interval_starts(n_frames: int, span: int, experiment_starts=(0,)) -> np.ndarray:
    """First sample of each non-overlapping interval of ``span`` samples inside one experiment."""
    bounds = [*experiment_starts, n_frames + 1]
    return np.concatenate([np.arange(s, e - span, span) for s, e in zip(bounds[:-1], bounds[1:], strict=True)])


def scaled_pseudo_inverse(info: np.ndarray) -> np.ndarray:
    """Pseudo-inverse of a symmetric information matrix, computed on its unit-diagonal scaling. A parameter the
    data do not inform (its diagonal below 1e-12 of the largest: rounding level, where the scaling blows its
    rounding errors up, and overflowed on (c) seed 10) gets an infinite variance, the others the pseudo-inverse
    of their own block."""
    known = np.diag(info) > 1e-12 * max(float(np.max(np.diag(info))), 1e-300)
    if known.all():
        d = np.sqrt(np.diag(info))
        return linalg.pinvh(info / d[:, None] / d[None, :]) / d[:, None] / d[None, :]
    cov = np.diag(np.where(known, 0.0, np.inf))
    if known.any():
        cov[np.ix_(known, known)] = scaled_pseudo_inverse(info[np.ix_(known, known)])
    return cov


def sandwich_covariance(bread: np.ndarray, meat: np.ndarray) -> np.ndarray:
    """B^-1 M B^-1 with :func:`scaled_pseudo_inverse` for B^-1: a parameter the bread does not inform keeps an
    infinite variance (and no covariances)."""
    inverse = scaled_pseudo_inverse(bread)
    known = np.isfinite(np.diag(inverse))
    cov = np.diag(np.where(known, 0.0, np.inf))
    block = inverse[np.ix_(known, known)]
    cov[np.ix_(known, known)] = block @ meat[np.ix_(known, known)] @ block
    return cov


class _Linearised(NamedTuple):
    """The shooting fit linearised at ``theta``: end states, their sensitivities, normal equations A x = b."""

    theta: np.ndarray
    end: np.ndarray
    X: np.ndarray
    A: np.ndarray
    b: np.ndarray


def _step(theta: np.ndarray, delta: np.ndarray, n_met: int, n_rxn: int) -> np.ndarray:
    new = theta + delta
    scale = slice(2 * n_met, 2 * n_met + n_rxn)
    new[scale] = theta[scale] * np.maximum(1.0 + delta[scale], MIN_SCALE)
    return new


def _metabolite_variance(residual: np.ndarray, valid: np.ndarray) -> np.ndarray:
    count = np.maximum(valid.sum(0), 1)
    return floored_variance((np.where(valid, residual, 0.0) ** 2).sum(0) / count)


def _metabolite_weights(residual: np.ndarray, valid: np.ndarray) -> np.ndarray:
    w = 1.0 / _metabolite_variance(residual, valid)
    return w / w.mean()


def _rms(residual: np.ndarray, valid: np.ndarray, weights) -> float:
    w = np.broadcast_to(weights, valid.shape)
    return float(np.sqrt(np.mean((w * residual**2)[valid])))
