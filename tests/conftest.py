"""Shared fixtures: small simulated regimes with known answers."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from sysid.config import Config
from sysid.io.dataset import write_dataset
from sysid.simulation import simulate
from tests.helpers import small_config


def pytest_configure(config) -> None:
    """No test writes outside its tmp folders: HOME and the sysid cache point into a fresh temporary folder."""
    home = Path(tempfile.mkdtemp(prefix="sysid-tests-home-"))
    os.environ["HOME"] = str(home)
    os.environ["SYSID_CACHE"] = str(home / "cache")
    os.environ["MPLCONFIGDIR"] = str(home / "mpl")


@pytest.fixture(scope="session")
def small_sim():
    return simulate(small_config().simulation)


@pytest.fixture(scope="session")
def small_dir(tmp_path_factory, small_sim):
    folder = tmp_path_factory.mktemp("small")
    write_dataset(small_sim, folder)
    return folder


@pytest.fixture(scope="session")
def small_frozen(tmp_path_factory, small_sim):
    """Frozen model from the truth with log_k noise 0.1, saved as a checkpoint."""
    from sysid.io.checkpoint import save_checkpoint
    from sysid.phase1.from_truth import model_from_truth

    model = model_from_truth(
        small_sim.network, small_sim.truth.log_k, Config().graph_model,
        log_k_noise=0.1, seed=3, concentrations=small_sim.concentrations,
    )
    path = tmp_path_factory.mktemp("ckpt") / "frozen.pt"
    save_checkpoint(model, path)
    return path
