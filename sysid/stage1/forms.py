"""Candidate forms of a group's regulation curve h(c), fitted to the pooled group's windowed residuals.

Every candidate is linear in its coefficients given a few shape parameters:

| form | per-frame features | shape |
| --- | --- | --- |
| ``linear``, ``quadratic``, ``cubic`` | 1, u, u^2, u^3 with u = c - c_mean (pysindy's PolynomialLibrary) | none |
| ``saturating`` | 1, K tanh((c - c0) / K) | K, c0 |
| ``rational`` | 1, c, 1 / (1 + (c / K)^n) (feedback-inhibited synthesis) | K, n |

The features are integrated over the regression's windows exactly like its
target, so the fit is the integral (weak) form of h_g(c_i(t)) = residual. The
shape parameters are found by a grid search, then Nelder-Mead, with the
coefficients solved in closed form inside (variable projection: the RSS as a
function of the shape alone, the shape-free columns projected out once).
Forms are compared by BIC, counting shape parameters as parameters.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pysindy as ps
from scipy.linalg import orth
from scipy.optimize import minimize
from scipy.special import expit
from threadpoolctl import threadpool_limits

from sysid.config import STAGE1_FORMS
from sysid.stage1.residuals import window_sum
from sysid.threads import allowed

POLYNOMIAL_DEGREE = {"linear": 1, "quadratic": 2, "cubic": 3}
CANDIDATES = STAGE1_FORMS
N_SHAPE = {"saturating": 2, "rational": 2}
HILL_EXPONENTS = (1.0, 2.0, 3.0, 4.0)
# The shape search (hundreds of solves) runs on at most this many members of a group, spread evenly; the
# coefficients and the RSS that choose the form use every member. The example regimes have <= 100 members per
# group (unchanged); a genome-scale group of ~900 spent 32 of 77 s of stage 1 in the search.
SEARCH_MEMBERS = 200
MIN_HILL, MAX_HILL = 0.5, 8.0


def features(form: str, shape: tuple[float, ...], centre: float, c: np.ndarray) -> np.ndarray:
    """Per-frame features of a form at concentrations c: array (*c.shape, n_coefficients)."""
    c = np.asarray(c, np.float64)
    if form in POLYNOMIAL_DEGREE:
        library = ps.PolynomialLibrary(degree=POLYNOMIAL_DEGREE[form], include_bias=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = library.fit_transform((c - centre).reshape(-1, 1))
        return np.asarray(out).reshape(*c.shape, -1)
    if form in N_SHAPE:
        free = [np.ones_like(c)] if form == "saturating" else [np.ones_like(c), c]
        return np.stack([*free, shaped_feature(form, shape, c)], axis=-1)
    raise ValueError(f"unknown form {form!r}; candidates are {CANDIDATES}")


def shaped_feature(form: str, shape: tuple[float, ...], c: np.ndarray) -> np.ndarray:
    """The one feature of a shaped form that depends on its shape (its last column); the others are 1 and c."""
    if form == "saturating":  # K tanh(u) = 2K expit(2u) - K: the same to 4e-16, twice as fast as numpy's tanh
        k, c0 = shape
        out = np.asarray(c * (2.0 / k) - 2.0 * c0 / k)  # a 0-d input stays an array for the steps in place
        expit(out, out=out)
        out *= 2.0 * k
        out -= k
        return out
    k, n = shape  # rational
    return 1.0 / (1.0 + (np.maximum(c, 0.0) / k) ** n)


def shape_to_free(form: str, shape: tuple[float, ...]) -> np.ndarray:
    """A shape in unconstrained coordinates: K (and n) on a log scale, c0 as it is."""
    if form == "saturating":
        return np.array([np.log(shape[0]), shape[1]])
    return np.log(np.asarray(shape, np.float64))


def free_to_shape(form: str, x: np.ndarray) -> tuple[float, ...]:
    """Inverse of :func:`shape_to_free`."""
    if form == "saturating":
        return float(np.exp(x[0])), float(x[1])
    return tuple(float(v) for v in np.exp(x))


def shaped_feature_grad(form: str, shape: tuple[float, ...], c: np.ndarray) -> np.ndarray:
    """Derivative of :func:`shaped_feature` with respect to the free coordinates of the shape: (*c.shape, 2)."""
    c = np.asarray(c, np.float64)
    if form == "saturating":
        k, c0 = shape
        u = (c - c0) / k
        sech2 = 1.0 / np.cosh(np.clip(u, -350.0, 350.0)) ** 2
        return np.stack([k * (np.tanh(u) - u * sech2), -sech2], axis=-1)  # d/dlog K, d/dc0
    k, n = shape  # rational: q = (c / K)^n, feature 1 / (1 + q)
    ratio = np.maximum(c, 0.0) / k
    q = ratio**n
    dq = n * q / (1.0 + q) ** 2
    log_ratio = np.log(np.where(ratio > 0, ratio, 1.0))
    return np.stack([dq, -dq * log_ratio], axis=-1)  # d/dlog K, d/dlog n


@dataclass(frozen=True)
class GroupCurve:
    """A fitted curve h_g(c) of one group: form, coefficients, shape, and the pooled observed range."""

    form: str
    coef: tuple[float, ...]
    shape: tuple[float, ...]
    centre: float
    lo: float  # 1st and 99th percentiles of the group's pooled concentrations
    hi: float
    bic: float
    rss: float

    def __call__(self, c: np.ndarray, extrapolate: bool = False) -> np.ndarray:
        """h_g(c); with ``extrapolate`` the curve continues as its tangent outside [lo, hi]."""
        c = np.asarray(c, np.float64)
        if not extrapolate:
            return features(self.form, self.shape, self.centre, c) @ np.asarray(self.coef)
        inside = np.clip(c, self.lo, self.hi)
        eps = 1e-4 * max(self.hi - self.lo, 1e-9)
        base = self(inside)
        slope_lo = (self(np.array(self.lo + eps)) - self(np.array(self.lo))) / eps
        slope_hi = (self(np.array(self.hi)) - self(np.array(self.hi - eps))) / eps
        return base + np.where(c < self.lo, slope_lo * (c - self.lo), 0.0) + np.where(c > self.hi,
                                                                                     slope_hi * (c - self.hi), 0.0)

    def to_json(self) -> dict:
        return {"form": self.form, "coef": list(self.coef), "shape": list(self.shape), "centre": self.centre,
                "range": [self.lo, self.hi], "bic": self.bic}


@dataclass(frozen=True, eq=False)
class PooledRows:
    """The windowed residual rows of a group's members: what every member's curve must explain.

    ``conc`` (frames, members) are the members' concentrations; row r belongs to
    member ``member[r]`` and window ``win[r]`` and has target ``y[r]`` and weight ``w[r]``.
    """

    conc: np.ndarray
    y: np.ndarray
    member: np.ndarray
    win: np.ndarray
    w: np.ndarray
    starts: np.ndarray
    window: int
    ramp: int
    trapezoid: bool
    dt: float

    def design(self, form: str, shape: tuple[float, ...], centre: float) -> np.ndarray:
        """Windowed features of the rows: (n_rows, n_coefficients).

        A shaped form's search asks for hundreds of shapes: its columns that do not depend on the shape are
        windowed once (cached) and only the shaped column per call. Each column's window sums are the same
        numbers either way (a window sum adds each column's frames in the same order; with one member the
        single column would be summed in another order, so that case windows all columns as one array)."""
        if form not in N_SHAPE or self.conc.shape[1] < 2:
            return self._windowed(features(form, shape, centre, self.conc))
        shaped = self._windowed(shaped_feature(form, shape, np.asarray(self.conc, np.float64))[..., None])
        return np.concatenate([self._free_columns(form, centre), shaped], axis=1)

    def _windowed(self, per_frame: np.ndarray) -> np.ndarray:
        """(T, m, p) per-frame features -> (n_rows, p): dt * their window sums on each row's member and window."""
        t, m, p = per_frame.shape
        windowed = self.dt * window_sum(per_frame.reshape(t, m * p), self.starts, self.window, self.ramp,
                                        self.trapezoid).reshape(-1, m, p)
        return windowed[self.win, self.member]

    def _free_columns(self, form: str, centre: float) -> np.ndarray:
        """The windowed columns of a shaped form that do not depend on its shape (1, and c for rational)."""
        cache = self.__dict__.setdefault("_free", {})  # a frozen dataclass: the cache bypasses __setattr__
        if form not in cache:
            reference = (1.0, 0.0) if form == "saturating" else (1.0, 1.0)  # any shape: these columns ignore it
            cache[form] = np.ascontiguousarray(self._windowed(features(form, reference, centre, self.conc))[:, :-1])
        return cache[form]

    def subset(self, max_members: int) -> PooledRows:
        """These rows, or those of ``max_members`` members spread evenly over them (self when there are no more)."""
        n = self.conc.shape[1]
        if n <= max_members:
            return self
        keep = np.unique(np.linspace(0, n - 1, max_members).round().astype(int))
        position = np.full(n, -1)
        position[keep] = np.arange(len(keep))
        pick = position[self.member] >= 0
        return PooledRows(self.conc[:, keep], self.y[pick], position[self.member[pick]], self.win[pick], self.w[pick],
                          self.starts, self.window, self.ramp, self.trapezoid, self.dt)

    def solve(self, X: np.ndarray) -> tuple[np.ndarray, float]:
        """Weighted least squares with normalised columns: (coefficients, weighted RSS)."""
        sw = np.sqrt(self.w)
        Xw = X * sw[:, None]
        norm = np.linalg.norm(Xw, axis=0)
        norm[norm == 0] = 1.0
        z = np.linalg.lstsq(Xw / norm, self.y * sw, rcond=None)[0]
        coef = z / norm
        return coef, float(np.sum(self.w * (self.y - X @ coef) ** 2))


