"""The windowed products of rates and shape features, on views of back-to-back windows, are the gathered einsum's."""

from __future__ import annotations

import numpy as np
import pytest

from sysid.stage1.design import window_products, window_runs
from sysid.stage1.residuals import window_frames, window_starts


def test_window_runs_split_where_windows_do_not_follow_each_other():
    assert window_runs(np.array([0, 10, 20, 35, 45, 70]), 10) == [(0, 3), (3, 5), (5, 6)]
    assert window_runs(np.array([], np.int64), 10) == []


@pytest.mark.parametrize("experiments, skip, shift", [((0,), 0, 0), ((0, 130, 260), 7, 0), ((0, 130, 260), 3, 2)])
def test_window_products_are_the_gathered_einsum_to_the_bit(experiments, skip, shift):
    rng = np.random.default_rng(skip)
    rates, values = rng.normal(size=(401, 6)), rng.normal(size=(401, 6, 4)) * (rng.random((401, 6, 4)) < 0.3)
    starts = window_starts(400, 10, 3, experiments, skip) + shift
    frames = window_frames(starts, 10)
    expected = np.einsum("wtj,wtjf->wjf", rates[frames], values[frames])
    assert np.array_equal(window_products(rates, values, starts, 10), expected)
    # a Fortran-ordered input is gathered, as before
    assert np.array_equal(window_products(np.asfortranarray(rates), values, starts, 10), expected)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_window_products_are_the_same_bits_on_any_number_of_threads(threads):
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(threads)
    rates, values = rng.normal(size=(601, 7)), rng.normal(size=(601, 7, 5))
    starts = window_starts(600, 10, 3, (0, 290), 4)
    frames = window_frames(starts, 10)
    expected = np.einsum("wtj,wtjf->wjf", rates[frames], values[frames])
    with threadpool_limits(limits=threads, user_api="blas"):
        got = window_products(rates, values, starts, 10)
    assert np.array_equal(got, expected)
