"""Phase 1: the frozen reaction model (log_k and MLP_sub, with S given).

Two ways to obtain one:

- :func:`model_from_truth` builds it from known rate constants (plus seeded
  Gaussian noise on log_k) with an MLP_sub that reproduces mass action; for
  tests and robustness studies.
- :func:`train_phase1` learns log_k and MLP_sub from a dataset's single-step
  dc/dt (see docs/phase1.md).

In both, MLP_node is held at zero: its last layer is zeroed and stays so.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.csgraph
import torch
from torch import nn
from torch.nn import functional as F

from sysid.config import Config, GraphModelConfig, Phase1Config
from sysid.dataset import Dataset
from sysid.errors import SysidInputError
from sysid.metrics import log_k_offset, rate_constants_r2
from sysid.model import MetabolismModel, mlp, pick_device
from sysid.network import Network

log = logging.getLogger(__name__)

# MLP_sub of a model from the truth returns MSG_SCALE * c**|s|, and log_k is
# lowered by n_sub * log10(MSG_SCALE) to compensate. The large products keep
# softplus(prod) = prod to float precision except at products below ~1e-4 (c in
# the 1e-3 range), where the rate error is at most 10**log_k * ln2 / MSG_SCALE**n_sub.
MSG_SCALE = 100.0
# The linear unit works at tanh inputs of at most LINEAR_INPUT (relative error ~LINEAR_INPUT**2).
LINEAR_INPUT = 1e-3
DEFAULT_C_MAX = 100.0
CORRECTION_STEPS = 200  # L-BFGS iterations of the fit for coefficients other than 1
CORRECTION_WIDTH = 12  # hidden units of each of the two copies of the correction network
N_CORRECTION_POINTS = 200


def zero_node(model: MetabolismModel) -> MetabolismModel:
    """Hold MLP_node at zero: zero its last layer and stop its gradients."""
    last = model.node_func[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
    for p in model.homeostasis_parameters():
        p.requires_grad_(False)
    return model


# --- a model from the truth ----------------------------------------------------


def model_from_truth(
    network: Network,
    truth_log_k: np.ndarray,
    arch: GraphModelConfig,
    *,
    log_k_noise: float,
    seed: int,
    concentrations: np.ndarray | None = None,
) -> MetabolismModel:
    """Frozen reaction model with log_k = truth + N(0, log_k_noise**2) and mass-action MLP_sub.

    MLP_sub([c, s]) = MSG_SCALE * c**s: coefficient-1 edges through one tanh unit
    per layer kept in its linear regime (exact to ~1e-6 relative), other
    coefficients through a fitted correction that vanishes identically at s = 1.
    ``concentrations`` (frames, metabolites) sets the range the MLP must cover
    (default [0, 100]). Deterministic for a given seed; MLP_node outputs 0.
    """
    if log_k_noise < 0:
        raise ValueError(f"log_k_noise must be >= 0, got {log_k_noise}")
    truth_log_k = np.asarray(truth_log_k, np.float64)
    if truth_log_k.shape != (network.n_reactions,):
        raise ValueError(f"truth_log_k has shape {truth_log_k.shape}, expected ({network.n_reactions},)")
    generator = torch.Generator().manual_seed(seed)
    model = zero_node(MetabolismModel(network, arch, generator))
    c_max = _c_max(concentrations)
    coefs = sorted(set(np.unique(network.edges.sto_sub).tolist()) - {1.0})
    samples = _correction_samples(coefs, network, concentrations, c_max)
    _build_mass_action(model.substrate_func, c_max, samples, generator)
    noise = np.random.default_rng(seed).normal(0.0, log_k_noise, network.n_reactions) if log_k_noise else 0.0
    n_sub = np.bincount(network.edges.rxn_sub, minlength=network.n_reactions)
    log_k = truth_log_k + noise - n_sub * np.log10(MSG_SCALE)
    with torch.no_grad():
        model.log_k.copy_(torch.as_tensor(log_k, dtype=torch.float32))
    for p in model.reaction_parameters():
        p.requires_grad_(False)
    return model


def _c_max(concentrations: np.ndarray | None) -> float:
    if concentrations is None or np.size(concentrations) == 0:
        return DEFAULT_C_MAX
    return max(float(np.max(concentrations)), 1.0)


def _linears(mlp: nn.Sequential) -> list[nn.Linear]:
    return [layer for layer in mlp if isinstance(layer, nn.Linear)]


def _build_mass_action(
    mlp: nn.Sequential, c_max: float, samples: dict[float, np.ndarray], generator: torch.Generator
) -> None:
    """Set ``mlp`` (input [c, s]) to MSG_SCALE * c**s for s = 1 and, fitted, for the coefficients of ``samples``."""
    layers = _linears(mlp)
    eps = LINEAR_INPUT / c_max
    with torch.no_grad():
        for layer in layers:
            layer.weight.zero_()
            layer.bias.zero_()
        if len(layers) == 1:  # a single Linear: only the linear law is possible
            layers[0].weight[0, 0] = MSG_SCALE
            return
        layers[0].weight[0, 0] = eps
        for layer in layers[1:-1]:
            layer.weight[0, 0] = 1.0
        layers[-1].weight[0, 0] = MSG_SCALE / eps
    width = min(CORRECTION_WIDTH, (layers[0].out_features - 1) // 2)
    if samples and width >= 1:
        _fit_correction(layers, width, samples, c_max, generator)
    elif samples:
        log.warning("MLP_sub is too narrow for coefficients %s: they follow the linear law", list(samples))


def _fit_correction(
    layers: list[nn.Linear], width: int, samples: dict[float, np.ndarray], c_max: float, generator: torch.Generator
) -> None:
    """Fit N(c, s) - N(c, 1) to MSG_SCALE * (c**s - c) in float64, then embed two copies of N in the hidden units.

    ``samples[s]`` holds concentrations at which coefficient-s edges are evaluated;
    the error is relative to c**s above each one's 1% quantile, absolute below.
    """
    sizes = [2] + [width] * (len(layers) - 1) + [1]
    net = _scaled_mlp(sizes, c_max, generator).double()
    c = torch.as_tensor(np.concatenate(list(samples.values())), dtype=torch.float64)
    s = torch.as_tensor(np.concatenate([np.full(len(v), k) for k, v in samples.items()]), dtype=torch.float64)
    floor = torch.as_tensor(np.concatenate([np.full(len(v), np.quantile(v, 0.01)) for v in samples.values()]))
    scale = float((c**s).max())  # fit a target of order 1, rescale the output layer afterwards
    target = (c**s - c) / scale
    weight = scale / (c**s + floor**s)
    ones = torch.ones_like(s)
    opt = torch.optim.LBFGS(net.parameters(), max_iter=CORRECTION_STEPS, history_size=50,
                            line_search_fn="strong_wolfe", tolerance_grad=0.0, tolerance_change=0.0)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        pred = net(torch.stack([c, s], 1)) - net(torch.stack([c, ones], 1))
        loss = ((pred.squeeze(1) - target) * weight).pow(2).mean()
        loss.backward()
        return loss

    opt.step(closure)
    rms = float(closure().detach().sqrt())
    log.info("MLP_sub correction for coefficients %s: relative rms %.2e", list(samples), rms)
    small = _linears(net.float())
    with torch.no_grad():
        small[-1].weight.mul_(MSG_SCALE * scale)
    _embed_pair(layers, small, width)


def _correction_samples(coefs: list[float], network: Network, concentrations: np.ndarray | None, c_max: float):
    """Concentrations seen by coefficient-s substrate edges (a grid when no data is given)."""
    grid = np.concatenate([np.linspace(0.0, 1.0, 128) ** 2 * c_max * 1.1, np.geomspace(1e-3, 1.0, 32)])
    out = {}
    e = network.edges
    for k in coefs:
        if concentrations is None:
            out[k] = grid
            continue
        mets = np.unique(e.met_sub[e.sto_sub == k])
        out[k] = np.quantile(concentrations[:, mets], np.linspace(0.0, 1.0, N_CORRECTION_POINTS))
    return out


def _scaled_mlp(sizes: list[int], c_max: float, generator: torch.Generator) -> nn.Sequential:
    net = mlp(sizes)
    with torch.no_grad():
        for layer in _linears(net):
            bound = 1.0 / layer.in_features**0.5
            layer.weight.uniform_(-bound, bound, generator=generator)
            layer.bias.uniform_(-bound, bound, generator=generator)
        _linears(net)[0].weight[:, 0] /= c_max
    return net


def _embed_pair(layers: list[nn.Linear], small: list[nn.Linear], width: int) -> None:
    """Copy A (sees s) in units 1..width, copy B (s fixed to 1) in units width+1..2*width; output A - B."""
    a = slice(1, 1 + width)
    b = slice(1 + width, 1 + 2 * width)
    with torch.no_grad():
        first = small[0]
        layers[0].weight[a] = first.weight
        layers[0].bias[a] = first.bias
        layers[0].weight[b, 0] = first.weight[:, 0]
        layers[0].bias[b] = first.bias + first.weight[:, 1]
        for big, sm in zip(layers[1:-1], small[1:-1], strict=True):
            big.weight[a, a] = sm.weight
            big.weight[b, b] = sm.weight
            big.bias[a] = sm.bias
            big.bias[b] = sm.bias
        layers[-1].weight[0, a] = small[-1].weight[0]
        layers[-1].weight[0, b] = -small[-1].weight[0]


# --- training ------------------------------------------------------------------

LN10 = float(np.log(10.0))
COLLINEAR_TOL = 1e-9  # regressor columns with |cosine| > 1 - COLLINEAR_TOL count as collinear
NEWTON_ITERATIONS = 200
NEWTON_TOL = 1e-7  # decades: the MAP solve stops when no log_k moves more than this
MAX_DROP = 10.0  # one Newton step lowers no rate constant by more than this factor
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
    _init_substrate_func(model, c, cfg, generator)
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
    offset = torch.as_tensor(log_k_offset(model), dtype=torch.float32, device=c.device)
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


def _init_substrate_func(model: MetabolismModel, c: torch.Tensor, cfg: Phase1Config, generator) -> None:
    if cfg.sub_init == "linear":
        _build_mass_action(model.substrate_func, float(c.max()), {}, generator)
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
    layers = _linears(mlp)
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
    first, last = _linears(model.substrate_func)[0], _linears(model.substrate_func)[-1]
    first.weight[:, 0] /= max(float(torch.quantile(c.flatten()[::7], INPUT_QUANTILE)), 1e-6)
    msg = model.substrate_messages(c[:: max(1, len(c) // 256)])
    gain = MSG_SCALE**0.5 / float(msg.pow(2).mean().sqrt().clamp_min(1e-12))
    last.weight.mul_(gain)
    last.bias.mul_(gain)


def _layer_groups(model: MetabolismModel, cfg: Phase1Config) -> list[dict]:
    """One Adam group per MLP_sub layer, lr = learning_rate_sub * max |weight|: steps relative to the layer's scale."""
    groups = []
    for layer in _linears(model.substrate_func):
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