class ProjectedRss:
    """Weighted RSS of a shaped form's best coefficients as a function of its shape alone (variable projection).

    The shape-free columns are windowed and projected out once; for each shape only the shaped column is
    windowed, and the RSS is the target's residual norm less its squared projection on that column's residual.
    The same minimum as :meth:`PooledRows.solve` (to rounding), at a tenth of the cost of a least-squares solve.
    """

    def __init__(self, rows: PooledRows, form: str, centre: float):
        self.rows, self.form = rows, form
        self.sw = np.sqrt(rows.w)
        self.basis = orth(rows._free_columns(form, centre) * self.sw[:, None])
        self.target = self._residual(rows.y * self.sw)
        self.total = float(self.target @ self.target)

    def _residual(self, v: np.ndarray) -> np.ndarray:
        """v (rows, ...) less its projection on the weighted shape-free columns."""
        return v - self.basis @ (self.basis.T @ v)

    def __call__(self, shapes: Sequence[tuple[float, ...]]) -> np.ndarray:
        """The RSS at each shape: (len(shapes),)."""
        conc = np.asarray(self.rows.conc, np.float64)
        columns = np.empty((len(self.target), len(shapes)))
        for j, shape in enumerate(shapes):  # one shape at a time: stacking them first costs more than it saves
            columns[:, j] = self.rows._windowed(shaped_feature(self.form, shape, conc)[..., None])[:, 0]
        columns = self._residual(columns * self.sw[:, None])
        norm = np.sum(columns**2, axis=0)
        explained = np.divide((self.target @ columns) ** 2, norm, out=np.zeros_like(norm), where=norm > 0)
        return np.maximum(self.total - explained, 0.0)


