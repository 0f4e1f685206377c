"""Stage-2 initialisation from a stage-1 :class:`~sysid.stage1.result.HomeostasisFit`.

Embeddings a_i are placed at one centre per stage-1 group (centres at least
``spacing`` apart, ordered by the groups' fitted slopes), and MLP_node is
distilled so that MLP_node([c, a_i]) ~ slope_i * c + offset_i.

The targets are tiny (|slope| ~ 1e-3) while c spans 0..40, so the fit is done
in scaled units: concentrations standardised to [-1, 1], targets divided by
their largest magnitude, in float64 with L-BFGS. Both scalings are affine maps
adjacent to the first and last Linear layers and are folded back into them
exactly, so the model keeps the MetabolismGraph layout.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sysid.config import RefineConfig
from sysid.curves import SWEEP, line_fits
from sysid.model import MetabolismModel, linear_layers
from sysid.stage1.result import HomeostasisFit

log = logging.getLogger(__name__)

TARGETS = ("group", "metabolite")
CURVE_RESTARTS = 8


@dataclass(frozen=True)
class DistillReport:
    """How well the distilled MLP_node reproduces its targets (line fits over the distillation grid)."""

    polished: bool  # whether the L-BFGS polish of all layers was needed
    loss: float  # final mean squared residual in scaled units
    max_slope_error: float  # max over embeddings of |fitted - target| / |target|, line fits over the metric's sweep
    max_offset_error: float  # same for the offsets
    max_curve_error: float  # max |MLP_node - line| on the grid, relative to the largest |line|


def group_centres(n_groups: int, dim: int, spacing: float) -> np.ndarray:
    """``n_groups`` points in R^dim, neighbours ``spacing`` apart (a circle in 2+ dims, a line in 1)."""
    centres = np.zeros((n_groups, dim))
    if n_groups <= 1:
        return centres
    if dim == 1 or n_groups == 2:
        centres[:, 0] = spacing * (np.arange(n_groups) - (n_groups - 1) / 2)
        return centres
    radius = spacing / (2.0 * np.sin(np.pi / n_groups))
    angle = 2.0 * np.pi * np.arange(n_groups) / n_groups
    centres[:, 0], centres[:, 1] = radius * np.cos(angle), radius * np.sin(angle)
    return centres


def initial_embeddings(fit: HomeostasisFit, dim: int, spacing: float) -> np.ndarray:
    """One embedding per metabolite: the centre of its stage-1 group (groups ordered by pooled slope)."""
    slopes, _ = fit.group_means()
    order = np.argsort(slopes, kind="stable")
    centres = np.empty((fit.n_groups, dim))
    centres[order] = group_centres(fit.n_groups, dim, spacing)
    return centres[fit.groups]


def node_targets(fit: HomeostasisFit, target: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-metabolite (slope, offset) the distilled MLP_node must reproduce."""
    if target == "group":
        slopes, offsets = fit.group_means()
        return slopes[fit.groups], offsets[fit.groups]
    if target == "metabolite":
        return np.asarray(fit.slope, np.float64), np.asarray(fit.offset, np.float64)
    raise ValueError(f"target must be one of {TARGETS}, got {target!r}")


def distillation_grid(c_max_data: float, n_points: int = 64) -> np.ndarray:
    """Concentrations covering the metric's sweep 0..40 and the observed range."""
    hi = max(40.0, 1.05 * float(c_max_data))
    return np.unique(np.concatenate([np.linspace(0.0, hi, n_points), np.linspace(0.0, 40.0, 50)]))