@torch.no_grad()
def rate_design(model: MetabolismModel, c: torch.Tensor, y: torch.Tensor, scale: torch.Tensor):
    """Normal equations of dc/dt = S diag(k) phi(c) in k, for the current MLP_sub (float64 numpy).

    With W = diag(1/scale**2) and n = frames * metabolites, the normalised loss
    mean(((S diag(k) phi_t - y_t) / scale)**2) equals k'Gk - 2b'k + mean((y/scale)**2), where
    G = (Phi'Phi) o (S'WS) / n is the Gram matrix of the regressor columns S_j phi_j(c)
    and b = sum_t phi_t o (S'W y_t) / n. Returns (G, b).
    """
    phi = F.softplus(model.aggregate(c)).double()
    S = torch.as_tensor(model.network().S, dtype=torch.float64, device=c.device)
    w = scale.double().pow(-2)
    n = y.numel()
    gram = (phi.T @ phi) * (S.T @ (w[:, None] * S)) / n
    rhs = (phi * ((y.double() * w) @ S)).sum(0) / n
    return gram.cpu().numpy(), rhs.cpu().numpy()


def unidentifiable_families(gram: np.ndarray, tol: float = COLLINEAR_TOL) -> list[np.ndarray]:
    """Groups of reactions whose regressor columns are (anti)collinear: only a combination of their k is in the data.

    Two columns are collinear when their |cosine| (from the Gram matrix) exceeds
    1 - tol; families are the connected groups of two or more. Example: A+B->2B and
    B+A->2A have columns phi(c) (e_B - e_A) and -phi(c) (e_B - e_A): only k1 - k2 shows.
    """
    d = np.sqrt(np.clip(np.diag(gram), 0.0, None))
    live = d > 0
    cos = np.zeros_like(gram)
    cos[np.ix_(live, live)] = gram[np.ix_(live, live)] / np.outer(d[live], d[live])
    linked = np.abs(cos) > 1.0 - tol
    np.fill_diagonal(linked, False)
    _, label = scipy.sparse.csgraph.connected_components(scipy.sparse.csr_matrix(linked), directed=False)
    groups = [np.flatnonzero(label == g) for g in np.unique(label)]
    return [g for g in groups if len(g) > 1]


