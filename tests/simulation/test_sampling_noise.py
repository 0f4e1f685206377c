"""Sparse recording (simulation.record_every) and the two measurement-noise kinds."""

import json

import numpy as np
import pytest

from sysid.errors import SysidInputError
from sysid.io.dataset import load_dataset, write_dataset
from sysid.simulation.euler import simulate
from tests.helpers import small_config


def test_record_every_keeps_every_kth_euler_state(small_sim):
    sparse = simulate(small_config(record_every=10).simulation)
    np.testing.assert_array_equal(sparse.concentrations, small_sim.concentrations[::10])
    np.testing.assert_array_equal(sparse.dcdt, small_sim.dcdt[::10])  # the exact dc/dt at the recorded states
    assert sparse.concentrations.shape[0] == small_config().simulation.n_frames // 10 + 1
    assert sparse.delta_t == pytest.approx(10 * small_sim.delta_t)


def test_truth_json_records_sampling_and_noise(tmp_path):
    cfg = small_config(n_frames=200, record_every=4).simulation
    write_dataset(simulate(cfg, 0.05, noise_kind="relative"), tmp_path)
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert truth["record_every"] == 4 and truth["delta_t"] == pytest.approx(0.4)
    assert truth["measurement_noise_level"] == 0.05 and truth["measurement_noise_kind"] == "relative"
    data = load_dataset(tmp_path)
    assert data.delta_t == pytest.approx(0.4) and data.n_frames == 50 and not data.euler_steps


def test_relative_noise_is_log_normal(small_sim):
    noisy = simulate(small_config().simulation, 0.05, noise_kind="relative")
    ratio = np.log(noisy.concentrations / small_sim.concentrations)
    assert abs(ratio.mean()) < 2e-3 and ratio.std() == pytest.approx(0.05, rel=0.02)
    assert np.all(noisy.concentrations > 0)
    fd = (noisy.concentrations[1:] - noisy.concentrations[:-1]) / np.float32(noisy.delta_t)
    np.testing.assert_allclose(noisy.dcdt[:-1], fd, rtol=1e-6)


def test_absolute_noise_unchanged_by_the_kind_key(small_sim):
    a = simulate(small_config(n_frames=200).simulation, 0.01)
    b = simulate(small_config(n_frames=200).simulation, 0.01, noise_kind="absolute")
    np.testing.assert_array_equal(a.concentrations, b.concentrations)
    sd = (a.concentrations - small_sim.concentrations[:201])[a.concentrations > 0].std()
    assert sd == pytest.approx(0.01, rel=0.05)


def test_bad_sampling_and_noise_kind_are_one_line_errors():
    with pytest.raises(SysidInputError, match="record_every"):
        simulate(small_config(record_every=7).simulation)  # 1500 is not a multiple of 7
    with pytest.raises(SysidInputError, match="measurement_noise_level/kind"):
        small_config().replace("training", measurement_noise_kind="multiplicative")
