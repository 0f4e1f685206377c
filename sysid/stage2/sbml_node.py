"""Stage 2 on an SBML frozen model: MLP_node and embeddings on top of compiled SBML rate laws.

:class:`SbmlNodeModel` is a :class:`~sysid.model.MetabolismModel` whose reaction
part is an SBML model's (:class:`~sysid.sbml.frozen.SbmlFrozenModel`): dc/dt =
MLP_node([c_i, a_i]) + S v_sbml(c). It keeps the MetabolismGraph layout for
MLP_node and a, so the stage-2 initialisation, rollouts and fine-tuning apply
unchanged; its log_k and MLP_sub exist only as placeholders of that layout
(frozen, never used). Rate laws that read the time cannot be rolled out from
a state alone and are refused.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import TYPE_CHECKING

import torch

from sysid.config import GraphModelConfig, RefineOptions
from sysid.errors import SysidInputError
from sysid.model import MetabolismModel

if TYPE_CHECKING:
    from sysid.frozen import FrozenModel
    from sysid.sbml.frozen import SbmlFrozenModel


class SbmlNodeModel(MetabolismModel):
    """MLP_node and a (trainable) over a frozen SBML reaction model."""

    sbml: SbmlFrozenModel

    def __init__(self, sbml: FrozenModel, arch: GraphModelConfig, seed: int = 0):
        if getattr(sbml, "uses_time", False):
            raise SysidInputError(f"--refine cannot roll out {getattr(sbml, 'source', 'the SBML model')}: its rate "
                                  "laws read the time; drop --refine (stage 1 handles time)")
        super().__init__(sbml.network(), arch, torch.Generator().manual_seed(seed))
        # not a submodule: checkpoints hold the MetabolismGraph keys only, the SBML model stays as loaded
        object.__setattr__(self, "sbml", sbml)
        self.freeze_reactions()

    def __deepcopy__(self, memo):
        """Copies share the (parameter-free) SBML model and copy everything else."""
        clone = SbmlNodeModel.__new__(SbmlNodeModel)
        memo[id(self)] = clone
        for key, value in self.__dict__.items():
            if key == "sbml":
                object.__setattr__(clone, key, value)
            else:
                clone.__dict__[key] = copy.deepcopy(value, memo)
        return clone

    def rates(self, c: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        return self.sbml.rates(c).to(c.dtype)

    def reaction_dcdt(self, c: torch.Tensor) -> torch.Tensor:
        return self.sbml.reaction_dcdt(c).to(c.dtype)


def sbml_refine_options(options: RefineOptions) -> RefineOptions:
    """Per-species set points: MLP_node is distilled to each metabolite's own line, not its group's."""
    settings = dataclasses.replace(options.settings, distill_target="metabolite")
    return dataclasses.replace(options, settings=settings)