def map_log_k(gram: np.ndarray, rhs: np.ndarray, u0: np.ndarray, offset: np.ndarray, prior: float) -> np.ndarray:
    """argmin_u k'Gk - 2b'k + prior * var(u + offset), k = 10**u: the data fit plus a spread prior on log10 k.

    The prior's centre is the mean of (u + offset) itself, so it is set by the data;
    with a small ``prior`` it only decides the directions the data leaves free (the
    families of :func:`unidentifiable_families`, reactions that never fire) and keeps
    every k positive. Damped Newton in k (where the data term is quadratic and its
    flat directions are straight lines), each k kept above 1/MAX_DROP of its value.
    """
    n = len(u0)
    rho = prior / n

    def objective(k):
        m = np.log10(k) + offset
        m = m - m.mean()
        return k @ gram @ k - 2.0 * rhs @ k + rho * m @ m

    k = 10.0 ** np.asarray(u0, np.float64)
    f, damping = objective(k), 0.0
    for _ in range(NEWTON_ITERATIONS):
        step = _newton_step(gram, rhs, k, offset, rho, damping)
        trial = objective(k + step)
        if not trial <= f:  # no descent: damp more and retry
            damping = max(10.0 * damping, 1e-12)
            if damping > 1e8:
                break
            continue
        k, f = k + step, trial
        damping /= 10.0
        if np.abs(np.log10(1.0 + step / (k - step))).max() < NEWTON_TOL:
            break
    return np.log10(k)