def _bic(rss: float, n: int, k: int) -> float:
    return n * np.log(max(rss, 1e-300) / n) + k * np.log(n)


def _shape_bounds(form: str, lo: float, hi: float) -> np.ndarray:
    """Box of the shape parameters: the curve must bend inside the observed range [lo, hi]."""
    width = max(hi - lo, 1e-9)
    if form == "saturating":  # K, c0
        return np.array([[0.02 * width, 100.0 * width], [lo, hi]])  # large K: the line is its limit
    return np.array([[max(lo, 0.02 * width), hi], [MIN_HILL, MAX_HILL]])  # K, n


def _shape_grid(form: str, bounds: np.ndarray) -> list[tuple[float, float]]:
    (k_lo, k_hi), (b_lo, b_hi) = bounds
    second = np.linspace(b_lo, b_hi, 13) if form == "saturating" else np.array(HILL_EXPONENTS)
    return [(float(k), float(b)) for k in np.geomspace(k_lo, k_hi, 12) for b in second]


def fit_form(rows: PooledRows, form: str) -> GroupCurve:
    """The best curve of one form for the pooled rows."""
    c = rows.conc.ravel()
    centre = float(np.mean(c))
    lo, hi = (float(v) for v in np.percentile(c, [1, 99]))
    n = len(rows.y)
    if form in POLYNOMIAL_DEGREE:
        coef, rss = rows.solve(rows.design(form, (), centre))
        return GroupCurve(form, tuple(coef), (), centre, lo, hi, _bic(rss, n, len(coef)), rss)

    bounds = _shape_bounds(form, lo, hi)
    search = ProjectedRss(rows.subset(SEARCH_MEMBERS), form, centre)
    # the box in the search's own coordinates: a grid point on its edge (K at its largest, the line limit) maps
    # back to itself exactly, where the round trip through the shape could step past the edge by a rounding
    low, high = shape_to_free(form, tuple(bounds[:, 0])), shape_to_free(form, tuple(bounds[:, 1]))

    def rss_of(x: np.ndarray) -> float:
        if np.any(x < low) or np.any(x > high):
            return np.inf
        return float(search([free_to_shape(form, x)])[0])

    grid = _shape_grid(form, bounds)
    on_grid = search(grid)
    start = grid[int(np.argmin(on_grid))]
    res = minimize(rss_of, shape_to_free(form, start), method="Nelder-Mead",
                   options={"xatol": 1e-4, "fatol": 1e-12, "maxiter": 300})
    shape = free_to_shape(form, res.x) if res.fun <= on_grid.min() else start
    coef, rss = rows.solve(rows.design(form, shape, centre))
    return GroupCurve(form, tuple(coef), shape, centre, lo, hi, _bic(rss, n, len(coef) + N_SHAPE[form]), rss)


