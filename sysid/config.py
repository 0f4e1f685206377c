"""Typed configuration, read once from MetabolismGraph-style YAML.

The sections ``simulation``, ``graph_model`` and ``training`` keep the MetabolismGraph key names; sysid's own
stages live in the ``sysid`` section. Unknown keys are ignored with a warning; values of the wrong type or that
are inconsistent raise :class:`~sysid.errors.SysidInputError`.
"""

from __future__ import annotations

import dataclasses
import logging
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from sysid.errors import SysidInputError
from sysid.network_config import NetworkConfig
from sysid.sbml_config import SbmlConfig

log = logging.getLogger(__name__)
STAGE1_FORMS = ("linear", "quadratic", "cubic", "saturating", "rational")  # see sysid/stage1/forms.py


@dataclass(frozen=True)
class SimulationConfig:
    n_metabolites: int = 100
    n_metabolite_types: int = 2
    n_reactions: int = 256
    max_metabolites_per_reaction: int = 3
    n_frames: int = 2880
    delta_t: float = 0.1
    seed: int = 42
    concentration_min: float = 1.0
    concentration_max: float = 9.0
    cycle_fraction: float = 1.0
    cycle_length: int = 3
    use_mass_action: bool = True
    log_k_min: float = -2.0
    log_k_max: float = -1.0
    flux_limit: bool = False
    homeostatic_lambda_per_type: tuple[float, ...] = (0.001, 0.002)
    homeostatic_baseline_per_type: tuple[float, ...] = (4.0, 6.0)
    record_every: int = 1  # one recorded frame every this many Euler steps (sparse sampling)
    homeostasis_form: str = "linear"  # linear | saturating | hill (sysid/simulation/homeostasis.py)
    homeostatic_scale_per_type: tuple[float, ...] = ()  # K of the saturating and hill forms
    homeostatic_vmax_per_type: tuple[float, ...] = ()  # v of the hill form
    homeostatic_hill_per_type: tuple[float, ...] = ()  # n of the hill form
    homeostatic_decay_per_type: tuple[float, ...] = ()  # d of the hill form

    def __post_init__(self) -> None:
        from sysid.simulation.homeostasis import check_parameters, config_parameters  # lazy: simulation imports us
        _positive(self, "n_metabolites", "n_metabolite_types", "n_reactions", "n_frames", "record_every")
        _positive(self, "delta_t", "max_metabolites_per_reaction", "cycle_length")
        t = self.n_metabolite_types
        if t > self.n_metabolites:
            _bad("simulation.n_metabolite_types", f"{t} exceeds n_metabolites", "use at most one type per metabolite")
        check_parameters(self.homeostasis_form, t, config_parameters(self))
        if not 0.0 <= self.cycle_fraction <= 1.0:
            _bad("simulation.cycle_fraction", f"is {self.cycle_fraction}", "use a value in [0, 1]")
        if self.concentration_min < 0 or self.concentration_max < self.concentration_min:
            _bad("simulation.concentration_min/max", "are not 0 <= min <= max", "fix the range")
        if self.log_k_max < self.log_k_min:
            _bad("simulation.log_k_min/max", "are not min <= max", "fix the range")
        if self.cycle_fraction > 0 and self.cycle_length > self.n_metabolites:
            _bad("simulation.cycle_length", "exceeds n_metabolites", "use a shorter cycle")
        if not self.use_mass_action or self.flux_limit:
            _bad("simulation.use_mass_action/flux_limit", "only mass action without flux limit is simulated",
                 "set use_mass_action: true and flux_limit: false")


@dataclass(frozen=True)
class GraphModelConfig:
    hidden_dim_sub: int = 64
    n_layers_sub: int = 4
    hidden_dim_node: int = 32
    n_layers_node: int = 2
    embedding_dim: int = 2
    aggr_type: str = "mul"

    def __post_init__(self) -> None:
        _positive(self, "hidden_dim_sub", "n_layers_sub", "hidden_dim_node", "n_layers_node", "embedding_dim")
        if self.aggr_type not in ("mul", "add"):
            _bad("graph_model.aggr_type", f"is {self.aggr_type!r}", "use 'mul' or 'add'")


