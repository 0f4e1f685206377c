"""Stage 2: neural refine of MLP_node and embeddings by Euler rollouts through the frozen model.

MLP_node and the embeddings a start from the stage-1 fit (:mod:`sysid.stage2.init`)
and are fine-tuned on multi-step Euler rollouts of ``homeostasis_time_step``
steps, the reaction part (log_k, MLP_sub, S) frozen. Time windows are split into
interleaved training and validation blocks; the validation rollout loss of the
stage-1 initialisation and of the best fine-tuned snapshot decide which model
is kept, so the refine is never worse than stage 1 by that label-free
criterion.

During fine-tuning MLP_node is trained in the distillation's scaled units
(concentration standardised, output divided by the stage-1 magnitude) so the
configured learning rates are relative to the size of the homeostatic term;
the scales are folded back into the MetabolismGraph layout afterwards.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from sysid.config import RefineOptions
from sysid.errors import SysidInputError
from sysid.frozen import AUTO_TRANSIENT_FRAMES
from sysid.io.dataset import Dataset
from sysid.model import MetabolismModel, euler_rollout, linear_layers, pick_device
from sysid.network import Network
from sysid.stage1.result import HomeostasisFit
from sysid.stage2.gauss_newton import conserved_identity_loss, correct_group_curves
from sysid.stage2.init import DistillReport, fold_affine, initialise_from_fit

log = logging.getLogger(__name__)

STAGE1, REFINED = "stage1", "refined"


@dataclass(frozen=True)
class Windows:
    """Start frames of rollout windows [t0, t0 + horizon] lying inside training or validation blocks."""

    train: np.ndarray
    validation: np.ndarray
    horizon: int


def check_rollout_length(n_frames: int, horizon: int) -> None:
    """Stage 2 needs one training and one validation rollout window of ``horizon`` steps."""
    need = 2 * (horizon + 1)
    if n_frames < need:
        raise SysidInputError(
            f"the dataset has {n_frames} steps but --refine rolls out training.homeostasis_time_step = {horizon} "
            f"steps and needs at least {need}: use a longer dataset or a smaller homeostasis_time_step"
        )


def split_windows(n_frames: int, horizon: int, validation_fraction: float, n_blocks: int) -> Windows:
    """Interleaved contiguous blocks of frames; every ``round(1/fraction)``-th block (the last included) validates."""
    check_rollout_length(n_frames, horizon)
    n_blocks = max(2, min(n_blocks, n_frames // (horizon + 1)))
    n_val = min(max(1, round(validation_fraction * n_blocks)), n_blocks - 1)
    edges = np.linspace(0, n_frames + 1, n_blocks + 1).astype(int)
    k = np.arange(n_blocks)
    is_val = (k * n_val) // n_blocks != ((k + 1) * n_val) // n_blocks
    train: list[np.ndarray] = []
    val: list[np.ndarray] = []
    for b in range(n_blocks):
        starts = np.arange(edges[b], edges[b + 1] - horizon)
        (val if is_val[b] else train).append(starts)
    return Windows(np.concatenate(train), np.concatenate(val), horizon)


def within_experiments(windows: Windows, experiment_starts: tuple[int, ...], skip: int) -> Windows:
    """Only rollout windows inside one experiment, past its first ``skip`` frames (fast initial transients)."""
    bounds = np.asarray(experiment_starts)

    def keep(starts: np.ndarray) -> np.ndarray:
        first = np.searchsorted(bounds, starts, side="right") - 1
        last = np.searchsorted(bounds, starts + windows.horizon, side="right") - 1
        return starts[(first == last) & (starts - bounds[first] >= skip)]

    out = Windows(keep(windows.train), keep(windows.validation), windows.horizon)
    if len(out.train) == 0 or len(out.validation) == 0:
        raise SysidInputError(f"no rollout window of {windows.horizon} steps fits inside one experiment for both "
                              "training and validation: use longer experiments or a smaller homeostasis_time_step")
    return out


def evenly(starts: np.ndarray, n: int) -> np.ndarray:
    """At most ``n`` start frames spread evenly over ``starts`` (a fixed evaluation set)."""
    if len(starts) <= n:
        return starts
    return starts[np.linspace(0, len(starts) - 1, n).round().astype(int)]


def rollout_loss(model: MetabolismModel, conc: torch.Tensor, starts: torch.Tensor, horizon: int,
                 delta_t: float, projection: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error of Euler rollouts from observed states at ``starts`` against the observed frames.

    All rollouts form one (batch, n_metabolites) tensor through the model's forward pass. With
    ``projection`` (n_metabolites, r) the errors are measured in those directions only.
    """
    frames = starts[:, None] + torch.arange(horizon + 1, device=starts.device)
    observed = conc[frames]  # (batch, horizon + 1, n_met)
    predicted = euler_rollout(model, observed[:, 0], horizon, delta_t)
    error = predicted[:, 1:] - observed[:, 1:]
    if projection is not None:
        error = error @ projection
    return torch.mean(error**2)