def choose_form(rows: PooledRows, candidates: tuple[str, ...] = CANDIDATES, threshold: float = 0.3
                ) -> tuple[GroupCurve, dict[str, float]]:
    """The candidate with the lowest BIC among those that explain enough more than the line; every BIC.

    The rows are autocorrelated and hold what the frozen-model corrections did
    not span, so BIC alone prefers curves for small gains on linear data: up to
    1% of the weighted RSS on the default regime, and up to 25% on a small
    regime with a frozen model whose log_k has 10% noise (two seeds). A form
    other than ``linear`` is therefore eligible only if it lowers the line's
    weighted RSS by more than ``threshold`` (relative); the nonlinear example
    regimes gain 64-90%.
    """
    return choose_forms([rows], candidates, threshold)[0]


def choose_forms(groups: Sequence[PooledRows], candidates: tuple[str, ...] = CANDIDATES, threshold: float = 0.3
                 ) -> list[tuple[GroupCurve, dict[str, float]]]:
    """:func:`choose_form` of each group's rows. Every (group, form) fit is its own task in one thread pool as
    wide as the budget (numpy frees the GIL; one BIC thread each), the shaped forms' searches first: they
    take most of the time, and two groups' searches then run side by side."""
    forms = list(dict.fromkeys(("linear", *candidates)))
    tasks = sorted(((g, form) for g in range(len(groups)) for form in forms), key=lambda t: t[1] not in N_SHAPE)
    workers = min(len(tasks), allowed())
    with threadpool_limits(limits=1 if workers > 1 else None), ThreadPoolExecutor(max_workers=workers) as pool:
        fitted = dict(zip(tasks, pool.map(lambda task: fit_form(groups[task[0]], task[1]), tasks), strict=True))
    return [_lowest_eligible({form: fitted[g, form] for form in forms}, threshold) for g in range(len(groups))]


def _lowest_eligible(fits: dict[str, GroupCurve], threshold: float) -> tuple[GroupCurve, dict[str, float]]:
    """The lowest-BIC fit among the line and the forms that lower its weighted RSS by more than ``threshold``
    (relative); and every form's BIC, in the candidates' order."""
    line = fits["linear"].rss
    eligible = [f for form, f in fits.items() if form == "linear" or f.rss < (1.0 - threshold) * line]
    best = min(eligible, key=lambda f: f.bic)
    return best, {form: f.bic for form, f in fits.items()}
