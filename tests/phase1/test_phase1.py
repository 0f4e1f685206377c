"""Phase 1: the frozen reaction model from the truth and from training."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from sysid.config import Config
from sysid.evaluation.metrics import rate_constants_r2
from sysid.phase1.from_truth import model_from_truth
from sysid.simulation import simulate

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


def pair_design(true_k: np.ndarray, n_frames: int = 400, seed: int = 0):
    """Gram matrix and right-hand side of the rate design of a 3-metabolite network with one opposite pair.

    r0: A+B->2B and r1: B+A->2A (columns phi (e_B - e_A) and -phi (e_B - e_A): only k0 - k1
    is identifiable), r2: B+C->2C, r3: C+A->2A; exact mass-action dc/dt, unit weights.
    """
    S = np.array([[-1.0, 1.0, 0.0, 1.0], [1.0, -1.0, -1.0, 0.0], [0.0, 0.0, 1.0, -1.0]])
    subs = [(0, 1), (0, 1), (1, 2), (2, 0)]
    c = np.random.default_rng(seed).uniform(0.5, 5.0, (n_frames, 3))
    phi = np.stack([c[:, i] * c[:, j] for i, j in subs], 1)
    y = (phi * true_k) @ S.T
    gram = (phi.T @ phi) * (S.T @ S) / y.size
    rhs = (phi * (y @ S)).sum(0) / y.size
    return gram, rhs


def test_opposite_pair_is_detected_and_set_by_the_prior():
    from scipy.optimize import minimize_scalar

    from sysid.phase1.rate_solve import map_log_k, unidentifiable_families

    true_k = np.array([0.2, 0.15, 10**-1.5, 10**-1.5])
    gram, rhs = pair_design(true_k)
    assert [f.tolist() for f in unidentifiable_families(gram)] == [[0, 1]]
    u = map_log_k(gram, rhs, np.full(4, -1.0), np.zeros(4), prior=1e-6)
    k = 10.0**u
    assert np.allclose(k[2:], true_k[2:], rtol=1e-4)  # identifiable: the data
    assert abs((k[0] - k[1]) - (true_k[0] - true_k[1])) < 1e-5  # the pair: only the difference is data
    # ... and within the pair, the log_k closest to the common centre (the prior's choice)
    d = true_k[0] - true_k[1]
    spread = lambda u1: np.var([np.log10(d + 10.0**u1), u1, u[2], u[3]])  # noqa: E731
    best = minimize_scalar(spread, bounds=(-4.0, 0.0), method="bounded", options={"xatol": 1e-10}).x
    assert abs(u[1] - best) < 1e-3 and abs(u[0] - np.log10(d + 10.0**best)) < 1e-3
    assert abs(u[0] - np.log10(true_k[0])) > 0.05  # the individual truth is not recoverable


def test_equal_pair_lands_on_the_common_centre():
    from sysid.phase1.rate_solve import map_log_k

    true_k = np.array([0.05, 0.05, 10**-1.5, 10**-1.5])  # k0 = k1: the data only says "equal"
    u = map_log_k(*pair_design(true_k), np.full(4, -1.0), np.zeros(4), prior=1e-6)
    assert np.allclose(u, -1.5, atol=1e-4)


TRAIN = {"n_epochs": 3, "batch_frames": 64}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, tiny_sim):
    from sysid.io.dataset import write_dataset

    folder = tmp_path_factory.mktemp("tiny")
    write_dataset(tiny_sim, folder)
    return folder


def train_tiny(tiny_dir, **changes):
    from sysid.io.dataset import load_dataset
    from sysid.phase1.trainer import train_phase1

    cfg = Config().replace("sysid", phase1=Config().sysid.phase1.__class__(**{**TRAIN, **changes}))
    return train_phase1(load_dataset(tiny_dir), cfg.graph_model, cfg.sysid.phase1)


def test_training_decreases_loss_and_trains_reactions_only(tiny_dir):
    result = train_tiny(tiny_dir, sub_init="random", learning_rate_sub=2e-3, n_epochs=4)
    assert result.losses[-1] < result.losses[0]
    model = result.model
    with torch.no_grad():
        c = torch.rand(5, model.n_metabolites) * 10
        assert float(model.node(c).abs().max()) == 0.0
    assert not any(p.requires_grad for p in model.parameters())


def test_training_is_deterministic(tiny_dir):
    a, b = train_tiny(tiny_dir, n_epochs=1), train_tiny(tiny_dir, n_epochs=1)
    assert torch.equal(a.model.log_k, b.model.log_k)
    assert a.losses == b.losses


def run_cli(*args):
    """A real ``python -m cli.main phase1`` process (for what only a process shows: stderr, exit code)."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "cli.main", "phase1", *args], capture_output=True, text=True)


def run_cli_here(capsys, monkeypatch, *args) -> tuple[int, str]:
    """The CLI's entry point in this process (no interpreter start-up): exit code and stderr."""
    import sys

    from cli.main import main

    monkeypatch.setattr(sys, "argv", ["sysid", "phase1", *args])
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level  # the CLI reconfigures logging (force=True): restore pytest's
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    return code, capsys.readouterr().err


def test_cli_writes_refuses_and_reports_bad_input(tiny_dir, tmp_path, capsys, monkeypatch):
    import json

    from sysid.io.checkpoint import load_checkpoint

    out = tmp_path / "frozen.pt"
    args = ["--data", str(tiny_dir), "--out", str(out)]
    code, err = run_cli_here(capsys, monkeypatch, *args)  # trained (fast: exact log_k solve, no epochs)
    assert code == 0, err
    assert out.is_file() and out.with_name("frozen.pt.json").is_file()
    assert load_checkpoint(out).n_reactions == 16
    code, err = run_cli_here(capsys, monkeypatch, *args)
    assert code == 2 and "--force" in err
    truth_args = [*args, "--from-truth", "--log-k-noise", "0.1", "--seed", "1", "--force"]
    assert run_cli_here(capsys, monkeypatch, *truth_args)[0] == 0
    assert json.loads(out.with_name("frozen.pt.json").read_text())["method"] == "from_truth"
    bad = run_cli("--data", str(tmp_path / "missing"), "--out", str(tmp_path / "x.pt"))
    assert bad.returncode == 2
    assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
    assert not (tmp_path / "x.pt").exists()


def test_reference_checkpoint_reproduces_its_r2():
    import json

    from sysid.io.checkpoint import load_checkpoint
    from sysid.io.dataset import load_truth
    from sysid.io.defaults import default_dataset_dir, reference_checkpoint

    path = reference_checkpoint()
    documented = json.loads(path.with_suffix(".json").read_text())
    truth = load_truth(default_dataset_dir())
    r2 = rate_constants_r2(load_checkpoint(path), truth.log_k)
    assert abs(r2 - documented["rate_constants_R2"]) < 1e-4
