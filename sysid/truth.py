"""Simulated data and its ground truth: what a simulator knows and fitting code must never see."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from sysid.network import Network

if TYPE_CHECKING:  # the simulation package imports this module
    from sysid.simulation.homeostasis import HomeostasisLaw


@dataclass(frozen=True, eq=False)
class Truth:
    """What the simulator knows and fitting code must never see."""

    types: np.ndarray  # (n_metabolites,) int
    lambdas: np.ndarray  # (n_types,)
    baselines: np.ndarray  # (n_types,)
    log_k: np.ndarray  # (n_reactions,)
    law: HomeostasisLaw | None = None  # the regulation law; None: the linear law of lambdas and baselines

    @property
    def n_types(self) -> int:
        return len(self.lambdas)

    @property
    def form(self) -> str:
        return "linear" if self.law is None else self.law.form

    def curve(self, t: int, c: np.ndarray) -> np.ndarray:
        """The true regulation h_t(c) of type t over concentrations c."""
        if self.law is None:
            return -self.lambdas[t] * (np.asarray(c, np.float64) - self.baselines[t])
        return self.law.curve(t, c)

    def rates(self, c: np.ndarray) -> np.ndarray:
        """h of every metabolite for concentrations c of shape (..., n_metabolites)."""
        if self.law is None:
            return -self.lambdas[self.types] * (c - self.baselines[self.types])
        return self.law.rates(c, self.types)

    def slopes(self) -> np.ndarray:
        """Per-type slope of the homeostatic term, -lambda_t (at the set point, for a nonlinear law)."""
        return -self.lambdas

    def offsets(self) -> np.ndarray:
        """Per-type offset of the homeostatic term, lambda_t * cb_t."""
        return self.lambdas * self.baselines


@dataclass(frozen=True, eq=False)
class SpeciesTruth:
    """Ground truth with a lambda and a set point per species (SBML datasets, truth.json); evaluation only."""

    types: np.ndarray  # (n_metabolites,) int, -1 for species without homeostasis
    lambdas: np.ndarray  # (n_metabolites,)
    baselines: np.ndarray  # (n_metabolites,) cb_i
    lambda_per_type: np.ndarray  # (n_types,)


@dataclass(frozen=True, eq=False)
class Simulation:
    concentrations: np.ndarray  # (n_frames + 1, n_metabolites) float32
    dcdt: np.ndarray  # (n_frames + 1, n_metabolites) float32
    positions: np.ndarray  # (n_metabolites, 2) float32
    network: Network
    truth: Truth
    delta_t: float  # time between recorded frames
    metadata: dict = field(default_factory=dict)  # extra truth.json keys (species and reaction ids of a real network)
    record_every: int = 1  # integration steps per recorded frame
    noise_level: float = 0.0  # measurement noise added to the recorded concentrations
    noise_kind: str = "absolute"  # "absolute" or "relative" (log-normal)
