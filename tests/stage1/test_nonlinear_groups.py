"""Curve-based groups of stage 1: a curved group holding two laws is split, one law is left whole."""

from types import SimpleNamespace

import numpy as np

from sysid.simulation.homeostasis import HomeostasisLaw
from sysid.stage1.nonlinear import fit_group_forms
from sysid.stage1.residuals import window_sum

DT, WINDOW, N_PER_LAW = 0.1, 10, 10
# two Hill laws whose per-metabolite lines overlap: set points 4.3 and 3.6
LAWS = HomeostasisLaw("hill", {"vmax": np.array([0.010, 0.006]), "scale": np.array([5.0, 3.0]),
                               "hill": np.array([1.5, 4.0]), "decay": np.array([0.0015, 0.001])})


def _regression(types: np.ndarray, seed: int = 0) -> SimpleNamespace:
    """The parts of a fitted HomeostasisRegression that the curve grouping reads: each metabolite's windowed
    rows of h_t(c) on a sine trajectory around its own level (plus 1% noise), and its (slope, offset) line."""
    rng = np.random.default_rng(seed)
    n = len(types)
    t = np.arange(1201) * DT
    level, amp = rng.uniform(1.5, 7.0, n), rng.uniform(0.5, 3.0, n)
    conc = np.maximum(level + amp * np.sin(0.03 * t[:, None] * rng.uniform(0.5, 2.0, n) + rng.uniform(0, 6, n)), 0.0)
    h = np.column_stack([LAWS.curve(k, conc[:, i]) for i, k in enumerate(types)])
    starts = np.arange(0, 1200 - WINDOW, WINDOW)
    rows = DT * window_sum(h, starts, WINDOW)
    rows += 0.01 * np.std(rows) * rng.normal(size=rows.shape)
    win, met = (a.ravel() for a in np.meshgrid(np.arange(len(starts)), np.arange(n), indexing="ij"))
    design = DT * window_sum(np.stack([conc, np.ones_like(conc)], axis=-1).reshape(len(t), -1), starts, WINDOW)
    design = design.reshape(len(starts), n, 2)
    lines = np.array([np.linalg.lstsq(design[:, i], rows[:, i], rcond=None)[0] for i in range(n)])
    return SimpleNamespace(rows_met_=met, clean_=rows[win, met], rows_win_=win, met_weights_=np.ones(n),
                           starts_=starts, window=WINDOW, ramp=1, trapezoid=False, slope_=lines[:, 0],
                           offset_=lines[:, 1], conc=conc)


def test_a_curved_group_holding_two_laws_is_split_into_them():
    types = np.repeat([0, 1], N_PER_LAW)
    reg = _regression(types)
    merged = np.zeros(len(types), int)
    forms = fit_group_forms(reg, reg.conc, merged, DT, max_groups=4, min_group_size=3)
    assert len(forms.curves) == 2, forms.labels
    assert all(c.form == "rational" for c in forms.curves)
    agree = np.mean(forms.labels == types)
    assert max(agree, 1 - agree) == 1.0, forms.labels


def test_one_law_is_not_split_and_max_groups_one_never_splits():
    one = np.zeros(2 * N_PER_LAW, int)
    reg = _regression(one, seed=1)
    forms = fit_group_forms(reg, reg.conc, one, DT, max_groups=4, min_group_size=3)
    assert len(forms.curves) == 1 and np.all(forms.labels == 0)
    two = _regression(np.repeat([0, 1], N_PER_LAW))
    assert len(fit_group_forms(two, two.conc, one, DT, max_groups=1, min_group_size=3).curves) == 1
