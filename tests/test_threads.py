"""Threads of batched work (sysid.threads): the budget follows the BLAS limit, and results do not depend on it."""

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from sysid.stage1.forms import PooledRows, choose_form, choose_forms
from sysid.stage1.residuals import window_sum
from sysid.threads import allowed, pools_only, torch_threads


def test_the_budget_is_the_blas_limit_and_torch_threads_are_restored():
    with threadpool_limits(limits=1):
        assert allowed() == 1
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_pools_only_keeps_the_budget_for_the_pools_and_gives_blas_one_thread():
    from threadpoolctl import threadpool_info

    def blas() -> list[int]:
        return [lib["num_threads"] for lib in threadpool_info() if lib.get("user_api") == "blas"]

    with threadpool_limits(limits=2):
        with pools_only():
            assert allowed() == 2 and set(blas()) == {1}
        assert allowed() == 2 and set(blas()) == {2}


def test_the_windowed_regression_is_the_same_on_one_thread_and_on_two(small_dir, small_frozen):
    """Its BLAS calls run on one thread and its pools' sums do not depend on their width: the same bits."""
    from sysid.io.checkpoint import load_checkpoint
    from sysid.io.dataset import load_dataset
    from sysid.stage1.regression import HomeostasisRegression
    from sysid.stage1.residuals import evaluate_frozen

    data = load_dataset(small_dir)
    frozen = evaluate_frozen(load_checkpoint(small_frozen).freeze_reactions(), data.concentrations)
    fits = []
    for threads in (1, 2):
        with threadpool_limits(limits=threads):
            fits.append(HomeostasisRegression(window=10, ramp=1).fit(data, frozen))
    for name in ("slope_", "offset_", "slope_se_", "reaction_scale_", "shape_coef_", "joint_cov_"):
        assert np.array_equal(getattr(fits[0], name), getattr(fits[1], name)), name


def _group_rows(law, seed: int) -> PooledRows:
    """Six members' windowed rows of the regulation ``law`` (noise-free)."""
    rng = np.random.default_rng(seed)
    conc = np.maximum(5.0 + 4.0 * np.sin(0.01 * np.arange(801)[:, None] * (1 + np.arange(6)) + rng.uniform(0, 6, 6)),
                      0.0)
    starts = np.arange(0, 790, 10)
    windowed = 0.1 * window_sum(law(conc), starts, 10)
    win, member = np.meshgrid(np.arange(len(starts)), np.arange(6), indexing="ij")
    return PooledRows(conc, windowed[win.ravel(), member.ravel()], member.ravel(), win.ravel(),
                      np.ones(win.size), starts, 10, 1, False, 0.1)


def test_the_curve_forms_are_the_same_on_one_thread_and_on_two():
    """choose_form fits its forms in a thread pool as wide as the budget: the chosen curve and every BIC are
    the same to the bit with one thread as with two."""
    rows = _group_rows(lambda c: -0.6 * np.tanh((c - 5.0) / 2.0), 0)  # a saturating law
    with threadpool_limits(limits=1):
        one = choose_form(rows)
    with threadpool_limits(limits=2):
        two = choose_form(rows)
    assert one[0] == two[0] and one[1] == two[1]
    assert one[0].form != "linear"  # the pool did fit the shaped forms


def test_several_groups_forms_in_one_pool_are_each_groups_own():
    """choose_forms runs every (group, form) fit in one pool: each group's curve and BICs are to the bit those
    of choose_form on that group alone."""
    groups = [_group_rows(lambda c: -0.6 * np.tanh((c - 5.0) / 2.0), 0), _group_rows(lambda c: 0.3 - 0.1 * c, 1)]
    with threadpool_limits(limits=2):
        together = choose_forms(groups)
    alone = [choose_form(rows) for rows in groups]
    assert together == alone
    assert [curve.form for curve, _ in together][0] != "linear"


def test_shape_features_in_blocks_on_two_threads_are_those_in_one_block(monkeypatch):
    """The frames' features, filled block by block on two threads, are the same to the bit as in one block."""
    from sysid.network import Network
    from sysid.stage1 import design

    rng = np.random.default_rng(3)
    S = np.array([[-1, 0, 1], [1, -1, 0], [0, 1, -1], [0, 0, 0]], float)
    substrates = np.array([[1, 0, 0], [0, 2, 0], [0, 0, 1], [0, 0, 0]], float)
    network = Network(S=S, substrates=substrates)
    conc, aggregate = rng.uniform(0.1, 5.0, (50, 4)), rng.normal(size=(50, 3))
    whole = design.shape_features(conc, aggregate, network, 5).values
    monkeypatch.setattr(design, "FEATURE_FRAMES", 5)  # 10 blocks: threaded
    with threadpool_limits(limits=2):
        blocks = design.shape_features(conc, aggregate, network, 5).values
    np.testing.assert_array_equal(blocks, whole)
    assert whole.shape == (50, 3, 3 * 4) and np.any(whole != 0)
