"""Output-error stage 1 for noisy records: multiple shooting over windows, the starts fitted with the rest.

The equation-error regression of :mod:`sysid.stage1.regression` evaluates the
frozen model at the recorded, noisy concentrations. The fast reactions' Jacobian
multiplies that noise many times over, so the regression's errors are several
times the Cramer-Rao bound of :mod:`sysid.stage1.bound`. Here the model is
simulated instead and compared with the record, as the bound's data model says:

    y_i(t_k) = c_i(t_k; theta, x_w) + e_ik,

with c the corrected frozen model (dc/dt = sum_j S_ij beta_j v_j(c) + s_i c_i + o_i,
optionally with v_j(c) exp(sum_f gamma_f phi_jf(c)), stage 1's shared MLP_sub shape
corrections, Euler with ``substeps`` per recorded interval, each step clamped at zero), one
unknown start x_w per window of ``window`` recorded samples (windows short
enough to stay linear on a chaotic system), and theta = (s, o, beta[, gamma]). Each
metabolite's residuals are weighted by its own noise variance, estimated from
the record (the rough part a local cubic leaves). A reading cut at zero says
only that the true reading was at most zero: it enters by that probability (a
censored likelihood), since leaving such readings out would keep only the
positive noise of a metabolite near zero and bias its offset upwards.

theta and the starts are fitted by Levenberg-Marquardt from stage 1's
equation-error estimates: per pass, each window's sensitivities are propagated
forward through the discrete variational equations, its start is eliminated by
its Schur complement, and the reduced system gives the step of theta (the
starts follow by back-substitution). The covariance of theta is the sandwich
of the profiled estimating equations, summed in float64: for readings with
the weighted noise at the optimum it is the Cramer-Rao bound of the fitted
model; it stays right where a metabolite's readings are further off than its
weight says.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from scipy import linalg
from threadpoolctl import threadpool_limits

from sysid.io.dataset import Dataset
from sysid.model import MetabolismModel
from sysid.stage1.drift_jacobian import DriftJacobian
from sysid.stage1.information import SandwichInformation, StepInformation, eliminate, profiled_meat
from sysid.stage1.levenberg import minimise
from sysid.stage1.readings import (
    Observation,
    fitted_noise,
    metabolite_rms,
    relative_fits_better,
    weighed_residuals,
)
from sysid.stage1.regression import MAX_LOG_CORRECTION
from sysid.stage1.shape_basis import ShapeBasis
from sysid.stage1.shooting import (
    MIN_SCALE,
    rates_and_pair_jacobian,
    sandwich_covariance,
    substrate_colouring,
    substrate_pairs,
)
from sysid.stage1.windows import output_error_starts

log = logging.getLogger(__name__)
DAMPING = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)  # Levenberg-Marquardt damping, relative to the diagonal
TOLERANCE = 5e-3  # relative decrease of the weighted cost below which a window length's passes stop
PASSES = 20  # at most this many passes per window length (the first, from stage 1's answer, took 14 on (c) seed 4)
# prior sd of each shape correction gamma_f (a log factor per unit of a hat feature): without it, hats over ranges
# the windows barely visit ran to 1e5 on (d) seed 12 and the longer windows diverged. Not calibrated over seeds.
SHAPE_PRIOR_SD = 1.0


@dataclass(frozen=True, eq=False)
class Corrected:
    """Parameters of the corrected frozen model: per-metabolite slope and offset, per-reaction scale, and, with a
    ``basis``, the shared shape corrections gamma (none by default)."""

    slope: np.ndarray
    offset: np.ndarray
    scale: np.ndarray
    shape: np.ndarray = field(default_factory=lambda: np.zeros(0))
    basis: ShapeBasis | None = None

    def vector(self) -> np.ndarray:
        return np.concatenate([self.slope, self.offset, self.scale, self.shape])

    def stepped(self, delta: np.ndarray) -> Corrected:
        """One step in (slope, offset, log scale, shape) to first order: the scales stay positive."""
        n, j = len(self.slope), len(self.scale)
        return replace(self, slope=self.slope + delta[:n], offset=self.offset + delta[n : 2 * n],
                       scale=self.scale * np.maximum(1.0 + delta[2 * n : 2 * n + j], MIN_SCALE),
                       shape=self.shape + delta[2 * n + j :])

    def penalty(self) -> float:
        """The shape corrections' Gaussian prior, on the scale of the objective (-2 log density)."""
        return float(np.sum(self.shape**2)) / SHAPE_PRIOR_SD**2

    def with_shape(self, basis: ShapeBasis) -> Corrected:
        """These parameters with shape corrections on ``basis``, all zero (the frozen model's shape as it is)."""
        return replace(self, shape=np.zeros(basis.n), basis=basis)

    def factor(self, x: np.ndarray, aggregate: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Each reaction's correction of its frozen rate at states x: scale, times exp(phi gamma) with a basis
        ((J,) without one, else (B, J)); and the features phi (B, J, F) (None without a basis)."""
        if self.basis is None:
            return self.scale, None
        phi = self.basis(x, aggregate)
        return self.scale * np.exp(np.minimum(phi @ self.shape, MAX_LOG_CORRECTION)), phi


def window_sensitivities(model: MetabolismModel, starts: np.ndarray, params: Corrected, *, window: int,
                         substeps: int, delta_t: float, sensitivities: bool = True, free: str = "all"
                         ) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
    """Simulate the corrected frozen model from each window's start x (B, M) over ``window`` recorded samples.

    Yields (k, state (B, M), d state / d (slope, offset, scale, shape, start) (B, M, 2M + J + F + M) or None) at
    every recorded sample k = 0..window-1 of the windows; with ``free`` ``scales``, d state / d (scale, shape,
    start) (B, M, J + F + M), and with ``starts``, d state / d start (B, M, M) alone (the columns of parameters
    held fixed are not propagated). A state clamped at zero by a step has zero sensitivity. The shape factor's
    derivative in c is that through the substrates' log concentrations (:meth:`ShapeBasis.log_factor_slopes`)."""
    S = model.network().S.astype(np.float64)
    n_met, n_rxn = S.shape
    first = carried_from(free, n_met, len(params.vector()))
    n_par = len(params.vector()) - first
    colour = substrate_colouring(model.network().substrates)
    pairs = substrate_pairs(model)
    drift = DriftJacobian(S, *pairs)
    h = delta_t / substeps
    x = np.array(starts, np.float64)
    sens = None
    if sensitivities:
        sens = np.zeros((len(x), n_met, n_par + n_met))
        sens[:, :, n_par:] = np.eye(n_met)
    diag = np.arange(n_met)
    yield 0, x, sens
    for step in range((window - 1) * substeps):
        v, dv, aggregate = rates_and_pair_jacobian(model, x, colour, pairs if sensitivities else None)
        factor, phi = params.factor(x, aggregate)
        vs = v * factor
        if sens is not None:  # the corrected rates' derivatives at the substrate pairs, then the drift's Jacobian
            dvs = dv.astype(np.float64) * np.broadcast_to(factor, v.shape)[:, pairs[0]]
            if params.basis is not None:  # d exp(phi gamma) / dc through the substrates' log concentrations
                dvs += vs[:, pairs[0]] * params.basis.log_factor_slopes(x, params.shape, pairs)
            jac = drift(dvs)
            jac[:, diag, diag] += params.slope
            previous = torch.from_numpy(sens)  # sens + h jac sens in one batched product
            sens = torch.baddbmm(previous, torch.from_numpy(jac), previous, alpha=h).numpy()
            if first == 0:  # the direct effect of each parameter carried on this step
                sens[:, diag, diag] += h * x
                sens[:, diag, n_met + diag] += h
            if n_par:
                scales = 2 * n_met - first
                sens[:, :, scales : scales + n_rxn] += h * S[None] * vs[:, None, :]
                if phi is not None:
                    sens[:, :, scales + n_rxn : n_par] += h * np.einsum("ij,bjf->bif", S, vs[:, :, None] * phi)
        x = x + h * (vs @ S.T + params.slope * x + params.offset)
        clamped = x < 0.0
        x[clamped] = 0.0
        if sens is not None:
            sens[clamped] = 0.0
        if (step + 1) % substeps == 0:
            yield (step + 1) // substeps, x, sens


class OutputErrorRegression:
    """Slopes and offsets (with per-reaction scales and window starts) by output error over windows.

    ``free`` says what is fitted besides the starts: ``all`` (slopes, offsets, scales and the shape corrections
    of a start with a :class:`ShapeBasis`), ``scales`` (these corrections alone: slopes and
    offsets stay at the start's) or ``starts`` (nothing else); ``observation`` how readings relate to states;
    without ``covariance`` (a fit only continued from) the attributes below that need it are not set
    until :meth:`with_covariance`. ``tie``
    (optional, with ``free="all"``): per parameter (slopes, offsets, scales) the index of the free value it takes,
    so that parameters with one index stay equal (a group's members sharing one slope and one offset); their
    start values must be equal too.
    ``fit`` sets ``cost_`` (the objective, :func:`weighed_residuals`), ``rms_`` (weighted, of the readings above
    zero; 1 when the residuals are as large as the noise), ``metabolite_rms_`` (the same per metabolite,
    :func:`metabolite_rms`), ``n_rows_`` (readings above zero), ``params_`` (the
    fitted :class:`Corrected`), ``states_`` (the record with each window replaced by its fitted trajectory),
    from which a fit over longer windows starts, ``noise_sd_`` (:func:`fitted_noise`, the weights of the next
    fit) and ``relative_fits_better_`` (:func:`relative_fits_better`). With ``free="all"`` (and ``covariance``) also
    ``slope_``, ``offset_``, ``reaction_scale_``, ``cov_`` and ``joint_cov_`` (per metabolite, 2x2),
    ``estimate_cov_`` (all slopes then all offsets, 2M x 2M: the metabolites' errors are correlated through the
    shared scales), ``slope_se_``, ``offset_se_``, ``quadratic_`` and ``collinear_`` (none), and, for the
    detectability report, ``design_matrix_`` (a square root of the reduced information, whose column cosines are
    those of the information), ``slope_cols_`` and ``reaction_cols_``.
    """

    def __init__(self, *, window: int, observation: Observation | None = None, n_iterations: int = PASSES,
                 free: str = "all", covariance: bool = True, tie: np.ndarray | None = None):
        if free not in ("all", "scales", "starts"):
            raise ValueError(f"free must be all, scales or starts, not {free!r}")
        if tie is not None and free != "all":
            raise ValueError("tied parameters need free='all'")
        self.window = window
        self.observation = Observation() if observation is None else observation
        self.n_iterations = n_iterations
        self.free = free
        self.covariance = covariance
        self.tie = tie

    def fit(self, data: Dataset, model: MetabolismModel, start: Corrected, states: np.ndarray | None = None,
            use: np.ndarray | None = None) -> OutputErrorRegression:
        """Fit from parameters ``start`` and window starts read from ``states`` (default: the record), on the
        windows whose samples ``use`` allows (default: all). On one BLAS thread: the passes are many mid-sized
        products, and on two threads a pass over windows of 80 samples took about twice as long (case (b), 2
        CPUs; torch is on one thread already in ``sysid fit``)."""
        with threadpool_limits(limits=1, user_api="blas"):
            return self._fit(data, model, start, states, use)

    def _fit(self, data: Dataset, model: MetabolismModel, start: Corrected, states: np.ndarray | None,
             use: np.ndarray | None) -> OutputErrorRegression:
        y = data.concentrations.astype(np.float64)
        first, observed, sd = self._readings(data, use)
        samples = first[:, None] + np.arange(self.window)[None, :]
        params, x0 = start, (y if states is None else states)[first].copy()
        info, grad, cost, chi2, fitted = self._pass(data, model, params, x0, observed, sd)
        cost += params.penalty()

        def accept(trial, sensitivities=True):
            t_params, t_x0 = trial
            info, grad, t_cost, t_chi2, t_fitted = self._pass(data, model, t_params, t_x0, observed, sd, sensitivities)
            return (t_params, t_x0, info, grad, t_chi2, t_fitted), t_cost + t_params.penalty()

        tried: list = []  # the last trial and its state without sensitivities: ``settle`` takes the trial just tried

        def trial_cost(trial):
            tried[:] = [trial, accept(trial, sensitivities=False)]
            return tried[1][1]

        def settle(trial):
            return tried[1] if tried and tried[0] is trial else accept(trial, sensitivities=False)

        def on_step(iteration, new_cost, damping):
            log.info("stage 1 output error (%s free), pass %d: weighted cost %.6g (damping %g)", self.free, iteration,
                     new_cost, damping)

        (params, x0, _, _, chi2, fitted), cost = minimise(
            (params, x0, info, grad, chi2, fitted), cost,
            propose=lambda state, damping: self._step(*state[:4], damping), trial_cost=trial_cost, accept=accept,
            dampings=DAMPING, first=0, max_iterations=self.n_iterations, tolerance=TOLERANCE, on_step=on_step,
            settle=settle)
        n_rows = int((observed > 0).sum())
        self.cost_, self.rms_, self.n_rows_, self._use = cost, float(np.sqrt(chi2 / max(n_rows, 1))), n_rows, use
        if self.free == "all" and self.covariance:
            self._covariance(data, model, params, x0, observed, sd, n_rows)
        self.states_ = y.copy()
        self.states_[samples] = fitted  # the windows' trajectories from the pass at the answer
        self.metabolite_rms_ = metabolite_rms(observed, fitted, sd, self.observation.relative)
        self.noise_sd_ = fitted_noise(observed, fitted, self.observation.relative, self.window)
        self.relative_fits_better_ = relative_fits_better(observed, fitted, self.window)
        self.params_ = params
        return self

    def with_covariance(self, data: Dataset, model: MetabolismModel) -> OutputErrorRegression:
        """This fit (``free="all"``) with the covariance of its answer set, as a fit with ``covariance`` would have
        it: computed at the parameters and window starts it ended with (one float64 pass). A fit only continued
        from needs none, so the continuation over lengths computes it for its answer alone."""
        if self.free != "all":
            raise ValueError("a covariance is computed only for fits with free='all'")
        if not self.covariance:
            with threadpool_limits(limits=1, user_api="blas"):
                first, observed, sd = self._readings(data, self._use)
                self._covariance(data, model, self.params_, self.states_[first], observed, sd, self.n_rows_)
            self.covariance = True
        return self

    def _readings(self, data: Dataset, use: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The first sample of each window ``use`` allows (B,), the windows' readings (B, window, M) and the
        readings' noise sds."""
        y = data.concentrations.astype(np.float64)
        first = output_error_starts(data.n_frames, self.window, data.experiment_starts, use)
        return first, y[first[:, None] + np.arange(self.window)[None, :]], self.observation.noise(y)

    def _simulate(self, data, model, params: Corrected, x0, sensitivities: bool = True):
        return window_sensitivities(model, x0, params, window=self.window, substeps=self.observation.substeps,
                                    delta_t=data.delta_t, sensitivities=sensitivities, free=self.free)

    def _pass(self, data, model, params: Corrected, x0, observed, sd, sensitivities: bool = True,
              sandwich: bool = False):
        """Objective of the windows from starts x0 (:func:`weighed_residuals`), the weighted squares of the
        readings above zero, the windows' simulated states (B, window, M), and, with ``sensitivities``, the
        information (:class:`StartBlocks`: what the
        elimination of the window starts needs) and each window's gradient (B, P + M) (P = 0 with only the starts
        free). The information of a step is summed in float32 (:class:`StepInformation`); with ``sandwich``, it
        is instead the pair (bread, meat) of the sandwich covariance, in the same blocks in float64
        (:class:`SandwichInformation`)."""
        info = grad = None
        cost = chi2 = 0.0
        states = np.empty(observed.shape)
        for k, x, sens in self._simulate(data, model, params, x0, sensitivities):
            states[:, k] = x
            weighed = weighed_residuals(observed[:, k], x, sd, self.observation.relative)
            cost, chi2 = cost + weighed.objective, chi2 + weighed.squares
            if sens is None:
                continue
            if weighed.factor is not None:
                sens = sens * weighed.factor[:, :, None]
            if info is None:
                n_par = sens.shape[2] - x.shape[1]
                info = (SandwichInformation if sandwich else StepInformation)(len(x), n_par, x.shape[1])
                grad = np.zeros((len(x), sens.shape[2]))
            info.add(sens, weighed)
            grad += np.einsum("bmp,bm->bp", sens, weighed.wr)
        return (None if info is None else info.result()), grad, cost, chi2, states

    def _step(self, params: Corrected, x0, info, grad, damping: float):
        """Damped Gauss-Newton step: the starts eliminated per window, the free parameters solved, the starts
        back-substituted."""
        n_par = len(info.params)  # the parameters carried: none with only the starts free
        reduced, rhs, parts = eliminate(info, grad, damping)
        _add_prior(params, reduced, rhs)
        basis = _basis(self._free_index(n_par))  # the system in the fitted values z: parameters = basis @ z
        delta = np.zeros(n_par)
        if basis.shape[1]:
            sub = basis.T @ reduced @ basis
            diag = np.sqrt(np.maximum(np.diag(sub), 1e-300))
            scaled = sub / diag[:, None] / diag[None, :] + damping * np.eye(len(sub))
            delta = basis @ (linalg.solve(scaled, basis.T @ rhs / diag, assume_a="pos") / diag)
        x_step = np.stack([dg - db @ delta for db, dg in parts])
        if not n_par:
            return params, np.maximum(x0 + x_step, 0.0)
        held = len(params.vector()) - n_par  # the slopes and offsets with only the scales free
        return params.stepped(np.concatenate([np.zeros(held), delta])), np.maximum(x0 + x_step, 0.0)

    def _free_index(self, n_par: int) -> np.ndarray:
        """Per carried parameter (slopes, offsets, scales; :func:`carried_from`) the index of the fitted value it
        takes: ``tie``, or each its own."""
        return np.arange(n_par) if self.tie is None else self.tie

    def _covariance(self, data, model, params: Corrected, x0, observed, sd, n_rows: int) -> None:
        """The sandwich covariance of the parameters, the starts profiled out: with R the reduced bread (the
        Schur complement of the starts) and each window's profiled score s_b = g_theta - C_b D_b^-1 g_x, its meat
        is the sum over windows of P_b Meat_b P_b^T (P_b = [I, -C_b D_b^-1]; readings are independent), and the
        covariance R^-1 (sum) R^-1, times n / (n - parameters - starts). For Gaussian readings at the optimum it is
        the inverse information scaled by the residuals' weighted variance; it stays right where some readings
        are further off than their weights say (a state the frozen model holds at zero)."""
        n_met = len(params.slope)
        n_par = len(params.vector())
        (bread, meat), grad, *_ = self._pass(data, model, params, x0, observed, sd, sandwich=True)
        reduced, _, parts = eliminate(bread, grad, 0.0)
        _add_prior(params, reduced)
        profiled = profiled_meat(meat, parts)
        index = self._free_index(n_par)
        basis = _basis(index)  # the covariance of the fitted values, spread to the parameters that take them
        dof = max(n_rows - basis.shape[1] - len(bread.starts) * n_met, 1)
        cov = sandwich_covariance(basis.T @ reduced @ basis, basis.T @ profiled @ basis) * n_rows / dof
        cov = cov[np.ix_(index, index)]
        idx = np.arange(n_met)
        pairs = np.stack([idx, idx + n_met], axis=1)
        self.slope_, self.offset_, self.reaction_scale_ = params.slope, params.offset, params.scale
        self.cov_ = self.joint_cov_ = cov[pairs[:, :, None], pairs[:, None, :]]
        self.estimate_cov_ = cov[: 2 * n_met, : 2 * n_met]
        self.slope_se_, self.offset_se_ = np.sqrt(self.cov_[:, 0, 0]), np.sqrt(self.cov_[:, 1, 1])
        self.quadratic_ = np.zeros(n_met, bool)
        n_rxn = len(params.scale)
        self.collinear_ = np.zeros(n_rxn, bool)
        evals, evecs = linalg.eigh(reduced)
        self.design_matrix_ = np.sqrt(np.maximum(evals, 0.0))[:, None] * evecs.T
        self.slope_cols_, self.reaction_cols_ = slice(0, n_met), slice(2 * n_met, 2 * n_met + n_rxn)


def carried_from(free: str, n_met: int, n_par: int) -> int:
    """The first of the ``n_par`` parameters (slopes, offsets, scales, shape) whose sensitivities a fit with
    ``free`` (``all``, ``scales`` or ``starts``) carries: those before it stay as they are."""
    return {"all": 0, "scales": 2 * n_met, "starts": n_par}[free]


def _add_prior(params: Corrected, reduced: np.ndarray, rhs: np.ndarray | None = None) -> None:
    """The shape corrections' prior (:meth:`Corrected.penalty`) in the reduced system, in place: half its
    curvature in the information, minus half its gradient in the right-hand side."""
    n = len(params.shape)
    if n and len(reduced):  # the shape corrections are the last parameters carried (none with only starts free)
        idx = np.arange(reduced.shape[0] - n, reduced.shape[0])
        reduced[idx, idx] += 1.0 / SHAPE_PRIOR_SD**2
        if rhs is not None:
            rhs[idx] -= params.shape / SHAPE_PRIOR_SD**2


def _basis(index: np.ndarray) -> np.ndarray:
    """(P, q) 0/1 matrix taking q fitted values to P parameters: row p has its 1 in column ``index[p]``, none
    where ``index[p]`` is -1."""
    basis = np.zeros((len(index), int(index.max(initial=-1)) + 1))
    rows = np.flatnonzero(index >= 0)
    basis[rows, index[rows]] = 1.0
    return basis