@dataclass(frozen=True)
class TrainingConfig:
    batch_size: int = 8
    seed: int = 42
    data_augmentation_loop: int = 200
    homeostasis_time_step: int = 32
    learning_rate_node_homeostasis: float = 1e-3
    learning_rate_embedding_homeostasis: float = 1e-3
    measurement_noise_level: float = 0.0
    measurement_noise_kind: str = "absolute"  # "absolute" (+ N(0, level^2)) or "relative" (* exp(N(0, level^2)))
    cluster_distance_threshold: float = 0.1

    def __post_init__(self) -> None:
        _positive(self, "batch_size", "data_augmentation_loop", "homeostasis_time_step")
        _positive(self, "learning_rate_node_homeostasis", "learning_rate_embedding_homeostasis")
        _positive(self, "cluster_distance_threshold")
        if self.measurement_noise_level < 0 or self.measurement_noise_kind not in ("absolute", "relative"):
            _bad("training.measurement_noise_level/kind", "is < 0 or unknown", "use >= 0, absolute or relative")


@dataclass(frozen=True)
class Phase1Config:
    """Training of the frozen reaction model (log_k and MLP_sub); see docs/phase1.md."""

    n_epochs: int = 0  # Adam epochs on MLP_sub after the exact log_k solve (0: keep the MLP_sub start)
    batch_frames: int = 128
    learning_rate_k: float = 1e-4
    learning_rate_sub: float = 1e-8  # relative to each MLP_sub layer's largest weight
    varpro_fraction: float = 1.0  # first part of the epochs: log_k re-solved exactly after each epoch
    log_k_prior: float = 1e-3  # weight of var(corrected log_k) against the normalised squared error
    sub_init: str = "linear"  # MLP_sub start: "linear" (first order in c) or "random" (PyTorch default)
    reweight_iterations: int = 2  # log_k re-solved with metabolites weighted by 1 / (their residual rms)**2
    seed: int = 42
    max_minutes: float = 9.0  # safety stop of the Adam epochs (logged)

    def __post_init__(self) -> None:
        _positive(self, "batch_frames", "learning_rate_k", "learning_rate_sub", "max_minutes", "log_k_prior")
        if self.n_epochs < 0:
            _bad("sysid.phase1.n_epochs", f"is {self.n_epochs}", "use a value >= 0")
        if not 0.0 <= self.varpro_fraction <= 1.0:
            _bad("sysid.phase1.varpro_fraction", f"is {self.varpro_fraction}", "use a value in [0, 1]")
        if self.sub_init not in ("linear", "random"):
            _bad("sysid.phase1.sub_init", f"is {self.sub_init!r}", "use 'linear' or 'random'")
        if self.reweight_iterations < 0:
            _bad("sysid.phase1.reweight_iterations", f"is {self.reweight_iterations}", "use a value >= 0")


