"""Phase 1 training: learn log_k and MLP_sub from a dataset's single-step dc/dt (S given); see docs/phase1.md.

MLP_node is held at zero: its last layer is zeroed and stays so.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sysid.config import GraphModelConfig, Phase1Config
from sysid.io.dataset import Dataset
from sysid.model import MetabolismModel, linear_layers, pick_device
from sysid.network import Network
from sysid.phase1.from_truth import MSG_SCALE, build_mass_action, message_scale, zero_node
from sysid.phase1.rate_solve import initial_log_k, rate_design, solve_log_k, unidentifiable_families

log = logging.getLogger(__name__)

RESIDUAL_FLOOR = 0.1  # residual weights: rms floored at this fraction of the median rms
INPUT_QUANTILE = 0.99  # MLP_sub's first layer sees c / (this quantile of the data)


@dataclass(frozen=True, eq=False)
class Phase1Result:
    """A trained reaction model (MLP_node held at zero) and its training history."""

    model: MetabolismModel
    losses: tuple[float, ...]  # mean normalised squared error: after the first solve, each epoch, the final solve
    monitored: tuple[dict[str, float], ...]  # what ``monitor`` returned after each epoch
    seconds: float
    device: str


def train_phase1(
    dataset: Dataset,
    arch: GraphModelConfig,
    cfg: Phase1Config,
    *,
    device: str | None = None,
    progress: Callable[..., None] | None = None,
    monitor: Callable[[MetabolismModel], dict[str, float]] | None = None,
) -> Phase1Result:
    """Learn log_k and MLP_sub from the single-step target dc/dt (S given and fixed).

    Objective: mean over frames and metabolites of ((reaction_dcdt(c) - dc/dt) / rms_i)**2
    plus ``cfg.log_k_prior`` * var(corrected log_k). For a fixed MLP_sub the rates are
    linear in k, so log_k is solved exactly (:func:`solve_log_k`, a damped Newton MAP
    solve) at the start, after each of the first ``cfg.varpro_fraction`` of the epochs
    and at the end; in between Adam trains MLP_sub (and log_k) on frame batches.
    ``monitor`` (e.g. an evaluation against the truth) never influences training.
    """
    start = time.perf_counter()
    dev = pick_device(device)
    generator = torch.Generator().manual_seed(cfg.seed)
    model = zero_node(MetabolismModel(dataset.network, arch, generator))
    c = torch.as_tensor(dataset.concentrations, dtype=torch.float32)
    y = torch.as_tensor(dataset.dcdt, dtype=torch.float32)
    scale = y.pow(2).mean(0).sqrt().clamp_min(1e-12)
    _init_substrate_func(model, c, dataset.network, cfg, generator)
    model.to(dev)
    c, y, scale = c.to(dev), y.to(dev), scale.to(dev)
    _log_families(model, c, y, scale)
    initial_log_k(model, c, y, scale)
    solve_log_k(model, c, y, scale, cfg.log_k_prior)
    weight_scale = scale  # the loss weighs metabolite i by 1 / weight_scale_i**2
    for _ in range(cfg.reweight_iterations):
        weight_scale = residual_scale(model, c, y)
        solve_log_k(model, c, y, weight_scale, cfg.log_k_prior)
    losses, monitored = [_fit_loss(model, c, y, scale)], [monitor(model) if monitor else {}]
    log.info("phase1 start: loss %.4g %s", losses[-1], monitored[-1])
    _train(model, c, y, (scale, weight_scale), cfg, start, losses, monitored, progress, monitor)
    solve_log_k(model, c, y, weight_scale, cfg.log_k_prior)
    losses.append(_fit_loss(model, c, y, scale))
    monitored.append(monitor(model) if monitor else {})
    log.info("phase1 final: loss %.4g %s", losses[-1], monitored[-1])
    model.cpu().freeze_reactions()
    return Phase1Result(model, tuple(losses), tuple(monitored), time.perf_counter() - start, str(dev))


def _train(model, c, y, scales, cfg: Phase1Config, start: float, losses, monitored, progress, monitor) -> None:
    """Adam epochs on MLP_sub and log_k; log_k re-solved after each of the first varpro_fraction epochs.

    ``scales``: (rms of dc/dt, for the reported loss; the loss weights' scale, for training).
    """
    report, scale = scales
    opt = torch.optim.Adam([{"params": [model.log_k], "lr": cfg.learning_rate_k}, *_layer_groups(model, cfg)])
    n_batches = -(-len(c) // cfg.batch_frames)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(cfg.n_epochs * n_batches, 1))
    rng = np.random.default_rng(cfg.seed)
    offset = torch.as_tensor(model.log_k_offset(), dtype=torch.float32, device=c.device)
    n_varpro = int(round(cfg.varpro_fraction * cfg.n_epochs))
    for epoch in range(cfg.n_epochs):
        _epoch(model, opt, schedule, c, y, scale, offset, rng.permutation(len(c)), cfg)
        if epoch < n_varpro:
            solve_log_k(model, c, y, scale, cfg.log_k_prior)
        losses.append(_fit_loss(model, c, y, report))
        monitored.append(monitor(model) if monitor else {})
        if progress:
            progress(epoch + 1, loss=losses[-1], **monitored[-1])
        log.info("phase1 epoch %d: loss %.4g %s", epoch + 1, losses[-1], monitored[-1])
        if time.perf_counter() - start > 60.0 * cfg.max_minutes:
            log.warning("phase1 stopped after %d of %d epochs: max_minutes %.1f reached",
                        epoch + 1, cfg.n_epochs, cfg.max_minutes)
            return


def _init_substrate_func(model: MetabolismModel, c: torch.Tensor, network: Network, cfg: Phase1Config,
                         generator) -> None:
    if cfg.sub_init == "linear":
        powers = (network.substrates > 0).astype(np.float64)  # the linear law: every message M * c
        build_mass_action(model.substrate_func, float(c.max()), scale=message_scale(powers, c.cpu().numpy()))
        _perturb(model.substrate_func, generator)
    else:
        _scale_substrate_func(model, c)


@torch.no_grad()
def residual_scale(model: MetabolismModel, c, y, chunk: int = 512) -> torch.Tensor:
    """Per-metabolite rms of dc/dt minus the reaction part, floored at RESIDUAL_FLOOR * its median.

    Weights 1/residual_scale**2 (feasible weighted least squares) let metabolites that the
    model cannot fit (e.g. around a reaction whose kinetics MLP_sub does not capture) weigh
    less, so that their misfit does not leak into the rate constants of their neighbours.
    """
    sq = sum(((model.reaction_dcdt(c[i:i + chunk]) - y[i:i + chunk]) ** 2).sum(0) for i in range(0, len(c), chunk))
    rms = (sq / len(c)).sqrt()
    return rms.clamp_min(RESIDUAL_FLOOR * float(rms.median()) + 1e-30)


def _log_families(model: MetabolismModel, c, y, scale) -> None:
    families = unidentifiable_families(rate_design(model, c, y, scale)[0])
    if families:
        log.info("%d families of reactions with collinear rate regressors (their individual k are set by the "
                 "log_k prior): %s", len(families), [f.tolist() for f in families])


@torch.no_grad()
def _fit_loss(model: MetabolismModel, c, y, scale, chunk: int = 512) -> float:
    """Mean normalised squared error of the reaction part over all frames."""
    total = sum(float(((model.reaction_dcdt(c[i:i + chunk]) - y[i:i + chunk]) / scale).pow(2).sum())
                for i in range(0, len(c), chunk))
    return total / y.numel()


@torch.no_grad()
def _perturb(mlp: nn.Sequential, generator: torch.Generator, sd: float = 1e-3) -> None:
    """Small seeded noise on the zero weights of a constructed MLP so its idle units can learn.

    Inputs of unit 0 of the hidden layers (the linear chain) stay untouched.
    """
    layers = linear_layers(mlp)
    for i, layer in enumerate(layers):
        for p in (layer.weight, layer.bias):
            idle = p == 0
            if i < len(layers) - 1:
                idle[0] = False
            p.add_(idle * torch.randn(p.shape, generator=generator) * sd)


@torch.no_grad()
def _scale_substrate_func(model: MetabolismModel, c: torch.Tensor) -> None:
    """Input c / (99% quantile of the data); output rescaled to rms MSG_SCALE**0.5 over the data.

    Large messages keep softplus(agg) in its linear range, so rates start out
    depending on the concentrations instead of sitting at softplus(0).
    """
    first, last = linear_layers(model.substrate_func)[0], linear_layers(model.substrate_func)[-1]
    first.weight[:, 0] /= max(float(torch.quantile(c.flatten()[::7], INPUT_QUANTILE)), 1e-6)
    msg = model.substrate_messages(c[:: max(1, len(c) // 256)])
    gain = MSG_SCALE**0.5 / float(msg.pow(2).mean().sqrt().clamp_min(1e-12))
    last.weight.mul_(gain)
    last.bias.mul_(gain)


def _layer_groups(model: MetabolismModel, cfg: Phase1Config) -> list[dict]:
    """One Adam group per MLP_sub layer, lr = learning_rate_sub * max |weight|: steps relative to the layer's scale."""
    groups = []
    for layer in linear_layers(model.substrate_func):
        size = float(layer.weight.detach().abs().max().clamp_min(1e-12))
        groups.append({"params": [layer.weight, layer.bias], "lr": cfg.learning_rate_sub * size})
    return groups


def _epoch(model, opt, schedule, c, y, scale, offset, order: np.ndarray, cfg: Phase1Config) -> None:
    for i in range(0, len(order), cfg.batch_frames):
        idx = torch.as_tensor(order[i : i + cfg.batch_frames], device=c.device)
        opt.zero_grad()
        fit = ((model.reaction_dcdt(c[idx]) - y[idx]) / scale).pow(2).mean()
        loss = fit + cfg.log_k_prior * (model.log_k + offset).var(unbiased=False)
        loss.backward()
        opt.step()
        schedule.step()
