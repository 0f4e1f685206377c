"""Phase 1: the frozen reaction model from the truth and from training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sysid.config import Config
from sysid.metrics import rate_constants_r2
from sysid.phase1 import model_from_truth
from sysid.simulate import simulate

TINY = {"n_metabolites": 12, "n_reactions": 16, "n_frames": 300}


@pytest.fixture(scope="module")
def tiny_sim():
    cfg = Config().replace("simulation", **TINY)
    return simulate(cfg.simulation)


def mass_action(sim) -> np.ndarray:
    c = sim.concentrations.astype(np.float64)
    phi = np.prod(c[:, :, None] ** sim.network.substrates[None], axis=1)
    return 10.0 ** sim.truth.log_k.astype(np.float64) * phi


def test_from_truth_without_noise_is_mass_action(tiny_sim):
    model = model_from_truth(
        tiny_sim.network, tiny_sim.truth.log_k, Config().graph_model,
        log_k_noise=0.0, seed=0, concentrations=tiny_sim.concentrations,
    )
    assert rate_constants_r2(model, tiny_sim.truth.log_k) > 1 - 1e-9
    with torch.no_grad():
        c = torch.as_tensor(tiny_sim.concentrations)
        rates = model.rates(c).double().numpy()
        assert float(model.node(c).abs().max()) == 0.0
    truth = mass_action(tiny_sim)
    linear = (tiny_sim.network.substrates <= 1).all(axis=0)  # reactions whose substrates all have |s| = 1
    rel = np.abs(rates - truth) / truth
    big = truth > 1e-3 * truth.max()
    assert np.median(rel[:, linear]) < 1e-5
    assert np.quantile(rel[:, linear][big[:, linear]], 0.99) < 1e-3
    assert not any(p.requires_grad for p in model.parameters())


def test_from_truth_noise_is_seeded(tiny_sim):
    arch = Config().graph_model
    a = model_from_truth(tiny_sim.network, tiny_sim.truth.log_k, arch, log_k_noise=0.3, seed=3)
    b = model_from_truth(tiny_sim.network, tiny_sim.truth.log_k, arch, log_k_noise=0.3, seed=3)
    c = model_from_truth(tiny_sim.network, tiny_sim.truth.log_k, arch, log_k_noise=0.3, seed=4)
    assert torch.equal(a.log_k, b.log_k)
    assert not torch.equal(a.log_k, c.log_k)
    r2 = rate_constants_r2(a, tiny_sim.truth.log_k)
    assert 0.0 < r2 < 0.999
