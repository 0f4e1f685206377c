"""The c^2 check and the polynomial library agree with pysindy, their reference, to the bit and the decision."""

from __future__ import annotations

import warnings

import numpy as np
import pysindy as ps
import pytest

from sysid.stage1.quadratic import needs_quadratic, polynomial_library, stlsq_keeps_quadratic, windowed_library
from sysid.stage1.residuals import window_starts, window_sum


def _pysindy_library(x: np.ndarray, degree: int) -> np.ndarray:
    library = ps.PolynomialLibrary(degree=degree, include_bias=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(library.fit_transform(np.asarray(x, np.float64).reshape(-1, 1)))


@pytest.mark.parametrize("degree", [1, 2, 3])
def test_polynomial_library_is_pysindys_to_the_bit(degree):
    x = np.random.default_rng(degree).normal(3.0, 2.0, size=(300, 7))
    ours = polynomial_library(x, degree)
    assert ours.shape == (300, 7, degree + 1)
    assert np.array_equal(ours.reshape(-1, degree + 1), _pysindy_library(x, degree))


@pytest.mark.parametrize("ramp, trapezoid", [(1, False), (3, True)])
def test_windowed_library_is_the_window_sums_of_pysindys_library(ramp, trapezoid):
    c = 2.0 + np.sin(np.arange(601) * 0.03) + 0.1 * np.random.default_rng(0).normal(size=601)
    starts = window_starts(600, 10, ramp)
    expected = 0.1 * window_sum(_pysindy_library(c, 2), starts, 10, ramp, trapezoid)
    assert np.array_equal(windowed_library(c, starts, 10, 0.1, ramp, trapezoid), expected)


def _library(rng, n_rows: int = 200) -> np.ndarray:
    c = 2.0 + np.cumsum(rng.normal(0.0, 0.05, size=(n_rows, 10)), axis=0)
    return polynomial_library(c, 2).sum(axis=1)  # windowed (1, c, c^2)


@pytest.mark.parametrize("seed", range(6))
def test_the_direct_answer_is_stlsqs_near_and_far_from_the_threshold(seed):
    rng = np.random.default_rng(seed)
    theta = _library(rng)
    threshold = 0.05
    normalised = theta / np.linalg.norm(theta, axis=0)
    for share in (0.0, 0.01, 0.04, 0.049, 0.0499999, 0.05, 0.0500001, 0.051, 0.06, 0.3, 1.0):
        base = normalised @ np.array([0.7, -0.5, 0.0]) + 1e-3 * rng.normal(size=len(theta))
        for sign in (1.0, -1.0):
            target = base + sign * share * np.linalg.norm(base) * normalised[:, 2]
            assert needs_quadratic(theta, target, threshold) == stlsq_keeps_quadratic(theta, target, threshold), \
                (share, sign)
    # degenerate libraries go to pysindy as they are
    flat = theta.copy()
    flat[:, 2] = 2.0 * flat[:, 1]
    target = flat @ np.array([0.2, -0.1, 0.0])
    assert needs_quadratic(flat, target, threshold) == stlsq_keeps_quadratic(flat, target, threshold)
