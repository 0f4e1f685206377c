"""Rollout windows of a multi-experiment dataset stay inside one experiment."""

from __future__ import annotations

import numpy as np
import pytest

from sysid.errors import SysidInputError
from sysid.stage2.refine import Windows, within_experiments


def test_windows_never_straddle_experiments_and_skip_transients():
    # experiments start at frames 0, 10 and 20; rollouts of 3 steps cover frames t0..t0+3
    windows = Windows(train=np.arange(0, 27), validation=np.array([6, 7, 16, 17, 26]), horizon=3)
    out = within_experiments(windows, (0, 10, 20), skip=2)
    assert out.train.tolist() == [2, 3, 4, 5, 6, 12, 13, 14, 15, 16, 22, 23, 24, 25, 26]
    assert out.validation.tolist() == [6, 16, 26]
    assert out.horizon == 3


def test_no_window_left_is_one_line_error():
    windows = Windows(train=np.arange(0, 8), validation=np.array([8]), horizon=5)
    with pytest.raises(SysidInputError) as info:
        within_experiments(windows, (0, 5, 10), skip=0)
    assert "\n" not in str(info.value)
