"""The output error's information in blocks (sysid.stage1.information): the step's float32 sums and the sandwich's
float64 sums are each window's whole J^T W J, and the elimination of the starts on them is that of the whole
blocks."""

import numpy as np
import pytest

from sysid.stage1.information import SandwichInformation, StartBlocks, StepInformation, eliminate, profiled_meat
from sysid.stage1.readings import Weighed


def _steps(rng, n_win, n_met, n_par, n=3):
    """Random sensitivities (B, M, P + M) and reading weights (B, M) of ``n`` recorded samples."""
    return [(rng.standard_normal((n_win, n_met, n_par + n_met)), rng.uniform(0.5, 2.0, (n_win, n_met)))
            for _ in range(n)]


def test_a_start_the_window_does_not_determine_takes_no_step():
    """A window whose start block is singular (a state held at zero has no sensitivity; the information is
    summed in float32, so the block can be slightly indefinite): the elimination drops that direction instead of
    raising, and the rest of the reduced system is that of the windows without it."""
    rng = np.random.default_rng(0)
    n_par, n_met = 3, 2
    root = rng.standard_normal((10, n_par + n_met))
    info = root.T @ root
    info[n_par + 1, :] = info[:, n_par + 1] = 0.0  # the second start: no information
    info[n_par + 1, n_par + 1] = -1e-9  # float32 rounding
    grad = rng.standard_normal(n_par + n_met)
    grad[n_par + 1] = 0.0
    reduced, rhs, parts = eliminate(StartBlocks.of(info[None], n_par), grad[None], 0.0)
    keep = [0, 1, 2, n_par]
    expected, expected_rhs, _ = eliminate(StartBlocks.of(info[np.ix_(keep, keep)][None], n_par), grad[keep][None], 0.0)
    np.testing.assert_allclose(reduced, expected, rtol=1e-8)
    np.testing.assert_allclose(rhs, expected_rhs, rtol=1e-8)
    assert np.all(np.isfinite(parts[0][0])) and parts[0][1][1] == pytest.approx(0.0)


def test_the_step_information_is_the_windows_whole_information_in_blocks():
    """A pass's information, summed in the blocks the elimination of the starts needs (the parameters' block over
    all windows by a symmetric rank-k update), is each window's whole J^T W J to float32 precision, and the
    elimination on it gives the reduced system of the whole blocks."""
    rng = np.random.default_rng(1)
    n_win, n_met, n_par = 4, 3, 5
    steps = _steps(rng, n_win, n_met, n_par)
    summed = StepInformation(n_win, n_par, n_met)
    whole = np.zeros((n_win, n_par + n_met, n_par + n_met))
    for sens, w in steps:
        summed.add(sens, Weighed(wr=w, w=w, objective=0.0, squares=0.0, factor=None))
        whole += np.einsum("bmp,bm,bmq->bpq", sens, w, sens)
    blocks, expected = summed.result(), StartBlocks.of(whole, n_par)
    for got, want in zip(blocks, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(blocks.params, blocks.params.T)
    grad = rng.standard_normal((n_win, n_par + n_met))
    reduced, rhs, _ = eliminate(blocks, grad, 0.0)
    want_reduced, want_rhs, _ = eliminate(StartBlocks.of(whole, n_par), grad, 0.0)
    np.testing.assert_allclose(reduced, want_reduced, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(rhs, want_rhs, rtol=1e-4, atol=1e-4)


def test_a_runaway_window_makes_the_step_refused_without_a_warning(recwarn):
    """Sensitivities beyond float32 (a window whose trajectory runs away) give sums that are not finite, silently;
    the elimination on them raises ValueError, which the Levenberg-Marquardt ladder takes as a refused step."""
    rng = np.random.default_rng(2)
    n_win, n_met, n_par = 3, 2, 4
    summed = StepInformation(n_win, n_par, n_met)
    sens, w = _steps(rng, n_win, n_met, n_par, n=1)[0]
    sens[1] *= 1e40
    summed.add(sens, Weighed(wr=w, w=w, objective=0.0, squares=0.0, factor=None))
    blocks = summed.result()
    assert not np.all(np.isfinite(blocks.params))
    assert not [str(x.message) for x in recwarn if issubclass(x.category, RuntimeWarning)]
    with pytest.raises(ValueError):
        eliminate(blocks, rng.standard_normal((n_win, n_par + n_met)), 0.1)


def test_the_sandwich_in_blocks_is_the_windows_whole_sandwich():
    """The float64 bread and meat in blocks are each window's whole (to rounding), and the meat profiled from its
    blocks is the sum over windows of P_b Meat_b P_b^T with P_b = [I, -(D_b^-1 B_b^T)^T] from the bread."""
    rng = np.random.default_rng(2)
    n_win, n_met, n_par = 4, 3, 5
    summed = SandwichInformation(n_win, n_par, n_met)
    bread = np.zeros((n_win, n_par + n_met, n_par + n_met))
    meat = np.zeros_like(bread)
    for sens, w in _steps(rng, n_win, n_met, n_par):
        wr = w * rng.standard_normal(w.shape)
        summed.add(sens, Weighed(wr=wr, w=w, objective=0.0, squares=0.0, factor=None))
        bread += np.einsum("bmp,bm,bmq->bpq", sens, w, sens)
        meat += np.einsum("bmp,bm,bmq->bpq", sens, wr**2, sens)
    bread_blocks, meat_blocks = summed.result()
    for got, want in zip((*bread_blocks, *meat_blocks), (*StartBlocks.of(bread, n_par), *StartBlocks.of(meat, n_par)),
                         strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    _, _, parts = eliminate(bread_blocks, rng.standard_normal((n_win, n_par + n_met)), 0.0)
    want = sum(np.hstack([np.eye(n_par), -solved.T]) @ m @ np.hstack([np.eye(n_par), -solved.T]).T
               for m, (solved, _) in zip(meat, parts, strict=True))
    np.testing.assert_allclose(profiled_meat(meat_blocks, parts), want, rtol=1e-10, atol=1e-10)
