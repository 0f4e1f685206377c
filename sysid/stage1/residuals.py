"""Residuals of the frozen reaction model: what homeostasis (and the model's errors) must explain.

Single-step form: r_i(t) = y_i(t) - R_i(c(t)), with R the frozen reaction part.
Windowed (integral) form over W Euler steps starting at t0:
    d_i(w) = c_i(t0 + W) - c_i(t0) - dt * sum_{t=t0}^{t0+W-1} R_i(c(t))
which needs no derivative of noisy data. With a ramp of m frames (weak form
with a trapezoidal test function) the same identity is averaged over the m
windows starting at t0, t0+1, ..., t0+m-1: each end of the window is then a
mean of m noisy concentrations, and the identity stays exact for Euler data. Rows whose window touches a clamped
zero concentration break the Euler relation and are masked, on clean data (ramp 1) only: under measurable
noise a recorded zero is mostly a noisy reading cut at 0, and masking windows by their noise would select them
by it (a bias).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.signal import savgol_filter

from sysid.config import Stage1Config
from sysid.frozen import FrozenModel
from sysid.io.dataset import Dataset
from sysid.model import MetabolismModel
from sysid.threads import allowed, torch_threads

FRAME_BATCH = 1024
NOISE_FILTER_LENGTH = 7  # cubic Savitzky-Golay over 7 frames follows the dynamics, not the noise
MAD_TO_SD = 1.4826  # median absolute deviation to standard deviation, for Gaussian data
NEGLIGIBLE_NOISE = 0.1  # relative noise below this share of the reference needs no ramp


@dataclass(frozen=True, eq=False)
class FrozenEvaluation:
    """The frozen model evaluated on every frame (float64)."""

    rates: np.ndarray  # (n_frames + 1, n_reactions)
    aggregate: np.ndarray  # (n_frames + 1, n_reactions), agg_j before softplus
    reaction: np.ndarray  # (n_frames + 1, n_metabolites), sum_j S_ij v_j


@dataclass(frozen=True, eq=False)
class Residuals:
    single_step: np.ndarray  # (n_frames + 1, n_metabolites): y - R
    window: int
    ramp: int  # frames averaged at each end (1: plain windows)
    starts: np.ndarray  # (n_windows,) first frame of each window
    delta: np.ndarray  # (n_windows, n_metabolites): c(t0 + W) - c(t0)
    integrated_reaction: np.ndarray  # (n_windows, n_metabolites): dt * sum R over the window
    valid: np.ndarray  # (n_windows, n_metabolites) bool: no clamped zero inside the window

    @property
    def windowed(self) -> np.ndarray:
        """Windowed residual in rate units: (delta - integrated reaction) / (W dt) is not applied; raw."""
        return self.delta - self.integrated_reaction


@torch.no_grad()
def evaluate_frozen(model: FrozenModel, concentrations: np.ndarray, times: np.ndarray | None = None
                    ) -> FrozenEvaluation:
    """Rates, aggregates and reaction part of the frozen model on all frames, batched.

    Any frozen model of :mod:`sysid.frozen` is accepted; ``times`` (per frame) reach models whose laws read time.
    """
    if not isinstance(model, MetabolismModel):
        from sysid.frozen import evaluate_rate_model

        return FrozenEvaluation(*evaluate_rate_model(model, concentrations, times))
    rates, aggs, reaction = [], [], []
    with torch_threads(allowed()):  # large batches: the cores help (the CLI sets one thread for small steps)
        for start in range(0, len(concentrations), FRAME_BATCH):
            c = torch.as_tensor(concentrations[start : start + FRAME_BATCH], dtype=model.dtype, device=model.device)
            agg = model.aggregate(c)
            v = model.rates(c, model.rate_features(c, agg))
            rates.append(v.double().cpu())
            aggs.append(agg.double().cpu())
            reaction.append(model.apply_stoichiometry(v).double().cpu())
    return FrozenEvaluation(torch.cat(rates).numpy(), torch.cat(aggs).numpy(), torch.cat(reaction).numpy())


def _roughness(c: np.ndarray) -> tuple[np.ndarray, float]:
    """What a local cubic fit leaves over of each series (frames away from the ends), and sqrt(1 - w), w the
    filter's weight on the centre frame: the filter keeps part of the noise, the rough part is that much smaller."""
    n = NOISE_FILTER_LENGTH
    rough = (c - savgol_filter(c, n, 3, axis=0, mode="nearest"))[n:-n]  # the ends, cut here, need no fit
    centre_weight = savgol_filter(np.eye(n)[n // 2], n, 3)[n // 2]
    return rough, float(np.sqrt(1.0 - centre_weight))


def estimate_noise(concentrations: np.ndarray) -> float:
    """Measurement-noise sd of the concentrations: robust scale of what a local cubic fit leaves over."""
    if len(concentrations) < 3 * NOISE_FILTER_LENGTH:
        return 0.0
    rough, kept = _roughness(concentrations.astype(np.float64))
    return float(MAD_TO_SD * np.median(np.abs(rough)) / kept)


def metabolite_noise(concentrations: np.ndarray, relative: bool = False) -> np.ndarray:
    """Each metabolite's measurement-noise sd, as :func:`estimate_noise` per column, from its positive readings
    only (readings cut at zero are censored); with ``relative``, of the log readings (log-normal noise: the sd
    of log c). Floored as :func:`robust_noise` says."""
    n = NOISE_FILTER_LENGTH
    c = concentrations.astype(np.float64)
    cut = c <= 0
    with np.errstate(all="ignore"):
        values = np.log(np.where(cut, np.nan, c)) if relative else c  # a NaN spoils its neighbours' roughness
    rough, kept = _roughness(values)
    return robust_noise(rough / kept, cut[n:-n])


def robust_noise(residuals: np.ndarray, cut: np.ndarray) -> np.ndarray:
    """Per column, the noise sd from ``residuals`` (rows: readings) that are pure noise: MAD scale of those not
    ``cut`` (or NaN), floored at 1e-3 of the median over columns, and at that median itself in a column with cut
    readings: the cut shrinks the spread of the readings left, so their own estimate is too small."""
    with np.errstate(all="ignore"):
        sd = MAD_TO_SD * np.nanmedian(np.abs(np.where(cut, np.nan, residuals)), axis=0)
    floor = 1e-3 * max(float(np.nanmedian(sd)) if np.isfinite(sd).any() else 0.0, 1e-12)
    sd = np.where(np.isfinite(sd), np.maximum(sd, floor), floor)
    return np.where(np.any(cut, axis=0), np.maximum(sd, np.median(sd)), sd)


def noise_is_relative(absolute_sd: np.ndarray, relative_sd: np.ndarray) -> bool:
    """Whether measurement noise looks relative (log-normal, sd proportional to the concentration) rather than
    absolute, from each metabolite's noise sd estimated both ways (of the readings, and of their logs): relative
    when the log-scale sds are more alike across metabolites (a smaller interquartile range of their logs).
    Metabolites at different levels tell the two apart; give only metabolites without readings at zero."""
    if len(absolute_sd) < 4:
        return False
    spread = [np.subtract(*np.percentile(np.log(sd), [75, 25])) for sd in (absolute_sd, relative_sd)]
    return bool(spread[1] < spread[0])


def record_noise_is_relative(concentrations: np.ndarray) -> bool:
    """:func:`noise_is_relative` from the record's roughness (:func:`metabolite_noise`), over the metabolites
    whose readings are all above zero. On sparse records the roughness holds the dynamics too: the output-error
    fit checks the answer on its residuals."""
    positive = np.all(concentrations > 0, axis=0)
    if len(concentrations) < 3 * NOISE_FILTER_LENGTH:
        return False
    c = concentrations[:, positive]
    return noise_is_relative(metabolite_noise(c), metabolite_noise(c, relative=True))


def integral_form(concentrations: np.ndarray, cfg: Stage1Config, noise_sd: float | None = None) -> tuple[int, int]:
    """Window length and ramp for these data, from one estimate of the relative measurement noise.

    Window: ``cfg.window``, or (0) one that grows from ``min_window`` in proportion to sigma / median(c),
    since endpoint noise enters the windowed residual as sqrt(2) sigma / (W dt). Ramp: ``cfg.ramp`` when
    the noise is measurable, else 1 (plain windows are exact for Euler data and cheaper). ``noise_sd``: the
    :func:`estimate_noise` of these concentrations, when already computed.
    """
    relative = relative_noise(concentrations, noise_sd)
    ramp = cfg.ramp if measurable_noise(relative, cfg) else 1
    window = cfg.window
    if window <= 0:
        chosen = int(np.ceil(cfg.min_window * relative / cfg.reference_relative_noise))
        longest = max_window(len(concentrations) - 1, ramp)
        window = int(min(max(chosen, cfg.min_window), cfg.max_window, max(longest, 1)))
    return window, ramp


def relative_noise(concentrations: np.ndarray, noise_sd: float | None = None) -> float:
    """Measurement-noise sd (``noise_sd``, default estimated) relative to the median concentration."""
    sd = estimate_noise(concentrations) if noise_sd is None else noise_sd
    return sd / max(float(np.median(concentrations)), 1e-12)


def measurable_noise(relative: float, cfg: Stage1Config) -> bool:
    """Whether a record with this relative noise is noisy: above NEGLIGIBLE_NOISE times ``reference_relative_noise``."""
    return relative > NEGLIGIBLE_NOISE * cfg.reference_relative_noise


def max_window(n_frames: int, ramp: int, n_windows: int = 3) -> int:
    """The longest window of which ``n_windows`` (with their ramp-shifted copies) fit in ``n_frames`` steps."""
    return (n_frames - ramp + 1) // n_windows


def window_starts(n_frames: int, window: int, ramp: int = 1, experiment_starts=(0,), skip: int = 0) -> np.ndarray:
    """Windows of ``window`` steps every ``window`` frames, whose ramp-shifted copies end by the last frame of
    their experiment: a window never straddles two experiments. The first ``skip`` frames of each are left out."""
    bounds = [*experiment_starts, n_frames + 1]
    parts = [np.arange(s + skip, e - 1 - window - ramp + 2, window)
             for s, e in zip(bounds[:-1], bounds[1:], strict=True)]
    return np.concatenate(parts).astype(np.int64)


def window_frames(starts: np.ndarray, window: int) -> np.ndarray:
    """Frame indices t0..t0+W-1 of each window: (n_windows, W)."""
    return np.asarray(starts)[:, None] + np.arange(window)[None, :]


def window_sum(per_frame: np.ndarray, starts: np.ndarray, window: int, ramp: int = 1,
               trapezoid: bool = False) -> np.ndarray:
    """Sum over frames t0+a..t0+a+W-1 of each window (axis 0), averaged over the shifts a < ramp.

    With ``trapezoid`` the trapezoidal rule (half weights on frames t0+a and t0+a+W): exact to O(dt^2) for
    data recorded from a continuous trajectory; the plain sum is exact for Euler-stepped data.
    """
    frames = window_frames(starts, window)
    total = sum(per_frame[frames + a].sum(axis=1) for a in range(ramp))
    if trapezoid:
        total = total + sum(0.5 * (per_frame[starts + a + window] - per_frame[starts + a]) for a in range(ramp))
    return total / ramp


def ramp_mean(per_frame: np.ndarray, frames: np.ndarray, ramp: int) -> np.ndarray:
    """Mean of per-frame values over frames f..f+ramp-1 for each f in ``frames``."""
    return sum(per_frame[frames + a] for a in range(ramp)) / ramp


def compute_residuals(data: Dataset, frozen: FrozenEvaluation, window: int, ramp: int = 1, *, skip: int = 0,
                      trapezoid: bool = False) -> Residuals:
    """Windowed residuals of each experiment of the dataset (first ``skip`` frames of each left out)."""
    conc = data.concentrations.astype(np.float64)
    starts = window_starts(data.n_frames, window, ramp, data.experiment_starts, skip)
    zero = (data.concentrations == 0).astype(np.float64)
    # a window is clean for metabolite i if no frame t0..t0+W+ramp-1 is a clamped zero
    touched = window_sum(zero, starts, window, ramp) + ramp_mean(zero, starts + window, ramp)
    return Residuals(
        single_step=data.dcdt.astype(np.float64) - frozen.reaction,
        window=window,
        ramp=ramp,
        starts=starts,
        delta=ramp_mean(conc, starts + window, ramp) - ramp_mean(conc, starts, ramp),
        integrated_reaction=data.delta_t * window_sum(frozen.reaction, starts, window, ramp, trapezoid),
        valid=(touched == 0) | (ramp > 1),
    )


def summary(data: Dataset, frozen: FrozenEvaluation, res: Residuals, true_homeostasis: np.ndarray | None = None):
    """Mean absolute magnitudes (rate units) of the parts of dc/dt."""
    rows = {
        "observed dc/dt": float(np.mean(np.abs(data.dcdt))),
        "frozen reaction part": float(np.mean(np.abs(frozen.reaction))),
        "single-step residual": float(np.mean(np.abs(res.single_step))),
        f"windowed residual (W={res.window})": float(
            np.mean(np.abs(res.windowed[res.valid])) / (res.window * data.delta_t)
        ),
    }
    if true_homeostasis is not None:
        rows["true homeostasis"] = float(np.mean(np.abs(true_homeostasis)))
    return rows
