"""Frozen reaction models: the one interface stages 1 and 2 need, and loading one from a file.

A frozen model gives per-reaction rates and the stoichiometry:

- ``n_metabolites``, ``n_reactions``;
- ``rates(c)`` (MetabolismGraph checkpoints) or ``rates(c, t)`` (SBML models, whose
  laws may read the time): (..., n_reactions) for concentrations (..., n_metabolites);
- ``apply_stoichiometry(v)``: sum_j S_ij v_j, (..., n_metabolites);
- ``network()``: the :class:`~sysid.network.Network` it encodes.

A :class:`~sysid.model.MetabolismModel` (checkpoint) and a
:class:`~sysid.sbml.frozen.SbmlFrozenModel` (SBML ``.xml``) are both frozen models.
Models with ``shape_corrections = False`` get no MLP_sub shape corrections in stage 1; models with
``species_set_points = True`` have a set point per species, so stage 1 groups their metabolites by slope.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from sysid.errors import SysidInputError

if TYPE_CHECKING:
    import torch

    from sysid.network import Network


class FrozenModel(Protocol):
    """What stages 1 and 2 need of a frozen reaction model."""

    n_metabolites: int
    n_reactions: int

    def apply_stoichiometry(self, v: torch.Tensor) -> torch.Tensor: ...

    def network(self) -> Network: ...

    def freeze_reactions(self) -> FrozenModel: ...

SBML_SUFFIXES = (".xml", ".sbml")


def is_sbml(path: str | Path) -> bool:
    return Path(path).suffix.lower() in SBML_SUFFIXES


def load_frozen(path: str | Path, aggr_type: str = "mul") -> FrozenModel:
    """A checkpoint (.pt) or an SBML model (.xml) as a frozen reaction model."""
    if is_sbml(path):
        from sysid.sbml.frozen import SbmlFrozenModel

        return SbmlFrozenModel.from_file(path)
    from sysid.io.checkpoint import load_checkpoint

    return load_checkpoint(path, aggr_type)


def uses_shape_corrections(model) -> bool:
    return getattr(model, "shape_corrections", True)


def species_set_points(model) -> bool:
    """Set points are each species' own (SBML models): stage 1 groups metabolites by their slope alone."""
    return bool(getattr(model, "species_set_points", False))


def needs_time(model) -> bool:
    return bool(getattr(model, "uses_time", False))


AUTO_TRANSIENT_FRAMES = 5  # left out at each experiment's start when there are several (perturbed starts)
FRAME_BATCH = 4096


def transient_frames(data, cfg) -> int:
    """Frames left out at the start of each experiment: the config's value, or (-1) 5 with several experiments."""
    if cfg.transient_frames >= 0:
        return cfg.transient_frames
    return AUTO_TRANSIENT_FRAMES if len(data.experiment_starts) > 1 else 0


def evaluate_rate_model(model, concentrations, times=None):
    """(rates, aggregate, reaction part) of a frozen model given by its rates, float64 numpy, batched.

    The aggregate (an MLP_sub notion) is the rate itself; it is only read by shape corrections.
    """
    import numpy as np
    import torch

    rates, reaction = [], []
    with torch.no_grad():
        for start in range(0, len(concentrations), FRAME_BATCH):
            c = torch.as_tensor(np.asarray(concentrations[start : start + FRAME_BATCH], np.float64))
            if needs_time(model):
                t = torch.as_tensor(np.asarray(times[start : start + FRAME_BATCH], np.float64))
                v = model.rates(c, t)
            else:
                v = model.rates(c)
            rates.append(v.double())
            reaction.append(model.apply_stoichiometry(v).double())
    v = torch.cat(rates).numpy()
    return v, v, torch.cat(reaction).numpy()


def check_species(model, data_dir) -> None:
    """An SBML frozen model must name the dataset's species, in its order (when the dataset records them)."""
    import json

    ids = getattr(model, "species_ids", None)
    truth = Path(data_dir) / "truth.json"
    if ids is None or not truth.is_file():
        return
    recorded = json.loads(truth.read_text()).get("species_ids")
    if recorded is not None and list(recorded) != list(ids):
        raise SysidInputError(
            f"the frozen model's species ({', '.join(ids[:5])}...) do not match the dataset's "
            f"({', '.join(recorded[:5])}...): use the SBML model the dataset was simulated from"
        )