@dataclass(frozen=True)
class Stage1Config:
    """Residual regression and grouping."""

    window: int = 0  # steps per integral window; 0 = chosen from the estimated measurement noise
    min_window: int = 10
    max_window: int = 60
    reference_relative_noise: float = 2.4e-3  # noise / median concentration that min_window tolerates
    ramp: int = 5  # frames averaged at each window end when the data are noisy (weak form, trapezoidal test function)
    shape_knots: int = 16
    n_iterations: int = 6
    hac_maxlags: int = 5
    ridge: float = 1e-10
    sindy_threshold: float = 0.05  # share of a metabolite's residual norm a c^2 term needs to be kept
    max_groups: int = 8
    min_group_size: int = 5
    transient_frames: int = -1  # frames left out at the start of each experiment; -1: 5 if several, else 0
    misfit_threshold: float = 0.01  # smooth residual / frozen model's term above which the fit is not trusted
    substeps: int = 0  # Euler sub-steps per interval of a sparse record; 0: the record's own (truth.json) or 10
    bound_window: int = 0  # >0: Cramer-Rao bounds in detectability.csv, windows of this many samples (slow)
    output_error_windows: tuple[int, ...] = (10, 20, 40, 80)  # noisy records: output-error windows (samples); () off
    output_error_max_steps: int = 400  # output-error windows spanning more integration steps are left out
    noise_kind: str = "auto"  # output error: "absolute", "relative" (log-normal) or "auto" (told by the data)
    tied_groups: bool = True  # output error: each group's values refitted with its members' parameters tied
    output_error_shape: str = "all"  # output error: also fit MLP_sub shape corrections: "all", "euler" or "off"
    forms: tuple[str, ...] = STAGE1_FORMS  # candidate curve forms per group (sysid/stage1/forms.py)
    form_threshold: float = 0.3  # share of the line's weighted RSS a curve must remove to be eligible

    def __post_init__(self) -> None:
        _positive(self, "min_window", "max_window", "n_iterations", "max_groups", "min_group_size", "ramp",
                  "output_error_max_steps")
        if self.transient_frames < -1:
            _bad("sysid.stage1.transient_frames", f"is {self.transient_frames}", "use -1 (automatic) or >= 0")
        _positive(self, "reference_relative_noise", "sindy_threshold", "misfit_threshold")
        if min(self.window, self.ridge, self.shape_knots, self.hac_maxlags, self.substeps, self.bound_window) < 0:
            _bad("sysid.stage1", "window, ridge, shape_knots, hac_maxlags, substeps or bound_window is < 0", "fix it")
        if any(w < 2 for w in self.output_error_windows):
            _bad("sysid.stage1.output_error_windows", "has a window below 2 samples", "use windows of >= 2 samples")
        if self.output_error_shape not in ("off", "euler", "all"):
            _bad("sysid.stage1.output_error_shape", f"is {self.output_error_shape!r}",
                 "use 'off', 'euler' (Euler-stepped records only) or 'all'")
        if self.noise_kind not in ("auto", "absolute", "relative"):
            _bad("sysid.stage1.noise_kind", f"is {self.noise_kind!r}", "use 'auto', 'absolute' or 'relative'")
        if self.max_window < self.min_window:
            _bad("sysid.stage1.max_window", "is below min_window", "use max_window >= min_window")
        if any(f not in STAGE1_FORMS for f in self.forms) or not 0.0 < self.form_threshold < 1.0:
            _bad("sysid.stage1.forms", "or form_threshold is invalid", f"use forms of {STAGE1_FORMS}, a share in (0,1)")


