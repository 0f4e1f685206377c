"""Stage 1 regression: per-metabolite slopes and offsets with the frozen model's errors partialled out.

One joint least-squares problem over all metabolites and windows (see
:mod:`sysid.stage1.design`): per-metabolite slope and offset, per-reaction scale
corrections and shared shape corrections of the frozen model, solved through
sparse normal equations. The corrections are refined by Gauss-Newton (rates
rescaled, then refit). Standard errors come from statsmodels: each
metabolite's windowed residual, cleaned of the fitted corrections, is an OLS
on (integrated c_i, window length) with Newey-West (HAC) covariance; by the
Frisch-Waugh-Lovell argument its coefficients equal the joint fit's. The
errors are conditional on the fitted corrections.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
from scipy import linalg, sparse
from statsmodels.regression.linear_model import OLS

from sysid.config import Stage1Config
from sysid.io.dataset import Dataset
from sysid.stage1.block_solve import BLOCK_COLUMNS, pair_inflation, solve_eliminating_pairs, times_st
from sysid.stage1.design import Design, build_design, mass_action_monomials, shape_features
from sysid.stage1.identifiability import collinear_reactions
from sysid.stage1.quadratic import needs_quadratic, windowed_library
from sysid.stage1.residuals import FrozenEvaluation, compute_residuals, window_frames, window_sum
from sysid.threads import pools_only

log = logging.getLogger(__name__)
MIN_SCALE = 0.05
MAX_LOG_CORRECTION = 5.0
STEP_SIZES = (1.0, 0.5, 0.25, 0.1)
# a step that lowers the weighted rms by less than this share ends the Gauss-Newton refinement (it is taken)
RMS_TOLERANCE = 1e-2
VARIANCE_FLOOR = 1e-6  # of the median metabolite residual variance (weights span at most 1e6)


def solve_normal_equations(design: Design, ridge: float, row_weights: np.ndarray | None = None) -> np.ndarray:
    """(Weighted) least squares via column-scaled normal equations; unused columns get 0."""
    if design.X.shape[1] > BLOCK_COLUMNS:
        return solve_eliminating_pairs(design, np.ones(len(design.y)) if row_weights is None else row_weights, ridge)
    return normal_solve(*weighted_gram(design, row_weights), ridge)


def weighted_gram(design: Design, row_weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """X^T W X and X^T W y of the design. Its shape-correction columns are dense (every row has all of them):
    their products go through BLAS, the sparse rest's through sparse products (half the time of one sparse
    product of the whole design on the default regime)."""
    X = design.X.tocsc()
    w = np.ones(X.shape[0]) if row_weights is None else row_weights
    dense = np.arange(design.shape_cols.start, design.shape_cols.stop)
    rest = np.setdiff1d(np.arange(X.shape[1]), dense)
    D, R = X[:, dense].toarray(), X[:, rest].tocsr()
    Rw = R.T.multiply(w[None, :]).tocsr()  # (columns, rows)
    Dw = D * w[:, None]
    A = np.empty((X.shape[1], X.shape[1]))
    A[np.ix_(rest, rest)] = (Rw @ R).toarray()
    A[np.ix_(rest, dense)] = Rw @ D
    A[np.ix_(dense, rest)] = A[np.ix_(rest, dense)].T
    A[np.ix_(dense, dense)] = Dw.T @ D
    b = np.empty(X.shape[1])
    b[rest], b[dense] = Rw @ design.y, Dw.T @ design.y
    return A, b


def normal_solve(A: np.ndarray, b: np.ndarray, ridge: float) -> np.ndarray:
    """Column-scaled normal equations A coef = b with a tiny ridge; columns that are never used get 0."""
    d = np.sqrt(np.diag(A))
    used = d > 0
    scale = 1.0 / d[used]
    As = A[np.ix_(used, used)] * scale[:, None] * scale[None, :] + ridge * np.eye(used.sum())
    try:
        z = linalg.solve(As, b[used] * scale, assume_a="pos")
    except linalg.LinAlgError:
        z = linalg.lstsq(As, b[used] * scale)[0]
    coef = np.zeros(A.shape[0])
    coef[used] = z * scale
    return coef


def metabolite_weights(design: Design, residual: np.ndarray) -> np.ndarray:
    """Inverse residual variance of each metabolite's rows, normalised to mean 1."""
    n = design.n_met
    count = np.maximum(np.bincount(design.rows_met, minlength=n), 1)
    w = 1.0 / floored_variance(np.bincount(design.rows_met, residual**2, minlength=n) / count)
    return w / w.mean()