@torch.no_grad()
def evaluation_loss(model: MetabolismModel, conc: torch.Tensor, starts: np.ndarray, horizon: int,
                    delta_t: float, projection: torch.Tensor | None = None) -> float:
    idx = torch.as_tensor(starts, device=conc.device)
    return float(rollout_loss(model, conc, idx, horizon, delta_t, projection))


def loss_projection(network: Network, space: str) -> np.ndarray | None:
    """Directions in which rollout errors are measured: conserved quantities, or None for the full state.

    Along a conservation law L (L @ S = 0) the reaction part cancels exactly, so
    errors of the frozen reaction model cannot be absorbed by MLP_node; "auto"
    uses them when the network has any, the full state otherwise.
    """
    if space == "full":
        return None
    basis = network.left_null_space()
    if len(basis) == 0:
        if space == "conserved":
            raise SysidInputError(
                "the network has no conservation law: set sysid.refine.rollout_space to 'full' or 'auto'")
        log.warning("network has no conservation law: rollout loss on the full state, which can absorb "
                    "errors of the frozen reaction model")
        return None
    return np.ascontiguousarray(basis.T)


# --- MLP_node in scaled units during fine-tuning -------------------------------------------


class ScaledNode(nn.Module):
    """y_scale * g([(c - c_mid) / c_half, a]): MLP_node with its natural scales factored out."""

    def __init__(self, net: nn.Sequential, c_mid: float, c_half: float, y_scale: float):
        super().__init__()
        self.net, self.c_mid, self.c_half, self.y_scale = net, c_mid, c_half, y_scale

    @classmethod
    @torch.no_grad()
    def unfold(cls, node_func: nn.Sequential, c_mid: float, c_half: float, y_scale: float) -> ScaledNode:
        net = copy.deepcopy(node_func)
        layers = linear_layers(net)
        first, last = layers[0], layers[-1]
        w_c = first.weight[:, 0].clone()
        first.bias.add_(w_c * c_mid)
        first.weight[:, 0] = w_c * c_half
        last.weight.div_(y_scale)
        last.bias.div_(y_scale)
        return cls(net, c_mid, c_half, y_scale)

    def fold(self) -> nn.Sequential:
        net = copy.deepcopy(self.net)
        fold_affine(net, self.c_mid, self.c_half, self.y_scale)
        return net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = (x[..., :1] - self.c_mid) / self.c_half
        return self.y_scale * self.net(torch.cat([u, x[..., 1:]], dim=-1))


# --- result ------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class RefineResult:
    """Outcome of stage 2. ``model`` is the kept one (``kept`` says which)."""

    model: MetabolismModel
    init_model: MetabolismModel
    refined_model: MetabolismModel
    kept: str  # "stage1" or "refined"
    init_val_loss: float
    refined_val_loss: float
    init_train_loss: float
    refined_train_loss: float
    phase2_loss: float  # training-window rollout loss of the kept model
    train_history: tuple[float, ...]  # batch loss per step
    val_history: tuple[tuple[int, float], ...]  # (step, validation loss); step 0 is the initialisation
    best_step: int
    distill: DistillReport
    seconds: float
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # per model, when evaluated


ProgressFn = Callable[..., None]


def refine(
    model: MetabolismModel,
    dataset: Dataset,
    fit: HomeostasisFit,
    *,
    options: RefineOptions,
    seed: int,
    progress: ProgressFn | None = None,
    device: str | torch.device | None = None,
) -> RefineResult:
    """Initialise MLP_node and a from ``fit``, fine-tune them by rollouts, keep the better by validation.

    ``model`` is not modified; the returned models live on the CPU with their
    reaction parameters identical to ``model``'s.
    """
    with _flush_subnormals():
        return _refine(model, dataset, fit, options, seed, progress, device)


