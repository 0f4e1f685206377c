"""The frozen-model misfit statistic on residuals with known autocovariance."""

from __future__ import annotations

import numpy as np
import pytest

from sysid.stage1.misfit import smooth_residual

W = 10
N = 800


def _starts(n_experiments: int = 4) -> np.ndarray:
    per = N // n_experiments
    return np.concatenate([k * 10_000 + W * np.arange(per) for k in range(n_experiments)])


def test_white_and_end_point_noise_are_not_misfit():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=N)
    assert smooth_residual(rng.normal(size=N), _starts(), W, reference) == 0.0
    # measurement noise at shared window ends: e_k = n_(k+1) - n_k, lag-1 correlation -1/2, none beyond
    ends = rng.normal(size=N + 1)
    assert smooth_residual(np.diff(ends), _starts(1), W, reference) == 0.0


@pytest.mark.parametrize("period", [200.0, 8.0])  # slow drift; oscillation with no lag-2 correlation
def test_smooth_and_oscillating_residuals_give_their_amplitude(period):
    """A sinusoid of amplitude a has autocovariance a^2/2 cos(2 pi lag / period): the largest over lags 2..6
    is a^2/2 (cos ~ 1 for the slow drift, cos(pi) = -1 at lag 4 for period 8); reference sd 1 -> a / sqrt 2."""
    k = np.arange(N)
    amplitude = 0.3
    e = amplitude * np.sin(2 * np.pi * k / period)
    reference = np.where(k % 2 == 0, 1.0, -1.0)  # sd exactly 1
    stat = smooth_residual(e, W * k, W, reference)
    assert stat == pytest.approx(amplitude / np.sqrt(2), rel=0.02)


def test_pairs_never_straddle_experiments_or_gaps():
    """Each experiment alone is too short to give a pair at lag 2 and beyond: no evidence, statistic 0."""
    starts = np.concatenate([k * 10_000 + W * np.arange(2) for k in range(N // 2)])
    e = np.ones(len(starts))
    assert smooth_residual(e, starts, W, np.arange(len(starts), dtype=float)) == 0.0


def test_a_smooth_residual_where_the_model_explains_nothing_is_an_infinite_misfit():
    k = np.arange(N)
    drift = 0.3 * np.sin(2 * np.pi * k / 200.0)
    assert smooth_residual(drift, W * k, W, np.zeros(N)) == np.inf
    assert smooth_residual(np.zeros(N), W * k, W, np.zeros(N)) == 0.0
