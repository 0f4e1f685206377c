"""Ground-truth simulator: mass-action reactions plus homeostatic regulation."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from sysid.config import SimulationConfig
from sysid.errors import SysidInputError
from sysid.simulation.homeostasis import FORM_PARAMETERS, HomeostasisLaw, config_parameters
from sysid.simulation.random_network import random_network
from sysid.truth import Simulation, Truth

log = logging.getLogger(__name__)


def metabolite_types(n_metabolites: int, n_types: int) -> np.ndarray:
    """Contiguous even blocks of indices; the last block takes the remainder."""
    block = n_metabolites // n_types
    return np.minimum(np.arange(n_metabolites) // block, n_types - 1).astype(np.int64)


def mass_action_rates(c: np.ndarray, k: np.ndarray, substrates: np.ndarray) -> np.ndarray:
    """v_j = k_j * prod_i c_i^|s_ij| for concentrations c of shape (..., n_metabolites)."""
    logc = np.log(np.maximum(c, 1e-300))
    has = substrates > 0
    power = np.where(has, substrates, 0.0)
    # prod c^s computed as exp(sum s log c); exact zeros handled by the mask below.
    rate = np.exp(logc @ power)
    zero = (c <= 0).astype(np.float64) @ has.astype(np.float64) > 0
    return k * np.where(zero, 0.0, rate)


def simulate(
    cfg: SimulationConfig, noise_level: float = 0.0, progress: Callable[[int], None] | None = None, *,
    noise_kind: str = "absolute",
) -> Simulation:
    """Euler-integrate the ground-truth system (docs/reference.md, the simulator).

    ``cfg.n_frames`` Euler steps of ``cfg.delta_t`` are taken and every ``cfg.record_every``-th state is
    recorded, with y the exact right-hand side there; the dataset's time step is record_every * delta_t.
    Measurement noise of ``noise_kind`` (absolute: + N(0, level^2); relative: * exp(N(0, level^2))) is added
    to the recorded states, and y becomes their forward difference.
    """
    if cfg.n_frames % cfg.record_every or cfg.n_frames < 2 * cfg.record_every:
        raise SysidInputError(f"config simulation.record_every ({cfg.record_every}) does not split n_frames "
                              f"({cfg.n_frames}) into at least 2 recorded steps: use a divisor of n_frames")
    rng = np.random.default_rng(cfg.seed)
    network = random_network(cfg, rng)
    n_met, n_rxn = network.S.shape
    log_k = np.asarray(rng.uniform(cfg.log_k_min, cfg.log_k_max, size=n_rxn))
    k = 10.0**log_k
    types = metabolite_types(n_met, cfg.n_metabolite_types)
    law = homeostasis_law(cfg)
    S = network.S.astype(np.float64)
    substrates = network.substrates.astype(np.float64)

    def rhs(c):
        return law.rates(c, types) + S @ mass_action_rates(c, k, substrates)

    x0 = np.asarray(rng.uniform(cfg.concentration_min, cfg.concentration_max, size=n_met))
    x, y = euler_integrate(rhs, x0, cfg.n_frames, cfg.delta_t, progress)
    positions = rng.normal(0.0, 0.25, size=(n_met, 2)).astype(np.float32)
    every = cfg.record_every
    x, y = x[::every], y[::every]
    delta_t = float(cfg.delta_t) * every
    if noise_level > 0:
        x, y = _add_measurement_noise(x, noise_level, np.float32(delta_t), np.random.default_rng(cfg.seed + 1),
                                      noise_kind)
    lambdas, baselines = law.linearisation()
    truth = Truth(types=types, lambdas=lambdas, baselines=baselines, log_k=log_k.astype(np.float32), law=law)
    return Simulation(np.ascontiguousarray(x), np.ascontiguousarray(y), positions, network, truth, delta_t,
                      record_every=every, noise_level=float(noise_level), noise_kind=noise_kind)


def euler_integrate(
    rhs: Callable[[np.ndarray], np.ndarray], x0: np.ndarray, n_frames: int, delta_t: float,
    progress: Callable[[int], None] | None = None, max_concentration: float = np.inf,
) -> tuple[np.ndarray, np.ndarray]:
    """Explicit Euler in float32, clamped at 0: frames x (n_frames + 1, n) and the exact y = rhs(x).

    A non-finite y, or a concentration above ``max_concentration``, stops it with one line.
    """
    n_met = len(x0)
    dt32 = np.float32(delta_t)
    x = np.empty((n_frames + 1, n_met), np.float32)
    y = np.empty((n_frames + 1, n_met), np.float32)
    x[0] = x0
    for t in range(n_frames + 1):
        y[t] = rhs(x[t].astype(np.float64))
        if not np.all(np.isfinite(y[t])):
            raise SysidInputError(
                f"the simulation diverged at step {t} (explicit Euler is unstable here): "
                "reduce simulation.delta_t, log_k_max or concentration_max"
            )
        if x[t].max(initial=0.0) > max_concentration:
            i = int(np.argmax(x[t]))
            raise SysidInputError(
                f"the simulation left the bounded range at step {t} (concentration {x[t, i]:.3g} of species {i} "
                f"> {max_concentration:g}): lower simulation.log_k_max or raise the homeostatic lambdas"
            )
        if t < n_frames:
            # float32 update, so x[t+1] = max(x[t] + dt * y[t], 0) holds exactly in the files
            x[t + 1] = np.maximum(x[t] + dt32 * y[t], np.float32(0))
        if progress is not None and t % 100 == 0:
            progress(t)
    return x, y


def homeostasis_law(cfg: SimulationConfig) -> HomeostasisLaw:
    """The configured regulation law with the parameters its form uses (validated by the config)."""
    params = config_parameters(cfg)
    return HomeostasisLaw(cfg.homeostasis_form,
                          {k: np.asarray(params[k], np.float64) for k in FORM_PARAMETERS[cfg.homeostasis_form]})


def _add_measurement_noise(x, level, dt32, rng, kind="absolute"):
    """Absolute: x + N(0, level^2), clamped at 0. Relative (log-normal): x * exp(N(0, level^2))."""
    draw = rng.normal(0.0, level, size=x.shape)
    if kind == "relative":
        noisy = (x * np.exp(draw)).astype(np.float32)
    elif kind == "absolute":
        noisy = np.maximum(x + draw.astype(np.float32), np.float32(0))
    else:
        raise SysidInputError(f"measurement noise kind {kind!r} is unknown: use 'absolute' or 'relative'")
    y = np.empty_like(noisy)
    y[:-1] = (noisy[1:] - noisy[:-1]) / dt32
    y[-1] = y[-2]
    return noisy, y