@contextlib.contextmanager
def _flush_subnormals():
    """Flush float32 subnormals to zero while refining (CPU rollouts otherwise slow down 5-100x).

    torch has no getter for this process-wide mode; it is switched off again afterwards (torch's default).
    """
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def _refine(model, dataset, fit, options: RefineOptions, seed: int, progress, device) -> RefineResult:
    t_start = time.perf_counter()
    rc = options.settings
    device = pick_device(device)
    work = copy.deepcopy(model).to(device).freeze_reactions()
    conc = torch.as_tensor(dataset.concentrations, dtype=torch.float32, device=device)
    distill = initialise_from_fit(
        work, fit, float(dataset.concentrations.max()), spacing=rc.group_spacing, target=rc.distill_target,
        steps=rc.distill_steps, jitter=rc.embedding_jitter, n_jitter=rc.n_jitter, seed=seed,
    )
    init_model = copy.deepcopy(work)
    windows = split_windows(dataset.n_frames, options.horizon, rc.validation_fraction, rc.validation_blocks)
    if len(dataset.experiment_starts) > 1:
        windows = within_experiments(windows, dataset.experiment_starts, AUTO_TRANSIENT_FRAMES)
    val_set = evenly(windows.validation, rc.eval_windows)
    train_set = evenly(windows.train, rc.eval_windows)
    basis = loss_projection(dataset.network, rc.rollout_space)
    proj = None if basis is None else torch.as_tensor(basis, dtype=torch.float32, device=device)

    def loss_on(m, starts):
        return evaluation_loss(m, conc, starts, windows.horizon, dataset.delta_t, proj)

    # Training loss in units of the initialisation's: O(1) gradients for Adam (its eps assumes that) and
    # no float32 denormals in the backward pass and Adam's moments (they slow CPUs down ~20x).
    gn_model = _gauss_newton(work, dataset, fit, windows, proj, rc, seed)
    validate = lambda m: loss_on(m, val_set)  # noqa: E731
    if gn_model is not None and proj is not None:  # candidates compared by the identity the correction solved
        p = proj.cpu().numpy()
        validate = lambda m: conserved_identity_loss(  # noqa: E731
            m, dataset.concentrations, windows.validation, windows.horizon, dataset.delta_t, p)
    loss_scale = max(loss_on(work, train_set), 1e-30)
    run = _fine_tune(work, conc, windows, dataset.delta_t, proj, loss_scale, options, seed, validate, progress)
    init_val = run.val_history[0][1] if gn_model is None else validate(init_model)
    if gn_model is not None and run.val_history[0][1] <= run.best_val:  # Adam did not improve on Gauss-Newton
        run = _Run(gn_model, run.val_history[0][1], 0, run.train_history, run.val_history)
    # a relative margin, so that noise-level differences keep stage 1; NaN never wins
    kept_model = run.best if run.best_val < (1.0 - rc.min_improvement) * init_val else init_model
    kept = REFINED if kept_model is run.best else STAGE1
    train_loss = {m: loss_on(m, train_set) for m in (init_model, run.best)}
    seconds = time.perf_counter() - t_start
    log.info("refine: validation loss stage-1 init %.6g, refined %.6g (step %d); kept %s; %.1f s",
             init_val, run.best_val, run.best_step, kept, seconds)
    return RefineResult(
        model=kept_model.cpu(), init_model=init_model.cpu(), refined_model=run.best.cpu(), kept=kept,
        init_val_loss=init_val, refined_val_loss=run.best_val,
        init_train_loss=train_loss[init_model], refined_train_loss=train_loss[run.best],
        phase2_loss=train_loss[kept_model], train_history=tuple(run.train_history),
        val_history=tuple(run.val_history), best_step=run.best_step, distill=distill, seconds=seconds,
    )


