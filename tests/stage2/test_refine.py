"""Stage 2: initialisation from stage 1, rollout fine-tuning, keep-the-better, outputs."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from sysid.config import Config, RefineConfig
from sysid.curves import SWEEP, line_fits, node_curves
from sysid.evaluation.metrics import embedding_metrics, refine_metrics
from sysid.io.dataset import load_dataset, write_dataset
from sysid.model import MetabolismModel
from sysid.phase1.from_truth import model_from_truth
from sysid.reports import write_refine_outputs
from sysid.simulation import simulate
from sysid.stage1.result import HomeostasisFit
from sysid.stage2.init import group_centres, initialise_from_fit
from sysid.stage2.refine import ScaledNode, refine, rollout_loss, split_windows

TINY = {"n_metabolites": 18, "n_reactions": 30, "n_frames": 400}


def tiny_config(**refine_changes) -> Config:
    cfg = Config().replace("simulation", **TINY)
    cfg = cfg.replace("training", data_augmentation_loop=6, homeostasis_time_step=4, batch_size=4)
    rc = RefineConfig(validate_every=3, eval_windows=8, **refine_changes)
    return cfg.replace("sysid", refine=rc)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    cfg = tiny_config()
    sim = simulate(cfg.simulation)
    folder = tmp_path_factory.mktemp("tiny_refine")
    write_dataset(sim, folder)
    frozen = model_from_truth(sim.network, sim.truth.log_k, cfg.graph_model, log_k_noise=0.05, seed=2,
                              concentrations=sim.concentrations)
    return cfg, load_dataset(folder), sim.truth, frozen


def planted_fit(truth, noise: float = 0.02, seed: int = 0) -> HomeostasisFit:
    """A stage-1-like fit: per-metabolite truth with relative noise; groups = types (built by the test)."""
    rng = np.random.default_rng(seed)
    n = len(truth.types)
    s = truth.slopes()[truth.types] * (1 + noise * rng.standard_normal(n))
    o = truth.offsets()[truth.types] * (1 + noise * rng.standard_normal(n))
    se = max(noise, 1e-3)
    return HomeostasisFit(s, o, np.abs(s) * se, np.abs(o) * se, truth.types.copy())


def fresh_model(network, seed: int = 0) -> MetabolismModel:
    return MetabolismModel(network, Config().graph_model, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("target", ["group", "metabolite"])
def test_distillation_reproduces_planted_lines(tiny, target):
    _, data, truth, _ = tiny
    fit = planted_fit(truth)
    model = fresh_model(data.network)
    report = initialise_from_fit(model, fit, float(data.concentrations.max()), target=target)
    slopes, offsets = line_fits(SWEEP, node_curves(model))
    if target == "group":
        gs, go = fit.group_means()
        want_s, want_o, tol = gs[fit.groups], go[fit.groups], 1e-3
    else:
        want_s, want_o, tol = fit.slope, fit.offset, 3e-2
    np.testing.assert_allclose(slopes, want_s, rtol=tol)
    np.testing.assert_allclose(offsets, want_o, rtol=tol)
    assert report.max_slope_error < tol and report.max_offset_error < tol


def test_embedding_init_gives_planted_groups():
    groups = np.repeat(np.arange(3), 6)  # planted, unrelated to any simulator labels
    fit = HomeostasisFit(-1e-3 * (1 + groups), 4e-3 * (1 + groups), np.full(18, 1e-5), np.full(18, 1e-5), groups)
    model = fresh_model(simulate(tiny_config().simulation).network)
    initialise_from_fit(model, fit, 20.0)
    a = model.a.detach().numpy()

    class Planted:
        types = groups

    m = embedding_metrics(a, Planted, eps=0.1)
    assert m["embedding_cluster_acc"] == 1.0 and m["embedding_n_clusters"] == 3
    assert m["embedding_silhouette"] >= 0.9
    centres = group_centres(3, 2, 1.0)
    dist = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
    assert dist[~np.eye(3, dtype=bool)].min() >= 1.0 - 1e-12


def test_split_windows_are_disjoint_and_inside_blocks():
    w = split_windows(400, 8, 0.2, 10)
    assert len(w.train) and len(w.validation)
    train_frames = {t for s in w.train for t in range(s, s + 9)}
    val_frames = {t for s in w.validation for t in range(s, s + 9)}
    assert not train_frames & val_frames
    assert max(train_frames | val_frames) <= 400
    assert 400 - 8 in w.validation  # the final block validates


def test_scaled_node_round_trip():
    """The rescaled view and its fold are exact algebra: checked in float64 (float32 rounding of the c_mid shift
    alone reaches ~2e-7 absolute on outputs near zero)."""
    net = fresh_model(simulate(tiny_config().simulation).network).node_func.double()
    scaled = ScaledNode.unfold(net, 20.0, 20.0, 0.05)
    x = torch.rand(7, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = x * torch.tensor([40.0, 1.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(scaled(x), net(x), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(scaled.fold()(x), net(x), rtol=1e-12, atol=1e-14)


def test_gradients_flow_only_into_node_and_embeddings(tiny):
    _, data, truth, frozen = tiny
    model = copy.deepcopy(frozen).freeze_reactions()
    initialise_from_fit(model, planted_fit(truth), float(data.concentrations.max()))
    for p in model.homeostasis_parameters():
        p.requires_grad_(True)
    conc = torch.as_tensor(data.concentrations)
    rollout_loss(model, conc, torch.tensor([0, 50, 100]), 4, data.delta_t).backward()
    for p in model.reaction_parameters():
        assert p.grad is None
    assert model.a.grad is not None and model.a.grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.node_func.parameters())


@pytest.fixture(scope="module")
def refined(tiny):
    cfg, data, truth, frozen = tiny
    before = {k: v.clone() for k, v in frozen.state_dict().items()}
    result = refine(frozen, data, planted_fit(truth), options=cfg.refine_options(), seed=cfg.training.seed)
    return result, before


def test_refine_keeps_reactions_bitwise(tiny, refined):
    _, _, _, frozen = tiny
    result, before = refined
    for name in ("log_k", "sto_all", *(k for k in before if k.startswith("substrate_func"))):
        for m in (frozen, result.model, result.refined_model, result.init_model):
            assert torch.equal(m.state_dict()[name], before[name]), name
    assert torch.equal(frozen.a, before["a"])  # the input model is untouched


def test_kept_model_is_not_worse_than_init_on_validation(refined):
    result, _ = refined
    kept_val = result.refined_val_loss if result.kept == "refined" else result.init_val_loss
    assert kept_val <= result.init_val_loss
    assert result.val_history[0] == (0, result.init_val_loss)
    assert len(result.train_history) == 6
    assert result.phase2_loss in (result.init_train_loss, result.refined_train_loss)


def test_keeps_stage1_when_refine_does_not_help(tiny):
    cfg, data, truth, frozen = tiny
    cfg = cfg.replace("training", learning_rate_node_homeostasis=1.0, learning_rate_embedding_homeostasis=1.0)
    cfg = cfg.replace("sysid", refine=RefineConfig(validate_every=3, eval_windows=8, lr_factor=1.0))
    result = refine(frozen, data, planted_fit(truth, noise=0.0), options=cfg.refine_options(),
                    seed=cfg.training.seed)  # huge steps from the exact lines
    assert result.kept == "stage1" and result.model is result.init_model


def test_refine_is_deterministic(tiny, refined):
    cfg, data, truth, frozen = tiny
    again = refine(frozen, data, planted_fit(truth), options=cfg.refine_options(), seed=cfg.training.seed)
    first, _ = refined
    assert again.train_history == first.train_history and again.val_history == first.val_history
    for k, v in first.model.state_dict().items():
        assert torch.equal(v, again.model.state_dict()[k]), k


def test_refine_outputs_and_metrics(tiny, refined, tmp_path):
    cfg, data, truth, _ = tiny
    result, _ = refined
    fit = planted_fit(truth)
    metrics = refine_metrics(result, data.concentrations[0], truth, cfg.training.cluster_distance_threshold)
    write_refine_outputs(result, fit, tmp_path, metrics, truth)
    for name in ("refined_model.pt", "stage1_init_model.pt", "refine_summary.json", "refine_loss.png",
                 "embeddings_groups.png", "embeddings_truth.png", "mlp_node.png"):
        assert (tmp_path / name).is_file(), name
    from sysid.io.checkpoint import load_checkpoint

    back = load_checkpoint(tmp_path / "refined_model.pt")
    for k, v in result.model.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k
    init = metrics["stage1_init"]
    assert init["embedding_cluster_acc"] == 1.0
    for key in ("phase2_loss", "phase2_node_magnitude", "MLP_node_slope_ratio_0", "MLP_node_offset_ratio_1",
                "embedding_n_clusters", "embedding_silhouette", "rate_constants_R2", "avg_slope_ratio"):
        assert key in init and key in metrics["refined"], key
    assert 0.9 < init["MLP_node_slope_ratio_0"] < 1.1 and 0.9 < init["MLP_node_offset_ratio_1"] < 1.1