def distill_node(
    model: MetabolismModel,
    embeddings: np.ndarray,
    slopes: np.ndarray,
    offsets: np.ndarray,
    grid: np.ndarray,
    *,
    steps: int = 200,
    tolerance: float = 1e-3,
    jitter: float = 0.0,
    n_jitter: int = 0,
    seed: int = 0,
    curves: np.ndarray | None = None,
) -> DistillReport:
    """Fit ``model.node_func`` in place so that MLP_node([c, e_k]) = slopes[k] * c + offsets[k] on ``grid``
    (or = curves[k] on ``grid`` when target ``curves`` are given; slopes and offsets are then their line fits).

    The last Linear layer is solved by (ridge) least squares on the hidden
    features, with extra rows pinning each curve's line fit over the metric's
    sweep; if that misses ``tolerance`` (relative), all layers are polished by
    at most ``steps`` L-BFGS iterations and the last layer is solved again.
    Identical embedding rows are fitted once. With ``n_jitter`` > 0, copies of
    each embedding displaced by N(0, jitter^2) share its target, which makes
    MLP_node flat in a around the given points.
    """
    emb, idx = np.unique(np.asarray(embeddings, np.float64), axis=0, return_index=True)
    s, o = np.asarray(slopes, np.float64)[idx], np.asarray(offsets, np.float64)[idx]
    y = None if curves is None else np.asarray(curves, np.float64)[idx]
    problem = _Problem(grid, *_with_jitter(emb, s, o, y, jitter, n_jitter, seed))
    net = copy.deepcopy(model.node_func).cpu().double()
    if y is not None:
        _spread_first_layer(net, grid, problem, emb, seed)
    problem.solve_last_layer(net)
    polished = steps > 0 and problem.max_error(net, curves=y is not None) > tolerance
    if polished:
        problem.polish(net, steps)
        problem.solve_last_layer(net)
        for _ in range(CURVE_RESTARTS if y is not None else 0):  # L-BFGS stalls early on curves: restart it
            before = problem.loss(net)
            problem.polish(net, steps)
            problem.solve_last_layer(net)
            if problem.loss(net) > 0.95 * before:
                break
    loss = problem.loss(net)
    fold_affine(net, problem.c_mid, problem.c_half, problem.y_scale)
    with torch.no_grad():
        for dst, src in zip(model.node_func.parameters(), net.parameters(), strict=True):
            dst.copy_(src.to(device=dst.device, dtype=dst.dtype))
    return _report(model, np.asarray(embeddings)[idx], s, o, grid, polished, loss, y)


@torch.no_grad()
def _spread_first_layer(net: nn.Sequential, grid: np.ndarray, problem: _Problem, emb: np.ndarray, seed: int) -> None:
    """Curved targets: first-layer units as tanh steps at concentrations c_k = c_max ((k + 1/2) / H)^2 (dense at
    low c, where regulation curves bend) with widths of twice the local spacing, and random weights on a so
    that each group gets its own set of steps; the last layer is then solved by least squares."""
    first = net[0]
    assert isinstance(first, nn.Linear)
    n_hidden = first.out_features
    c = grid.max() * ((np.arange(n_hidden) + 0.5) / n_hidden) ** 2
    width = 2.0 * np.gradient(c) / problem.c_half  # in the scaled units u = (c - c_mid) / c_half
    centre = (c - problem.c_mid) / problem.c_half
    rng = np.random.default_rng(seed)
    spread = max(float(np.ptp(emb)), 1e-6) if len(emb) > 1 else 1.0
    w_a = rng.normal(0.0, 1.0 / spread, size=(n_hidden, first.in_features - 1))
    first.weight.copy_(torch.as_tensor(np.column_stack([1.0 / width, w_a])))
    first.bias.copy_(torch.as_tensor(-centre / width))


def _with_jitter(emb, s, o, y, jitter: float, n_jitter: int, seed: int):
    if n_jitter <= 0 or jitter <= 0:
        return emb, s, o, y
    rng = np.random.default_rng(seed)
    extra = emb[:, None, :] + rng.normal(0.0, jitter, size=(len(emb), n_jitter, emb.shape[1]))
    return (np.concatenate([emb, extra.reshape(-1, emb.shape[1])]),
            np.concatenate([s, np.repeat(s, n_jitter)]), np.concatenate([o, np.repeat(o, n_jitter)]),
            None if y is None else np.concatenate([y, np.repeat(y, n_jitter, axis=0)]))