@dataclass(frozen=True)
class RefineConfig:
    """Neural refine of MLP_node and embeddings (stage 2); see sysid/stage2/refine.py.

    Rollout length, steps, batch size and learning rates are the MetabolismGraph
    keys of ``training`` (homeostasis_time_step, data_augmentation_loop,
    batch_size, learning_rate_node_homeostasis / _embedding_homeostasis).
    """

    rollout_space: str = "auto"  # rollout errors on "conserved" quantities (L @ S = 0), the "full" state, or "auto"
    lr_factor: float = 0.01  # multiplies the training learning rates (MLP_node is trained in scaled units)
    min_improvement: float = 0.05  # the refined model is kept only if its validation loss is this much lower
    validation_fraction: float = 0.2  # share of the trajectory's time blocks held out
    validation_blocks: int = 10  # the trajectory is cut into this many interleaved blocks
    validate_every: int = 25  # steps between validation rollouts
    eval_windows: int = 64  # rollout windows in the fixed validation (and training-loss) sets
    group_spacing: float = 1.0  # distance between neighbouring stage-1 group centres in embedding space
    distill_target: str = "group"  # MLP_node distilled to "group" pooled lines or per-"metabolite" lines
    distill_steps: int = 200  # L-BFGS budget of the distillation polish (used only if least squares misses)
    embedding_jitter: float = 0.0  # sd of embedding copies that share their group's line (flat MLP_node in a)
    n_jitter: int = 8  # copies per embedding when embedding_jitter > 0
    gauss_newton_steps: int = -1  # conserved-identity correction steps of stage 1's curves; -1: 3 if it chose a curve

    def __post_init__(self) -> None:
        _positive(self, "validation_blocks", "validate_every", "eval_windows", "group_spacing", "lr_factor")
        if not 0.0 < self.validation_fraction < 1.0:
            _bad("sysid.refine.validation_fraction", f"is {self.validation_fraction}", "use a value in (0, 1)")
        if not 0.0 <= self.min_improvement < 1.0:
            _bad("sysid.refine.min_improvement", f"is {self.min_improvement}", "use a value in [0, 1)")
        if self.validation_blocks < 2:
            _bad("sysid.refine.validation_blocks", f"is {self.validation_blocks}", "use at least 2")
        if self.rollout_space not in ("auto", "conserved", "full"):
            _bad("sysid.refine.rollout_space", f"is {self.rollout_space!r}", "use 'auto', 'conserved' or 'full'")
        if self.distill_target not in ("group", "metabolite"):
            _bad("sysid.refine.distill_target", f"is {self.distill_target!r}", "use 'group' or 'metabolite'")
        if min(self.distill_steps, self.embedding_jitter, self.n_jitter, self.gauss_newton_steps + 1) < 0:
            _bad("sysid.refine", "has a negative step count or jitter", "use >= 0 (gauss_newton_steps -1: automatic)")


@dataclass(frozen=True)
class SysidSection:
    phase1: Phase1Config = field(default_factory=Phase1Config)
    stage1: Stage1Config = field(default_factory=Stage1Config)
    refine: RefineConfig = field(default_factory=RefineConfig)


