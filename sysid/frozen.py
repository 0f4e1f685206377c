"""Frozen reaction models: the one interface stages 1 and 2 need, and loading one from a file.

A frozen model gives per-reaction rates and the stoichiometry:

- ``n_metabolites``, ``n_reactions``;
- ``rates(c)`` (MetabolismGraph checkpoints) or ``rates(c, t)`` (SBML models, whose
  laws may read the time): (..., n_reactions) for concentrations (..., n_metabolites);
- ``apply_stoichiometry(v)``: sum_j S_ij v_j, (..., n_metabolites);
- ``network()``: the :class:`~sysid.network.Network` it encodes.

A :class:`~sysid.model.MetabolismModel` (checkpoint) and a
:class:`~sysid.sbml.frozen.SbmlFrozenModel` (SBML ``.xml``) are both frozen models.
Models with ``shape_corrections = False`` get no MLP_sub shape corrections in stage 1.
"""

from __future__ import annotations

from pathlib import Path

SBML_SUFFIXES = (".xml", ".sbml")


def is_sbml(path: str | Path) -> bool:
    return Path(path).suffix.lower() in SBML_SUFFIXES


def load_frozen(path: str | Path, aggr_type: str = "mul"):
    """A checkpoint (.pt) or an SBML model (.xml) as a frozen reaction model."""
    if is_sbml(path):
        from sysid.sbml.frozen import SbmlFrozenModel

        return SbmlFrozenModel.from_file(path)
    from sysid.checkpoint import load_checkpoint

    return load_checkpoint(path, aggr_type)


def uses_shape_corrections(model) -> bool:
    return getattr(model, "shape_corrections", True)


def needs_time(model) -> bool:
    return bool(getattr(model, "uses_time", False))