class _Problem:
    """Scaled distillation problem: rows (embedding, grid point) plus two line-fit rows per embedding.

    Concentrations are standardised to [-1, 1] and targets divided by their
    largest magnitude. The line fit over the sweep is a linear functional of a
    curve, so its rows (relative slope and offset errors) stay linear in the
    last layer's weights.
    """

    RIDGE = 1e-12

    def __init__(self, grid: np.ndarray, emb: np.ndarray, s: np.ndarray, o: np.ndarray, y: np.ndarray | None):
        self.c_mid, self.c_half = 0.5 * (grid.max() + grid.min()), 0.5 * (grid.max() - grid.min())
        self.use_lines = y is None  # curve targets carry no line rows (a flat curve's relative slope is ill-posed)
        y = s[:, None] * grid[None, :] + o[:, None] if y is None else y
        self.y_scale = float(np.abs(y).max()) or 1.0
        self.x = _inputs((grid - self.c_mid) / self.c_half, emb)
        self.target = torch.as_tensor(y / self.y_scale)  # (n_emb, n_grid)
        cols = np.flatnonzero(np.isin(grid, SWEEP))
        design = np.column_stack([grid[cols], np.ones(len(cols))])
        floor = 1e-3 * self.y_scale
        norm = np.stack([np.maximum(np.abs(s), floor / SWEEP.max()), np.maximum(np.abs(o), floor)])  # (2, n_emb)
        # line rows: (proj @ curve[cols] - [s, o]) / norm, with curves in scaled units
        self.proj = torch.as_tensor(np.linalg.pinv(design) * self.y_scale)  # (2, n_sweep)
        self.cols = torch.as_tensor(cols)
        self.norm = torch.as_tensor(norm)
        self.line_target = torch.as_tensor(np.stack([s, o]) / norm)

    def _line_rows(self, curves: torch.Tensor) -> torch.Tensor:
        """(2, n_emb, ...) line-fit values of curves (n_emb, n_grid, ...) in relative units."""
        sweep = curves[:, self.cols]
        return torch.einsum("ps,es...->pe...", self.proj, sweep) / self.norm.reshape(2, -1, *([1] * (sweep.ndim - 2)))

    def residuals(self, net: nn.Sequential) -> torch.Tensor:
        curves = net(self.x).reshape(self.target.shape)
        if not self.use_lines:
            return (curves - self.target).reshape(-1)
        lines = self._line_rows(curves) - self.line_target
        return torch.cat([(curves - self.target).reshape(-1), lines.reshape(-1)])

    def loss(self, net: nn.Sequential) -> float:
        with torch.no_grad():
            return float(torch.mean(self.residuals(net) ** 2))

    def max_error(self, net: nn.Sequential, curves: bool = False) -> float:
        """Largest relative error of the line fits (and, with ``curves``, of the curves themselves)."""
        with torch.no_grad():
            out = net(self.x).reshape(self.target.shape)
            if curves:
                return float((out - self.target).abs().max())
            return float((self._line_rows(out) - self.line_target).abs().max())

    @torch.no_grad()
    def solve_last_layer(self, net: nn.Sequential) -> None:
        last = linear_layers(net)[-1]
        feats = net[:-1](self.x)
        feats = torch.cat([feats, torch.ones_like(feats[:, :1])], dim=1).reshape(*self.target.shape, -1)
        a, b = feats.reshape(-1, feats.shape[-1]), self.target.reshape(-1)
        if self.use_lines:
            a = torch.cat([a, self._line_rows(feats).reshape(-1, feats.shape[-1])])
            b = torch.cat([b, self.line_target.reshape(-1)])
        gram = a.T @ a
        gram += self.RIDGE * torch.trace(gram) / len(gram) * torch.eye(len(gram), dtype=gram.dtype)
        w = torch.linalg.solve(gram, a.T @ b)
        last.weight.copy_(w[:-1][None])
        last.bias.fill_(w[-1])

    def polish(self, net: nn.Sequential, steps: int) -> None:
        net.requires_grad_(True)
        opt = torch.optim.LBFGS(net.parameters(), lr=1.0, max_iter=steps, history_size=50,
                                tolerance_grad=1e-14, tolerance_change=1e-16, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = torch.mean(self.residuals(net) ** 2)
            loss.backward()
            return loss

        opt.step(closure)
        net.requires_grad_(False)


def _inputs(u: np.ndarray, emb: np.ndarray) -> torch.Tensor:
    """All (embedding, concentration) pairs as rows [u, a]: (n_emb * n_grid, 1 + dim), embedding-major."""
    n_e, n_c = len(emb), len(u)
    cc = np.broadcast_to(u[None, :], (n_e, n_c))
    ee = np.broadcast_to(emb[:, None, :], (n_e, n_c, emb.shape[1]))
    return torch.as_tensor(np.concatenate([cc[..., None], ee], axis=-1).reshape(n_e * n_c, -1))


@torch.no_grad()
def fold_affine(net: nn.Sequential, c_mid: float, c_half: float, y_scale: float) -> None:
    """Absorb u = (c - c_mid) / c_half into the first Linear and y = y_scale * out into the last."""
    layers = linear_layers(net)
    first, last = layers[0], layers[-1]
    w_c = first.weight[:, 0].clone()
    first.weight[:, 0] = w_c / c_half
    first.bias.sub_(w_c * c_mid / c_half)
    last.weight.mul_(y_scale)
    last.bias.mul_(y_scale)


@torch.no_grad()
def _report(model, emb, slopes, offsets, grid, polished, loss, targets=None) -> DistillReport:
    a = torch.as_tensor(emb, dtype=model.dtype, device=model.device)

    def curves(c: np.ndarray) -> np.ndarray:
        cc = torch.as_tensor(c, dtype=model.dtype, device=model.device)[:, None].expand(-1, len(a))
        return model.node(cc, a).T.cpu().double().numpy()

    fs, fo = line_fits(SWEEP, curves(SWEEP))
    lines = slopes[:, None] * grid[None, :] + offsets[:, None] if targets is None else targets
    scale = max(float(np.abs(lines).max()), 1e-30)
    report = DistillReport(
        polished=polished,
        loss=loss,
        max_slope_error=float(np.max(np.abs(fs - slopes) / np.maximum(np.abs(slopes), 1e-30))),
        max_offset_error=float(np.max(np.abs(fo - offsets) / np.maximum(np.abs(offsets), 1e-30))),
        max_curve_error=float(np.abs(curves(grid) - lines).max() / scale),
    )
    log.info("distilled MLP_node: relative slope error %.1e, offset error %.1e, curve error %.1e",
             report.max_slope_error, report.max_offset_error, report.max_curve_error)
    return report


def initialise_from_fit(
    model: MetabolismModel,
    fit: HomeostasisFit,
    c_max_data: float,
    *,
    spacing: float = RefineConfig.group_spacing,
    target: str = RefineConfig.distill_target,
    steps: int = RefineConfig.distill_steps,
    jitter: float = RefineConfig.embedding_jitter,
    n_jitter: int = RefineConfig.n_jitter,
    seed: int = 0,
) -> DistillReport:
    """Set ``model.a`` from the stage-1 groups and distil ``model.node_func`` to the stage-1 lines (in place)."""
    if fit.groups.shape != (model.n_metabolites,):
        raise ValueError(f"fit has {fit.groups.shape[0]} metabolites, the model {model.n_metabolites}")
    emb = initial_embeddings(fit, model.a.shape[1], spacing)
    slopes, offsets = node_targets(fit, target)
    if target == "metabolite":
        emb = emb + _within_group_spread(fit, slopes, offsets, model.a.shape[1], 0.02 * spacing)
    with torch.no_grad():
        model.a.copy_(torch.as_tensor(emb, dtype=model.a.dtype))
    grid = distillation_grid(c_max_data)
    curved = [fit.curve(g) for g in range(fit.n_groups) if fit.is_curved(g)]
    if curved:  # dense where the curves bend: up to the groups' 99th percentiles, and near 0
        hi = max(curve.hi for curve in curved)
        grid = np.unique(np.concatenate([grid, np.linspace(0.0, hi, 128), np.geomspace(1e-3, hi, 64)]))
    curves = node_curve_targets(fit, slopes, offsets, grid)
    if curves is not None:  # curved groups: their stage-1 curves, continued as tangents outside the data
        slopes, offsets = line_fits(SWEEP, curves[:, np.isin(grid, SWEEP)])
    return distill_node(model, emb, slopes, offsets, grid, steps=steps, jitter=jitter, n_jitter=n_jitter, seed=seed,
                        curves=curves)


def node_curve_targets(fit: HomeostasisFit, slopes: np.ndarray, offsets: np.ndarray, grid: np.ndarray
                       ) -> np.ndarray | None:
    """(n_metabolites, n_grid) targets when some stage-1 group is curved: its curve for a curved group's
    members (extrapolated linearly outside the group's observed range), the line for the others; else None."""
    if not any(fit.is_curved(g) for g in range(fit.n_groups)):
        return None
    out = slopes[:, None] * grid[None, :] + offsets[:, None]
    for g in range(fit.n_groups):
        if fit.is_curved(g):
            out[fit.groups == g] = fit.curve(g)(grid, extrapolate=True)
    return out


def _within_group_spread(fit, slopes, offsets, dim, radius) -> np.ndarray:
    """Small per-metabolite displacements (standardised slope/offset deviations) inside each group."""
    out = np.zeros((len(slopes), dim))
    for g in range(fit.n_groups):
        m = fit.groups == g
        for k, v in enumerate((slopes, offsets)[:dim]):
            dev = v[m] - v[m].mean()
            sd = dev.std()
            out[m, k] = radius * np.clip(dev / sd, -2.0, 2.0) / 2.0 if sd > 0 else 0.0
    return out
