"""A frozen reaction model built from known rate constants (for tests and robustness studies).

:func:`model_from_truth` takes the true log_k plus seeded Gaussian noise and an
MLP_sub that reproduces mass action; MLP_node is held at zero.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

from sysid.config import GraphModelConfig
from sysid.model import MetabolismModel, linear_layers, mlp
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
    last = linear_layers(model.node_func)[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
    for p in model.homeostasis_parameters():
        p.requires_grad_(False)
    return model


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
    build_mass_action(model.substrate_func, c_max, samples, generator)
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


def build_mass_action(
    mlp: nn.Sequential, c_max: float, samples: dict[float, np.ndarray], generator: torch.Generator
) -> None:
    """Set ``mlp`` (input [c, s]) to MSG_SCALE * c**s for s = 1 and, fitted, for the coefficients of ``samples``."""
    layers = linear_layers(mlp)
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
    floor = torch.as_tensor(np.concatenate([np.full(len(v), _floor(v)) for v in samples.values()]))
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
    small = linear_layers(net.float())
    with torch.no_grad():
        small[-1].weight.mul_(MSG_SCALE * scale)
    _embed_pair(layers, small, width)


def _floor(values: np.ndarray) -> float:
    """1% quantile of the concentrations, or (when that is a clamped zero, as in noisy data) the smallest
    positive one: the relative error weight 1 / (c**s + floor**s) must stay finite at c = 0."""
    q = float(np.quantile(values, 0.01))
    positive = values[values > 0]
    return q if q > 0 else float(positive.min()) if len(positive) else LINEAR_INPUT


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
        for layer in linear_layers(net):
            bound = 1.0 / layer.in_features**0.5
            layer.weight.uniform_(-bound, bound, generator=generator)
            layer.bias.uniform_(-bound, bound, generator=generator)
        linear_layers(net)[0].weight[:, 0] /= c_max
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
