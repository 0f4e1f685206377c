"""An SBML model as the frozen reaction model: per-reaction rates v_r(c, t) and the stoichiometry.

It offers what stages 1 and 2 use of a frozen model (see :mod:`sysid.frozen`):
``rates(c, t)``, ``apply_stoichiometry(v)``, ``reaction_dcdt(c, t)`` and
``network()``. Rates are the kinetic laws (amount/time); the stoichiometry is
the concentration stoichiometry S_ir / V_i, so ``apply_stoichiometry(rates)``
is dc/dt in concentration/time. Everything is float64 and differentiable.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from sysid.network import Network
from sysid.sbml.compiled import CompiledModel, compile_model
from sysid.sbml.simulate import model_network


class SbmlFrozenModel(nn.Module):
    stoichiometry: torch.Tensor

    shape_corrections = False  # MLP_sub shape corrections mean nothing for SBML rate laws
    species_set_points = True  # each species relaxes to its own level: groups are told apart by slope alone

    def __init__(self, compiled: CompiledModel, source: str = "SBML model"):
        super().__init__()
        self.compiled = compiled
        self.source = source
        self.n_metabolites = len(compiled.species_ids)
        self.n_reactions = len(compiled.reaction_ids)
        self.register_buffer("stoichiometry", torch.as_tensor(compiled.concentration_stoichiometry,
                                                              dtype=torch.float64))

    @classmethod
    def from_file(cls, path: str | Path) -> SbmlFrozenModel:
        return cls(compile_model(Path(path)), str(path))

    @property
    def species_ids(self) -> tuple[str, ...]:
        return self.compiled.species_ids

    @property
    def uses_time(self) -> bool:
        return self.compiled.uses_time

    def rates(self, c: torch.Tensor, t: torch.Tensor | float | None = None) -> torch.Tensor:
        return self.compiled.rates(c.to(torch.float64), t)

    def apply_stoichiometry(self, v: torch.Tensor) -> torch.Tensor:
        return v @ self.stoichiometry.T

    def reaction_dcdt(self, c: torch.Tensor, t: torch.Tensor | float | None = None) -> torch.Tensor:
        return self.apply_stoichiometry(self.rates(c, t))

    def forward(self, c: torch.Tensor, t: torch.Tensor | float | None = None) -> torch.Tensor:
        return self.reaction_dcdt(c, t)

    def network(self) -> Network:
        return model_network(self.compiled)

    def freeze_reactions(self) -> SbmlFrozenModel:
        return self  # no trainable parameters