def _gauss_newton(work: MetabolismModel, dataset: Dataset, fit: HomeostasisFit, windows: Windows,
                  proj: torch.Tensor | None, rc, seed: int) -> MetabolismModel | None:
    """When configured and the loss is on conserved quantities: stage 1's group curves corrected by
    Gauss-Newton on the rollout loss, and ``work`` re-initialised from them (in place); returns a copy
    of the result, or None when no step was taken."""
    steps = rc.gauss_newton_steps
    if steps < 0:
        steps = 3 if any(fit.is_curved(g) for g in range(fit.n_groups)) else 0
    if steps == 0:
        return None
    if proj is None:
        log.warning("refine: Gauss-Newton needs conservation laws (rollout_space conserved); skipped")
        return None
    corrected, _ = correct_group_curves(fit, dataset.concentrations, windows.train,
                                        windows.horizon, dataset.delta_t, proj.cpu().double().numpy(), steps)
    initialise_from_fit(work, corrected, float(dataset.concentrations.max()), spacing=rc.group_spacing,
                        target=rc.distill_target, steps=rc.distill_steps, jitter=rc.embedding_jitter,
                        n_jitter=rc.n_jitter, seed=seed)
    return copy.deepcopy(work)


@dataclass
class _Run:
    best: MetabolismModel
    best_val: float
    best_step: int
    train_history: list[float]
    val_history: list[tuple[int, float]]


def _fine_tune(model: MetabolismModel, conc: torch.Tensor, windows: Windows, delta_t: float,
               projection: torch.Tensor | None, loss_scale: float, options: RefineOptions, seed: int,
               val_loss: Callable[[MetabolismModel], float], progress: ProgressFn | None) -> _Run:
    """Adam on (MLP_node in scaled units, a); the snapshot with the lowest validation loss is returned."""
    folded = model.node_func
    scaled = ScaledNode.unfold(folded, *_scales(model, conc))
    model.node_func = scaled  # type: ignore[assignment]  # a rescaled view while fine-tuning
    for p in model.homeostasis_parameters():
        p.requires_grad_(True)
    rc = options.settings
    opt = torch.optim.Adam([
        {"params": list(scaled.parameters()), "lr": rc.lr_factor * options.lr_node},
        {"params": [model.a], "lr": rc.lr_factor * options.lr_embedding},
    ])
    gen = torch.Generator().manual_seed(seed)
    train_starts = torch.as_tensor(windows.train)
    history: list[float] = []
    vals = [(0, val_loss(model))]
    best, best_val, best_step = None, np.inf, 0
    n_steps = options.n_steps
    for step in range(1, n_steps + 1):
        pick = torch.randint(len(train_starts), (options.batch_size,), generator=gen)
        loss = rollout_loss(model, conc, train_starts[pick].to(conc.device), windows.horizon, delta_t, projection)
        opt.zero_grad(set_to_none=True)
        (loss / loss_scale).backward()
        opt.step()
        history.append(float(loss.detach()))
        fields = {"loss": history[-1]}
        if step % rc.validate_every == 0 or step == n_steps:
            vals.append((step, val_loss(model)))
            fields["val"] = vals[-1][1]
            if vals[-1][1] < best_val:
                best, best_val, best_step = _snapshot(model, scaled), vals[-1][1], step
        if progress is not None:
            progress(step, **fields)
    if best is None:  # no finite validation loss: the last state stands for the refined model
        best, best_val, best_step = _snapshot(model, scaled), vals[-1][1], n_steps
    model.node_func = scaled.fold()
    for p in model.homeostasis_parameters():
        p.requires_grad_(False)
    return _Run(best, best_val, best_step, history, vals)


def _scales(model: MetabolismModel, conc: torch.Tensor) -> tuple[float, float, float]:
    """Concentration centre and half-range, and the magnitude of MLP_node on the data's states."""
    hi = max(40.0, float(conc.max()))
    with torch.no_grad():
        y = model.node(conc[:: max(1, len(conc) // 64)])
    return 0.5 * hi, 0.5 * hi, max(float(y.abs().max()), 1e-12)


def _snapshot(model: MetabolismModel, scaled: ScaledNode) -> MetabolismModel:
    """A copy of ``model`` with MLP_node folded back into the MetabolismGraph layout."""
    model.node_func = scaled.fold()
    try:
        snap = copy.deepcopy(model)
    finally:
        model.node_func = scaled  # type: ignore[assignment]  # a rescaled view while fine-tuning
    for p in snap.homeostasis_parameters():
        p.requires_grad_(False)
    return snap