@dataclass(frozen=True)
class Config:
    simulation: SimulationConfig = field(default_factory=SimulationConfig)
    graph_model: GraphModelConfig = field(default_factory=GraphModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    sysid: SysidSection = field(default_factory=SysidSection)
    sbml: SbmlConfig = field(default_factory=SbmlConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)

    def replace(self, section: str, **changes) -> Config:
        """A copy with some keys of one section changed (validated)."""
        new = dataclasses.replace(getattr(self, section), **changes)
        return dataclasses.replace(self, **{section: new})

    def refine_options(self) -> RefineOptions:
        """Stage-2 options: the MetabolismGraph ``training`` keys mapped once to their meaning here."""
        t = self.training
        return RefineOptions(
            horizon=t.homeostasis_time_step, n_steps=t.data_augmentation_loop, batch_size=t.batch_size,
            lr_node=t.learning_rate_node_homeostasis, lr_embedding=t.learning_rate_embedding_homeostasis,
            settings=self.sysid.refine,
        )


@dataclass(frozen=True)
class RefineOptions:
    """Everything stage 2 needs, under the names it uses (built by :meth:`Config.refine_options`)."""

    horizon: int = TrainingConfig.homeostasis_time_step  # Euler steps per rollout
    n_steps: int = TrainingConfig.data_augmentation_loop  # optimiser steps
    batch_size: int = TrainingConfig.batch_size  # rollouts per step
    lr_node: float = TrainingConfig.learning_rate_node_homeostasis
    lr_embedding: float = TrainingConfig.learning_rate_embedding_homeostasis
    settings: RefineConfig = field(default_factory=RefineConfig)

    def __post_init__(self) -> None:
        if min(self.horizon, self.n_steps, self.batch_size) <= 0 or min(self.lr_node, self.lr_embedding) <= 0:
            raise SysidInputError("refine options: horizon, n_steps, batch_size and learning rates must be positive")


def _bad(key: str, problem: str, fix: str) -> typing.NoReturn:
    raise SysidInputError(f"config {key} {problem}: {fix}")


def _positive(obj, *names: str) -> None:
    section = _SECTION_NAMES.get(type(obj), type(obj).__name__)
    for name in names:
        if getattr(obj, name) <= 0:
            _bad(f"{section}.{name}", f"is {getattr(obj, name)}", "use a positive value")


def _coerce(value, annotation, key: str):
    """Check one YAML value against a field annotation, converting safe cases."""
    origin = typing.get_origin(annotation)
    if origin is tuple:
        item_type = typing.get_args(annotation)[0]
        if not isinstance(value, list | tuple):
            raise SysidInputError(f"config {key} must be a list, got {value!r}: write it as [a, b, ...]")
        return tuple(_coerce(v, item_type, f"{key}[{i}]") for i, v in enumerate(value))
    if annotation is bool:
        if isinstance(value, bool):
            return value
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif annotation is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1E-3 as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif annotation is str:
        if isinstance(value, str):
            return value
    raise SysidInputError(
        f"config {key} must be of type {getattr(annotation, '__name__', annotation)}, got {value!r}: fix its value"
    )


def _build(cls, data, section: str):
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SysidInputError(f"config section {section!r} must be a mapping of keys to values: fix its layout")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in hints:
            log.warning("config %s.%s is not used by sysid; ignored", section, key)
            continue
        if dataclasses.is_dataclass(hints[key]):
            kwargs[key] = _build(hints[key], value, f"{section}.{key}")
        else:
            kwargs[key] = _coerce(value, hints[key], f"{section}.{key}")
    return cls(**kwargs)


_SECTION_NAMES = {
    SimulationConfig: "simulation", GraphModelConfig: "graph_model", TrainingConfig: "training",
    Phase1Config: "sysid.phase1", Stage1Config: "sysid.stage1", RefineConfig: "sysid.refine", SbmlConfig: "sbml",
    NetworkConfig: "network",
}


def config_from_dict(data: dict) -> Config:
    """Build and validate a :class:`Config` from a parsed YAML mapping."""
    if not isinstance(data, dict):
        raise SysidInputError("config file must be a YAML mapping with sections simulation/graph_model/training")
    hints = typing.get_type_hints(Config)
    kwargs = {}
    for section, value in data.items():
        if section not in hints:
            log.warning("config section %r is not used by sysid; ignored", section)
            continue
        kwargs[section] = _build(hints[section], value, section)
    return Config(**kwargs)


def load_config(path: str | Path | None) -> Config:
    """Read a YAML config; ``None`` gives the default regime."""
    if path is None:
        return Config()
    return config_from_dict(read_yaml(path, "config file") or {})


def read_yaml(path: str | Path, what: str):
    """The parsed YAML of ``path``; a missing file or bad syntax is a SysidInputError naming ``what``."""
    path = Path(path)
    if not path.is_file():
        raise SysidInputError(f"{what} {path} does not exist: pass the path of a YAML file")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0]
        raise SysidInputError(f"{what} {path} is not valid YAML ({first}): fix its syntax") from None


def coerce_key(dotted: str, value):
    """``value`` checked against the type of the config key ``dotted`` (e.g. ``simulation.seed``), converted.

    Raises :class:`SysidInputError` for a key that is not a config key and for a
    value of the wrong type; value checks (ranges, consistency) are left to the
    sections' ``__post_init__``.
    """
    cls = Config
    for part in dotted.split("."):
        hints = typing.get_type_hints(cls) if dataclasses.is_dataclass(cls) else {}
        if part not in hints:
            raise SysidInputError(f"{dotted!r} is not a config key: use a dotted key such as simulation.seed")
        cls = hints[part]
    if dataclasses.is_dataclass(cls):
        raise SysidInputError(f"{dotted!r} names a config section, not a key: add the key, e.g. {dotted}.KEY")
    return _coerce(value, cls, dotted)
