"""A frozen reaction model built from known rate constants (for tests and robustness studies).

:func:`model_from_truth` takes the true log_k plus seeded Gaussian noise and an
MLP_sub that reproduces mass action; MLP_node is held at zero.

How MLP_sub (input [c, s], Linear-Tanh layers) is made to return M * c**s:

- hidden unit 0 of every layer carries c through tanh's linear regime, and the
  output reads it back: the law M * c, exact for s = 1 (relative error ~1e-6);
- every other coefficient s_k of the network gets a *correction* M * (c**s_k - c)
  that is switched on only at s = s_k. The first hidden layer holds saturated
  step units tanh(G (s - b)) at the midpoints b between neighbouring coefficients
  and smooth features tanh((c - m) / w) of the concentration. In the second, a
  pair of units tanh(+-x_k(c) + gate_k(s)) per coefficient: the gate is 0 for
  s = s_k and so negative elsewhere that both units sit at exactly -1 and their
  difference, which the next layers pass on, is exactly 0. x_k is a linear
  combination of the features, solved by weighted least squares (relative error
  of the message) after inverting the tanh layers it goes through.

The construction is deterministic and has no iterative fit; the worst
coefficient's relative message error over the data is logged.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

from sysid.config import GraphModelConfig
from sysid.model import MetabolismModel, linear_layers
from sysid.network import Network

log = logging.getLogger(__name__)

# MLP_sub of a model from the truth returns M * c**|s| with M = MSG_SCALE, and log_k is
# lowered by n_sub * log10(M) to compensate. The large products keep softplus(prod) = prod
# to float precision except at products below ~1e-4 (c in the 1e-3 range), where the rate
# error is at most 10**log_k * ln2 / M**n_sub. A network with reactions of many substrates
# gets a smaller M so that the products stay below 10**MAX_LOG10_SCALE (float32 ends at 3e38).
MSG_SCALE = 100.0
MAX_LOG10_SCALE = 30.0
# The linear unit works at tanh inputs of at most LINEAR_INPUT (relative error ~LINEAR_INPUT**2).
LINEAR_INPUT = 1e-3
DEFAULT_C_MAX = 100.0
N_CORRECTION_POINTS = 200
MAX_FEATURES = 32  # smooth concentration features in the first hidden layer
SATURATED = 12.0  # tanh(12) is 1 in float32: step and gate units sit exactly at +-1
CORRECTION_LEVEL = 0.5  # largest |tanh^T(x_k)| of a correction, before the output rescales it
FEATURE_OVERLAP = 3.0  # feature width / spacing of the feature centres
LINEAR_REACH = 10.0  # the gates hold for concentrations up to LINEAR_REACH x the largest one sampled
RIDGE_RANGE = (-30.0, 2.0)  # log10 bounds of the ridge (relative to the largest squared singular value)
RIDGE_BISECTIONS = 40
MAX_INPUT = SATURATED  # bound on sum |weights| of a correction: off its coefficient, x - 2 SATURATED <= -SATURATED


def zero_node(model: MetabolismModel) -> MetabolismModel:
    """Hold MLP_node at zero: zero its last layer and stop its gradients."""
    last = linear_layers(model.node_func)[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
    for p in model.homeostasis_parameters():
        p.requires_grad_(False)
    return model


def message_scale(powers: np.ndarray, concentrations: np.ndarray | None = None) -> float:
    """M = MSG_SCALE, lowered until every reaction's product of messages M * c**p stays below 10**MAX_LOG10_SCALE.

    ``powers`` (metabolites, reactions): the exponent p of each substrate's message (the network's |s| for
    mass action, 1 for a linear law, 0 where no substrate). The product is bounded at the largest
    concentration of each metabolite in ``concentrations`` (frames, metabolites), or at c = 1 without data.
    """
    powers = np.asarray(powers, np.float64)
    n_sub = np.count_nonzero(powers, axis=0)
    top = np.zeros(len(powers)) if concentrations is None else np.log10(np.maximum(np.max(concentrations, 0), 1.0))
    allowance = (MAX_LOG10_SCALE - top @ powers)[n_sub > 0] / n_sub[n_sub > 0]
    return float(min(MSG_SCALE, 10.0 ** allowance.min(initial=np.log10(MSG_SCALE))))


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

    MLP_sub([c, s]) = M * c**s (M from :func:`message_scale`): the module docstring says how.
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
    scale = message_scale(network.substrates, concentrations)
    coefs = _float32_values(network.edges.sto_sub)
    samples = _correction_samples([k for k in coefs if k != 1.0], network, concentrations, c_max)
    build_mass_action(model.substrate_func, c_max, samples, coefs, scale)
    noise = np.random.default_rng(seed).normal(0.0, log_k_noise, network.n_reactions) if log_k_noise else 0.0
    n_sub = np.bincount(network.edges.rxn_sub, minlength=network.n_reactions)
    log_k = truth_log_k + noise - n_sub * np.log10(scale)
    with torch.no_grad():
        model.log_k.copy_(torch.as_tensor(log_k, dtype=torch.float32))
    for p in model.reaction_parameters():
        p.requires_grad_(False)
    return model


def _float32_values(values: np.ndarray) -> list[float]:
    """Distinct values as MLP_sub sees them (float32), sorted."""
    return sorted({float(v) for v in np.asarray(values, np.float32)})


def _c_max(concentrations: np.ndarray | None) -> float:
    if concentrations is None or np.size(concentrations) == 0:
        return DEFAULT_C_MAX
    return max(float(np.max(concentrations)), 1.0)


def build_mass_action(mlp: nn.Sequential, c_max: float, samples: dict[float, np.ndarray] | None = None,
                      coefs: list[float] | None = None, scale: float = MSG_SCALE) -> None:
    """Set ``mlp`` (input [c, s]) to scale * c**s: s = 1 exactly, and the coefficients of ``samples``.

    ``samples[s]``: concentrations where coefficient-s messages must be right; ``coefs``: every
    coefficient the network has (the corrections are switched between neighbours).
    """
    layers = linear_layers(mlp)
    eps = LINEAR_INPUT / c_max
    with torch.no_grad():
        for layer in layers:
            layer.weight.zero_()
            layer.bias.zero_()
        if len(layers) == 1:  # a single Linear: only the linear law is possible
            layers[0].weight[0, 0] = scale
        else:
            layers[0].weight[0, 0] = eps
            for layer in layers[1:-1]:
                layer.weight[0, 0] = 1.0
            layers[-1].weight[0, 0] = scale / eps
    if samples:
        _add_corrections(layers, samples, coefs or sorted({1.0, *samples}), eps, scale)
        _log_accuracy(mlp, samples, scale)


@torch.no_grad()
def _log_accuracy(mlp: nn.Sequential, samples: dict[float, np.ndarray], scale: float) -> None:
    """Log the relative message error (as weighted in the fit) of the worst coefficient, in float32."""
    worst = []
    for s, c in samples.items():
        inputs = torch.as_tensor(np.stack([c, np.full_like(c, s)], 1), dtype=torch.float32)
        message = mlp(inputs).squeeze(1).double().numpy()
        rel = np.abs(message - scale * c**s) / (scale * (c**s + _floor(c) ** s))
        worst.append((float(np.median(rel)), float(rel.max()), s))
    median, largest, s = max(worst)
    log.info("MLP_sub corrections for %d coefficients: worst median relative message error %.1e (|s| = %g, "
             "largest %.1e)", len(samples), median, s, largest)


def _add_corrections(layers: list[nn.Linear], samples: dict[float, np.ndarray], coefs: list[float],
                     eps: float, scale: float) -> None:
    widths = [layer.out_features for layer in layers[:-1]]
    kept = list(samples)[: (min(widths) - 1) // 2] if len(layers) >= 4 else []
    n_steps = len(coefs) - 1
    n_features = min(MAX_FEATURES, widths[0] - 1 - n_steps) if kept else 0
    if n_features < 2:
        kept = []
    if len(kept) < len(samples):
        log.warning("MLP_sub is too small for coefficients %s: they follow the linear law",
                    [k for k in samples if k not in kept])
    if not kept:
        return
    positive = np.concatenate([v[v > 0] for v in samples.values()])
    low = max(float(positive.min()), LINEAR_INPUT) if positive.size else LINEAR_INPUT
    high = max(float(positive.max()), 2.0 * low) if positive.size else DEFAULT_C_MAX
    centres = np.geomspace(low, high, n_features)
    feature_widths = np.gradient(centres) * FEATURE_OVERLAP
    _set_first_layer(layers[0], coefs, centres, feature_widths)
    reach = LINEAR_REACH * high
    features = lambda c: _features(c, centres, feature_widths, eps, reach)  # noqa: E731
    depth = len(layers) - 3  # tanh layers a correction goes through after its pair (at least 1)
    for slot, k in enumerate(kept):
        solved = _solve_correction(samples[k], k, scale, features, depth)
        _set_pair(layers, slot, solved, coefs.index(k), n_steps, eps * reach)


def _set_first_layer(first: nn.Linear, coefs: list[float], centres: np.ndarray, widths: np.ndarray) -> None:
    """Units 1..n_steps: saturated steps at the midpoints between neighbouring coefficients; then the features."""
    mids = [(a + b) / 2 for a, b in zip(coefs[:-1], coefs[1:], strict=True)]
    with torch.no_grad():
        for i, (mid, a) in enumerate(zip(mids, coefs[:-1], strict=True)):
            slope = SATURATED / (mid - a)
            first.weight[1 + i, 1] = slope
            first.bias[1 + i] = -slope * mid
        base = 1 + len(mids)
        first.weight[base : base + len(centres), 0] = torch.as_tensor(1.0 / widths)
        first.bias[base : base + len(centres)] = torch.as_tensor(-centres / widths)


def _features(c: np.ndarray, centres: np.ndarray, widths: np.ndarray, eps: float, reach: float) -> np.ndarray:
    """The columns x_k is made of: 1 (bias), c / reach (the linear unit, tanh(eps c) / eps) and the tanh features.

    All are bounded by 1 for concentrations up to ``reach``.
    """
    linear = np.tanh(eps * c) / (eps * reach)
    return np.column_stack([np.ones_like(c), linear, np.tanh((c[:, None] - centres) / widths)])


def _tanh_power(x: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """tanh applied 1 + depth times, and its derivative."""
    value, slope = x, np.ones_like(x)
    for _ in range(1 + depth):
        value = np.tanh(value)
        slope = slope * (1.0 - value**2)
    return value, slope


def _solve_correction(c: np.ndarray, s: float, scale: float, features, depth: int) -> np.ndarray:
    """[amplitude, weights of x_k over the features] with amplitude * tanh^(1+depth)(x_k(c)) = scale * (c**s - c).

    Weighted least squares on the relative message error, with the smallest ridge (bisected on a log scale)
    that keeps sum |weights| <= MAX_INPUT: the features are bounded by 1, so x_k then stays within the gate's
    margin at every concentration, and float32 sums of the weighted features stay accurate.
    """
    c = np.asarray(c, np.float64)
    target = scale * (c**s - c)
    amplitude = max(float(np.abs(target).max()), 1e-30) / CORRECTION_LEVEL
    x = target / amplitude
    for _ in range(1 + depth):
        x = np.arctanh(x)
    _, slope = _tanh_power(x, depth)
    weight = amplitude * slope / (scale * (c**s + _floor(c) ** s))
    u, sv, vt = np.linalg.svd(features(c) * weight[:, None], full_matrices=False)
    projected = u.T @ (x * weight)

    def solution(ridge: float) -> np.ndarray:
        return vt.T @ (sv * projected / (sv**2 + ridge))

    weights = solution(0.0)
    if np.abs(weights).sum() > MAX_INPUT:
        low, high = RIDGE_RANGE  # log10 of the ridge relative to the largest squared singular value
        for _ in range(RIDGE_BISECTIONS):
            middle = (low + high) / 2
            low, high = (middle, high) if np.abs(solution(sv[0] ** 2 * 10**middle)).sum() > MAX_INPUT else (low, middle)
        weights = solution(sv[0] ** 2 * 10**high)
    return np.concatenate([[amplitude], weights])


def _set_pair(layers: list[nn.Linear], slot: int, solved: np.ndarray, index: int, n_steps: int,
              linear_scale: float) -> None:
    """Write coefficient ``coefs[index]``'s correction into unit pair ``slot`` of the second layer.

    The pair is tanh(+-x + gate); gate = SATURATED * (step below - step above - 2) is 0 at s = coefs[index]
    and -2 SATURATED at every other coefficient. The third layer takes half their difference, later
    hidden layers pass it on, and the output multiplies it by the amplitude.
    """
    amplitude, bias, linear = float(solved[0]), float(solved[1]), float(solved[2])
    weights = torch.as_tensor(solved[3:], dtype=torch.float32)
    plus, minus, unit = 1 + 2 * slot, 2 + 2 * slot, 1 + slot
    features = slice(1 + n_steps, 1 + n_steps + len(weights))
    second = layers[1]
    with torch.no_grad():
        for pair_unit, sign in ((plus, 1.0), (minus, -1.0)):
            gate = -2.0 * SATURATED
            if index > 0:  # the step below s_k reads +1 here and -1 at smaller coefficients
                second.weight[pair_unit, index] = SATURATED
            else:
                gate += SATURATED
            if index < n_steps:  # the step above s_k reads -1 here and +1 at larger coefficients
                second.weight[pair_unit, 1 + index] = -SATURATED
            else:
                gate += SATURATED
            second.weight[pair_unit, 0] = sign * linear / linear_scale  # unit 0 carries tanh(eps c)
            second.weight[pair_unit, features] = sign * weights
            second.bias[pair_unit] = sign * bias + gate
        layers[2].weight[unit, plus] = 0.5
        layers[2].weight[unit, minus] = -0.5
        for layer in layers[3:-1]:
            layer.weight[unit, unit] = 1.0
        layers[-1].weight[0, unit] = amplitude


def _floor(values: np.ndarray) -> float:
    """1% quantile of the concentrations, or (when that is a clamped zero, as in noisy data) the smallest
    positive one: the relative error weight 1 / (c**s + floor**s) must stay finite at c = 0."""
    q = float(np.quantile(values, 0.01))
    positive = values[values > 0]
    return q if q > 0 else float(positive.min()) if len(positive) else LINEAR_INPUT


def _spread(values: np.ndarray) -> np.ndarray:
    """Quantiles of the values (where the data are), and even and geometric steps over their range (the tails)."""
    quantiles = np.quantile(values, np.linspace(0.0, 1.0, N_CORRECTION_POINTS))
    low, high = quantiles[0], quantiles[-1]
    positive = values[values > 0]
    spread = np.union1d(quantiles, np.linspace(low, high, N_CORRECTION_POINTS))
    if len(positive) and high > 0:
        spread = np.union1d(spread, np.geomspace(positive.min(), high, N_CORRECTION_POINTS))
    return spread


def _correction_samples(coefs: list[float], network: Network, concentrations: np.ndarray | None, c_max: float):
    """Concentrations seen by coefficient-s substrate edges (a grid when no data is given), most-used first."""
    grid = np.concatenate([np.linspace(0.0, 1.0, 128) ** 2 * c_max * 1.1, np.geomspace(1e-3, 1.0, 32)])
    e = network.edges
    sto = np.asarray(e.sto_sub, np.float32)
    counts = {k: int(np.sum(sto == np.float32(k))) for k in coefs}
    out = {}
    for k in sorted(coefs, key=lambda k: -counts[k]):
        if concentrations is None:
            out[k] = grid
            continue
        mets = np.unique(e.met_sub[sto == np.float32(k)])
        out[k] = _spread(concentrations[:, mets])
    return out