def _newton_step(gram, rhs, k, offset, rho, damping: float) -> np.ndarray:
    """Newton step in k (the prior's negative curvature dropped, Levenberg damping); k stays above k / MAX_DROP."""
    n = len(k)
    m = np.log10(k) + offset
    m = m - m.mean()
    jac = 1.0 / (k * LN10)  # du/dk
    grad = 2.0 * (gram @ k - rhs) + 2.0 * rho * m * jac
    prior_hess = 2.0 * rho * np.outer(jac, jac) * (np.eye(n) - 1.0 / n)
    hess = 2.0 * gram + prior_hess + np.diag(np.maximum(-2.0 * rho * m * jac / k, 0.0))
    scale = np.abs(np.diag(hess)).mean()
    while True:
        try:
            chol = np.linalg.cholesky(hess + (damping + 1e-13) * scale * np.eye(n))
            break
        except np.linalg.LinAlgError:
            damping = max(10.0 * damping, 1e-10)
    step = -scipy.linalg.cho_solve((chol, True), grad)
    shrink = np.min(np.where(step < 0, (1.0 - 1.0 / MAX_DROP) * k / np.maximum(-step, 1e-300), 1.0))
    return step * min(shrink, 1.0)


@torch.no_grad()
def solve_log_k(model: MetabolismModel, c: torch.Tensor, y: torch.Tensor, scale: torch.Tensor, prior: float) -> None:
    """Set log_k to the MAP rate constants (:func:`map_log_k`) for the current MLP_sub.

    The prior acts on the metric's corrected log_k (log_k + n_sub * log10 |MLP_sub([1, 1])|),
    so reactions with different numbers of substrates share one centre.
    """
    gram, rhs = rate_design(model, c, y, scale)
    offset = log_k_offset(model)
    u = map_log_k(gram, rhs, model.log_k.detach().cpu().double().numpy(), offset, prior)
    model.log_k.copy_(torch.as_tensor(u, dtype=torch.float32))


