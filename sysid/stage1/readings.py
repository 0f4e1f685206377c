"""How readings relate to the simulated states in the output-error fit: the noise model.

Absolute noise: a reading is y = c + e, e ~ N(0, sd_i^2), cut at zero; a reading
at zero says only that c + e <= 0 (a censored, or Tobit, likelihood). Relative
(log-normal) noise: y = c exp(e), fitted as log y - log c. Each metabolite's sd
is estimated from the record's roughness, or from the residuals of a fit; the
kind of noise is told by the data (:func:`relative_fits_better`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import special

from sysid.stage1.residuals import metabolite_noise, noise_is_relative, robust_noise

LOG_FLOOR = 1e-12  # relative noise: a simulated state at zero counts as this in the log residual
FAR_CUT = 1e4  # a state this many sds above a reading cut at zero: the cut counts as a plain residual


@dataclass(frozen=True, eq=False)
class Observation:
    """How the readings relate to the simulated states: Euler ``substeps`` per recorded interval; ``relative``
    (log-normal) noise, fitted as residuals of log concentrations, or absolute; ``sd``, each metabolite's noise
    sd on that scale (None: from the record's roughness, :func:`metabolite_noise`)."""

    substeps: int = 1
    relative: bool = False
    sd: np.ndarray | None = None

    def noise(self, concentrations: np.ndarray) -> np.ndarray:
        return metabolite_noise(concentrations, self.relative) if self.sd is None else self.sd


def censored_terms(x: np.ndarray, sd: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For readings cut at zero (reading x + e <= 0, e ~ N(0, sd^2)): the objective -2 log P(x + e <= 0), minus
    half its derivative in x (the place of w r in the squares), and half its second derivative (the place of w),
    all elementwise. At x >> sd they tend to (x / sd)^2, -x / sd^2 and 1 / sd^2: a reading of zero far below the
    model counts as a residual.

    The ratio phi(a) / Phi(-a) (a = x / sd) is sqrt(2 / pi) / erfcx(a / sqrt(2)): computed as exp(log phi(a) -
    log Phi(-a)) it lost its digits from a ~ 1e3 on (78% off at 1e8) and overflowed beyond, where a trial step's
    state runs away. Half the second derivative is mills (mills - a) / sd^2 = (1 - 1 / a^2 + ...) / sd^2; beyond
    a = FAR_CUT its two factors' difference (about 1 / a) is lost to rounding, and it is 1 / sd^2 to 1e-8."""
    a = x / sd
    log_tail = special.log_ndtr(-a)
    mills = np.sqrt(2.0 / np.pi) / special.erfcx(a / np.sqrt(2.0))  # phi(a) / Phi(-a)
    curvature = np.where(a > FAR_CUT, 1.0, mills * (mills - a))
    return -2.0 * log_tail, -mills / sd, curvature / sd**2


class Weighed(NamedTuple):
    """A window sample's readings weighed for a Gauss-Newton pass (each (B, M) unless a float)."""

    wr: np.ndarray  # minus half the objective's derivative in the fitted state: w r for a reading above zero
    w: np.ndarray  # half its second derivative: the reading's weight in the information
    objective: float
    squares: float  # the weighted squares of the readings above zero (rms, convergence)
    factor: np.ndarray | None  # turns d state into d fitted scale (None: 1)


def weighed_residuals(observed: np.ndarray, x: np.ndarray, sd: np.ndarray, relative: bool) -> Weighed:
    """For readings ``observed`` of states ``x`` (B, M) with noise sds ``sd`` (M,): w r and w (their places in
    the Gauss-Newton gradient and information), the objective and the weighted squares of the readings above
    zero (floats), and the factor that turns d x into d (fitted scale) (None: 1) (:class:`Weighed`). Absolute noise:
    r = y - x, a reading cut at zero enters by :func:`censored_terms`; relative: r = log y - log x, factor 1 / x,
    readings at zero left out."""
    cut = observed <= 0
    w = np.broadcast_to(1.0 / sd**2, observed.shape).copy()
    if relative:
        x_pos = np.maximum(x, LOG_FLOOR)
        w[cut] = 0.0
        with np.errstate(divide="ignore"):
            r = np.where(cut, 0.0, np.log(np.where(cut, 1.0, observed)) - np.log(x_pos))
        squares = float(np.sum(w * r * r))
        return Weighed(w * r, w, squares, squares, 1.0 / x_pos)
    r = observed - x
    wr = w * r
    wr[cut] = 0.0
    squares = float(np.sum(wr * r))
    idx = np.nonzero(cut)
    terms, wr[idx], w[idx] = censored_terms(x[idx], sd[idx[1]])
    return Weighed(wr, w, squares + float(np.sum(terms)), squares, None)


def fit_residuals(observed: np.ndarray, fitted: np.ndarray, relative: bool) -> np.ndarray:
    """Readings minus fitted states, on the log scale under relative noise (a state at zero counts as
    LOG_FLOOR); undefined (not finite) at readings cut at zero under relative noise."""
    with np.errstate(all="ignore"):
        return (np.log(observed) - np.log(np.maximum(fitted, LOG_FLOOR))) if relative else observed - fitted


def metabolite_rms(observed: np.ndarray, fitted: np.ndarray, sd: np.ndarray, relative: bool) -> np.ndarray:
    """Each metabolite's rms residual in noise sds over its readings above zero (B, window, M); a state at
    zero under relative noise counts as LOG_FLOOR. NaN for a metabolite without such readings."""
    above = observed > 0
    with np.errstate(all="ignore"):
        squares = np.where(above, (fit_residuals(observed, fitted, relative) / sd) ** 2, 0.0).sum(axis=(0, 1))
        return np.sqrt(squares / above.sum(axis=(0, 1)))


def fitted_noise(observed: np.ndarray, fitted: np.ndarray, relative: bool, window: int) -> np.ndarray:
    """Each metabolite's noise sd (on the fitted scale) from the residuals of a fit over windows of ``window``
    samples (B, window, M): :func:`robust_noise`, over sqrt(1 - 1 / window) (each window's start takes about one
    reading's worth of each metabolite's residuals)."""
    cut = (observed <= 0).reshape(-1, observed.shape[-1])
    r = fit_residuals(observed, fitted, relative)
    return robust_noise(r.reshape(cut.shape) / np.sqrt(1.0 - 1.0 / window), cut)


def relative_fits_better(observed: np.ndarray, fitted: np.ndarray, window: int) -> bool:
    """:func:`noise_is_relative` on a fit's residuals (B, window, M), over the metabolites without readings at
    zero: it tells the kinds apart on sparse records too, where the record's roughness holds the dynamics."""
    positive = np.all(observed > 0, axis=(0, 1))
    o, f = observed[..., positive], fitted[..., positive]
    return noise_is_relative(fitted_noise(o, f, False, window), fitted_noise(o, f, True, window))