def floored_variance(var: np.ndarray) -> np.ndarray:
    """Residual variances of the metabolites, each at least VARIANCE_FLOOR times their median: on a noise-free
    record a few metabolites fitted almost exactly would otherwise take weights 1e12 times the others', and a step
    that sends the rest far off their readings would count as an improvement."""
    return np.maximum(var, VARIANCE_FLOOR * max(float(np.median(var)), 1e-300))


class HomeostasisRegression:
    """Joint windowed regression of the frozen model's residuals (scikit-learn style).

    ``fit`` sets ``slope_``, ``offset_``, ``slope_se_``, ``offset_se_``,
    ``reaction_scale_`` (multiplicative correction per reaction), ``shape_coef_``,
    ``shape_names_``, ``inflation_`` ((n, 2): how much the frozen-model corrections inflate each slope's and
    offset's variance), ``joint_cov_`` (the per-metabolite covariance so inflated) and
    the final design (``design_matrix_``, ``slope_cols_``, ``reaction_cols_``).
    """

    def __init__(self, *, window: int, ramp: int, shape_knots: int = Stage1Config.shape_knots,
                 n_iterations: int = Stage1Config.n_iterations, hac_maxlags: int = Stage1Config.hac_maxlags,
                 ridge: float = Stage1Config.ridge, mass_action: bool = True,
                 sindy_threshold: float = Stage1Config.sindy_threshold, skip: int = 0, trapezoid: bool = False,
                 tolerance: float = RMS_TOLERANCE):
        self.window = window
        self.shape_knots = shape_knots
        self.n_iterations = n_iterations
        self.hac_maxlags = hac_maxlags
        self.ridge = ridge
        self.mass_action = mass_action
        self.sindy_threshold = sindy_threshold
        self.ramp = ramp
        self.skip = skip  # frames left out at the start of each experiment (fast initial transients)
        self.trapezoid = trapezoid  # quadrature of the windows (see residuals.window_sum)
        self.tolerance = tolerance  # a step lowering the weighted rms by less than this share is the last (0: none)
        self.n_curve_cols = 0  # per-metabolite curve columns appended by fit(curves=...)

    def fit(self, data: Dataset, frozen: FrozenEvaluation, curves: np.ndarray | None = None) -> HomeostasisRegression:
        """``curves`` (frames, metabolites), optional: a per-frame regulation curve of each metabolite whose
        windowed sum enters the design as one more column per metabolite (free coefficient), so that the
        frozen-model corrections are estimated with the curvature of the regulation represented
        (:mod:`sysid.stage1.nonlinear`); columns that are all zero are left out. Its BLAS calls are small and
        run on one thread, its thread pools on the budget (:func:`sysid.threads.pools_only`): the same numbers
        on any number of threads."""
        with pools_only():
            return self._fit(data, frozen, curves)

    def _fit(self, data: Dataset, frozen: FrozenEvaluation, curves: np.ndarray | None) -> HomeostasisRegression:
        res = compute_residuals(data, frozen, self.window, self.ramp, skip=self.skip, trapezoid=self.trapezoid)
        conc = data.concentrations.astype(np.float64)
        feats = shape_features(conc, frozen.aggregate, data.network, self.shape_knots)
        S = data.network.S.astype(np.float64)
        S_sparse = sparse.csr_matrix(S)
        substrates = data.network.substrates.astype(np.float64)
        monomials = mass_action_monomials(conc, substrates) if self.mass_action else None

        weights = np.ones(S.shape[0])
        frames = np.unique(window_frames(res.starts, self.window + self.ramp))
        self.collinear_ = collinear_reactions(conc[frames], frozen.rates[frames], S)
        keep = np.ones(2 * S.shape[0] + S.shape[1] + feats.values.shape[-1] + (S.shape[1] if self.mass_action else 0))
        keep[2 * S.shape[0] : 2 * S.shape[0] + S.shape[1]] = ~self.collinear_
        if monomials is not None:  # a candidate law such as a constant feed's (monomial 1) duplicates [c_i, 1] too
            keep[len(keep) - S.shape[1] :] = ~collinear_reactions(conc[frames], monomials[frames], S)
        if self.collinear_.any():
            log.info("stage 1: %d reactions have corrections collinear with [c, 1]; dropped", self.collinear_.sum())

        def designed(state):
            scale, shape_coef = state
            rates = frozen.rates * scale * np.exp(np.minimum(feats.values @ shape_coef, MAX_LOG_CORRECTION))
            # windowed residual of the corrected frozen model
            target = res.windowed - data.delta_t * window_sum(times_st(rates - frozen.rates, S, S_sparse), res.starts,
                                                              self.window, self.ramp, self.trapezoid)
            design = build_design(target, conc, rates, feats, S, res.starts, res.valid, self.window, data.delta_t,
                                  monomials, self.ramp, self.trapezoid)
            design = dataclasses.replace(design, X=design.X.multiply(keep[None, :]).tocsr())
            if curves is not None:
                design = _with_curve_columns(design, curves, res.starts, self, data.delta_t)
            return design

        def solved(design):
            w = weights[design.rows_met]
            coef = solve_normal_equations(design, self.ridge, w)
            return coef, float(np.sqrt(np.mean(w * (design.y - design.X @ coef) ** 2)))

        def linearised(state):
            design = designed(state)
            return (design, *solved(design))

        def step(state, design, coef, size):
            scale, shape_coef = state
            new_scale = scale * np.maximum(1.0 + size * coef[design.reaction_cols], MIN_SCALE)
            return new_scale, shape_coef + size * coef[design.shape_cols]

        state = (np.ones(S.shape[1]), np.zeros(feats.values.shape[-1]))
        design, coef, rms = linearised(state)
        log.info("stage 1 iteration 1: rms windowed residual %.3g", rms)
        # feasible GLS: weigh each metabolite's rows by the inverse of its residual variance (the same design)
        weights = metabolite_weights(design, design.y - design.X @ coef)
        coef, rms = solved(design)
        for it in range(1, self.n_iterations):
            for size in STEP_SIZES:  # damped Gauss-Newton: shrink the step until the fit improves
                trial = step(state, design, coef, size)
                t_design, t_coef, t_rms = linearised(trial)
                if t_rms <= rms:
                    break
            else:
                break
            settled = rms - t_rms < self.tolerance * rms
            state, design, coef, rms = trial, t_design, t_coef, t_rms
            log.info("stage 1 iteration %d: weighted rms windowed residual %.3g", it + 1, rms)
            if settled:
                break
        self._set_per_metabolite(design, coef, conc, res.starts, data.delta_t)
        self.inflation_ = pair_inflation(design, weights[design.rows_met], self.ridge)
        root = np.sqrt(np.where(np.isfinite(self.inflation_), self.inflation_, 1.0))
        self.joint_cov_ = self.cov_ * root[:, :, None] * root[:, None, :]
        self.joint_cov_[~np.all(np.isfinite(self.inflation_), axis=1)] = np.diag([np.inf, np.inf])
        # what the nonlinear forms are fitted to (sysid.stage1.nonlinear): the cleaned rows and their weights
        self.rows_met_, self.rows_win_, self.starts_, self.met_weights_ = (design.rows_met, design.rows_win,
                                                                          res.starts, weights)
        self.reaction_scale_, self.shape_coef_ = step(state, design, coef, 1.0)
        self.shape_names_ = feats.names
        self.design_matrix_, self.slope_cols_, self.reaction_cols_ = design.X, design.slope_cols, design.reaction_cols
        self.rms_ = rms
        self.residuals_ = res
        self.n_rows_ = design.X.shape[0]
        return self

    def raw_slope_se_joint(self) -> np.ndarray:
        """Slope standard errors with the uncertainty of the frozen-model corrections (from ``joint_cov_``)."""
        return np.sqrt(self.joint_cov_[:, 0, 0])

    def _set_per_metabolite(self, design: Design, coef: np.ndarray, conc: np.ndarray, starts: np.ndarray,
                            dt: float) -> None:
        """Per metabolite, on its windowed residual cleaned of the frozen-model corrections: OLS of the
        linear law with HAC errors (statsmodels; equal to the joint fit's coefficients) and a sparse check
        of the library (1, c, c^2) for a quadratic term (pysindy)."""
        nuisance = np.r_[design.nuisance_cols][: design.X.shape[1] - 2 * design.n_met - self.n_curve_cols]
        clean = design.y - design.X[:, nuisance] @ coef[nuisance]
        self.clean_ = clean
        n = design.n_met
        self.slope_, self.offset_ = np.full(n, np.nan), np.full(n, np.nan)
        self.slope_se_, self.offset_se_ = np.full(n, np.inf), np.full(n, np.inf)
        self.cov_ = np.tile(np.diag([np.inf, np.inf]), (n, 1, 1))  # (slope, offset) covariance per metabolite
        self.quadratic_ = np.zeros(n, bool)
        # per row (metabolite, window): what the linear law leaves over (read by sysid.stage1.misfit)
        self.rows_met_, self.rows_win_, self.law_residual_ = design.rows_met, design.rows_win, np.zeros(len(clean))
        library = windowed_library(conc, starts, self.window, dt, self.ramp, self.trapezoid)  # (windows, n, 3)
        for i in range(n):
            rows = np.nonzero(design.rows_met == i)[0]
            if len(rows) < 3:
                continue
            theta = library[design.rows_win[rows], i]
            fit = OLS(clean[rows], theta[:, [1, 0]]).fit(cov_type="HAC", cov_kwds={"maxlags": self.hac_maxlags})
            self.slope_[i], self.offset_[i] = fit.params
            self.slope_se_[i], self.offset_se_[i] = fit.bse
            self.cov_[i] = np.asarray(fit.cov_params())
            self.law_residual_[rows] = fit.resid
            self.quadratic_[i] = needs_quadratic(theta, clean[rows], self.sindy_threshold)


def _with_curve_columns(design: Design, curves: np.ndarray, starts: np.ndarray, reg: HomeostasisRegression,
                        dt: float) -> Design:
    """The design with one column per metabolite whose curve is not all zero: its windowed curve on its rows."""
    windowed = dt * window_sum(np.asarray(curves, np.float64), starts, reg.window, reg.ramp, reg.trapezoid)
    used = np.flatnonzero(np.any(curves != 0, axis=0))
    col = np.full(design.n_met, -1)
    col[used] = np.arange(len(used))
    rows = np.flatnonzero(col[design.rows_met] >= 0)
    block = sparse.csr_matrix((windowed[design.rows_win[rows], design.rows_met[rows]],
                               (rows, col[design.rows_met[rows]])), shape=(design.X.shape[0], len(used)))
    reg.n_curve_cols = len(used)
    return dataclasses.replace(design, X=sparse.hstack([design.X, block], format="csr"))