@torch.no_grad()
def initial_log_k(model: MetabolismModel, c: torch.Tensor, y: torch.Tensor, scale: torch.Tensor) -> None:
    """A common start for the MAP solve: the one k that best fits the data when all rate constants are equal."""
    gram, rhs = rate_design(model, c, y, scale)
    offset = log_k_offset(model)
    shape = 10.0 ** -offset  # equal corrected log_k
    k = max(float(rhs @ shape) / max(float(shape @ gram @ shape), 1e-300), 1e-30)
    model.log_k.copy_(torch.as_tensor(np.log10(k * shape), dtype=torch.float32))


# --- the job: dataset folder in, checkpoint out ----------------------------------


def phase1_to_file(
    data: Path,
    out: Path,
    cfg: Config,
    *,
    force: bool = False,
    from_truth: bool = False,
    log_k_noise: float = 0.0,
    seed: int | None = None,
    progress: Callable[..., None] | None = None,
) -> dict:
    """Make a frozen model for ``data`` and write CKPT, CKPT.json (summary) and CKPT.loss.png, atomically.

    The truth (gt_model.pt) is read for ``from_truth`` and, otherwise, only to
    report rate_constants_R2 while training; it never enters the loss.
    """
    from sysid.checkpoint import save_checkpoint
    from sysid.dataset import load_dataset, load_truth
    from sysid.outputs import atomic_file, check_writable

    out = Path(out)
    side = {"summary": out.with_name(out.name + ".json"), "plot": out.with_name(out.name + ".loss.png")}
    for path in (out, *side.values()):
        check_writable(path, force)
    dataset = load_dataset(data)
    truth = load_truth(data)
    if from_truth and truth is None:
        raise SysidInputError(f"dataset {data} has no gt_model.pt: --from-truth needs the ground truth")
    seed = cfg.sysid.phase1.seed if seed is None else seed
    if from_truth:
        result = _from_truth_result(dataset, truth, cfg, log_k_noise, seed)
    else:
        monitor = (lambda m: {"R2": rate_constants_r2(m, truth.log_k)}) if truth is not None else None
        p1 = dataclasses.replace(cfg.sysid.phase1, seed=seed)
        result = train_phase1(dataset, cfg.graph_model, p1, progress=progress, monitor=monitor)
    summary = _summary(result, data, from_truth, log_k_noise, seed, truth)
    with atomic_file(out, force) as tmp_ckpt, atomic_file(side["summary"], force) as tmp_json, \
            atomic_file(side["plot"], force) as tmp_png:
        save_checkpoint(result.model, tmp_ckpt)
        tmp_json.write_text(json.dumps(summary, indent=2) + "\n")
        _plot(result, tmp_png)
    return summary


def _from_truth_result(dataset: Dataset, truth, cfg: Config, log_k_noise: float, seed: int) -> Phase1Result:
    start = time.perf_counter()
    model = model_from_truth(dataset.network, truth.log_k, cfg.graph_model, log_k_noise=log_k_noise,
                             seed=seed, concentrations=dataset.concentrations)
    return Phase1Result(model, (), (), time.perf_counter() - start, "cpu")


def _summary(result: Phase1Result, data: Path, from_truth: bool, log_k_noise: float, seed: int, truth) -> dict:

    out = {
        "data": str(Path(data).absolute()),
        "method": "from_truth" if from_truth else "train",
        "seed": seed,
        "seconds": round(result.seconds, 2),
        "device": result.device,
        "epochs": max(len(result.losses) - 2, 0),
        "final_loss": result.losses[-1] if result.losses else None,
    }
    if from_truth:
        out["log_k_noise"] = log_k_noise
    if truth is not None:
        out["rate_constants_R2"] = rate_constants_r2(result.model, truth.log_k)
    return out


def _plot(result: Phase1Result, path: Path) -> None:
    from sysid import plots

    curves = {"normalised dc/dt loss (first solve, epochs, final solve)": list(result.losses)}
    with open(path, "wb") as fh:  # the temporary name has no .png suffix; matplotlib defaults to png
        plots.loss_curves(curves, fh, ylabel="loss (per epoch)")
