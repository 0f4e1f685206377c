"""Shared fixtures: small simulated regimes with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from sysid.config import Config
from sysid.dataset import write_dataset
from sysid.simulate import simulate

SMALL = {"n_metabolites": 30, "n_reactions": 60, "n_frames": 1500}


def small_config(**simulation) -> Config:
    return Config().replace("simulation", **{**SMALL, **simulation})


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
    from sysid.checkpoint import save_checkpoint
    from sysid.phase1 import model_from_truth

    model = model_from_truth(
        small_sim.network, small_sim.truth.log_k, Config().graph_model,
        log_k_noise=0.1, seed=3, concentrations=small_sim.concentrations,
    )
    path = tmp_path_factory.mktemp("ckpt") / "frozen.pt"
    save_checkpoint(model, path)
    return path


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)
