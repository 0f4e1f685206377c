"""Output error over windows (sysid.stage1.output_error): on a noisy record it finds the slopes from a poor start,
to within standard errors that hold, and says when it has not converged."""

import dataclasses
import logging

import numpy as np
import pytest

from sysid.config import Config, Stage1Config
from sysid.errors import SysidInputError
from sysid.io.dataset import Dataset
from sysid.phase1.from_truth import model_from_truth
from sysid.simulation import simulate
from sysid.stage1.output_error import MAX_RMS, refine_by_output_error

REGIME = {"n_metabolites": 18, "n_reactions": 36, "n_frames": 600, "seed": 1}
NOISE = 0.01
WINDOWS = (10, 20)


@pytest.fixture(scope="module")
def noisy():
    cfg = Config().replace("simulation", **REGIME)
    sim = simulate(cfg.simulation, NOISE)
    model = model_from_truth(sim.network, sim.truth.log_k, cfg.graph_model, log_k_noise=0.1, seed=3,
                             concentrations=sim.concentrations)
    data = Dataset(sim.concentrations, sim.dcdt, sim.positions, sim.network, sim.delta_t, euler_steps=True)
    t = sim.truth
    return data, model, -t.lambdas[t.types], t.lambdas[t.types] * t.baselines[t.types]


def test_output_error_recovers_slopes_from_a_poor_start(noisy):
    data, model, slope, offset = noisy
    rng = np.random.default_rng(0)
    start_slope = slope * (1 + 0.5 * rng.standard_normal(len(slope)))
    start_offset = offset * (1 + 0.5 * rng.standard_normal(len(slope)))
    fit = refine_by_output_error(data, model, start_slope, start_offset, WINDOWS)
    assert fit is not None
    assert 0.85 < fit.rms_ < 1.1  # the residuals are the noise (seeds 1-3: 0.95-0.98)
    before = np.median(np.abs(start_slope / slope - 1))
    after = np.median(np.abs(fit.slope_ / slope - 1))
    assert after < 0.6 * before  # seeds 1-3: 0.29 -> 0.09-0.14
    z = np.abs(fit.slope_ - slope) / fit.slope_se_
    assert np.mean(z < 1.96) >= 0.8 and z.max() < 4  # seeds 1-3: 0.94-1.00, largest z 1.5-2.1
    assert fit.joint_cov_.shape == (len(slope), 2, 2) and np.all(fit.offset_se_ > 0)
    assert fit.design_matrix_.shape[1] == 2 * len(slope) + data.network.n_reactions


def test_output_error_that_does_not_fit_keeps_stage_1(noisy, caplog):
    """The record played backwards: no correction of the frozen model runs it, the residuals stay far above the
    noise: None and a warning."""
    data, model, slope, offset = noisy
    wrong = dataclasses.replace(data, concentrations=np.ascontiguousarray(data.concentrations[::-1]))
    with caplog.at_level(logging.WARNING, logger="sysid.stage1.output_error"):
        assert refine_by_output_error(wrong, model, slope, offset, (10,)) is None
    assert "did not converge" in caplog.text
    assert MAX_RMS > 1  # the threshold sits above the noise level the converged fits reach


def test_output_error_windows_are_validated():
    with pytest.raises(SysidInputError, match="output_error_windows"):
        Stage1Config(output_error_windows=(1, 10))
