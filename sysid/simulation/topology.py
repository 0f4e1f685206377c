"""Reaction topologies of real metabolic networks: SBML files (with or without FBC) and cobra's bundled models.

Only the graph is read: species, reactions and their stoichiometric
coefficients. Kinetic laws, compartments and flux bounds other than an
exchange's lower bound are ignored. Species marked ``boundaryCondition`` or
``constant`` are fixed pools, not dynamic metabolites: they are taken out of
every reaction. A reaction is

- **biomass** when its id or name contains "biomass" or it carries SBO:0000629;
- **boundary** (exchange, demand, sink) when, after that, it has reactants only
  or products only;
- **internal** otherwise.

A boundary reaction ``A ->`` whose FBC lower bound is negative (or, without
FBC, that is reversible) can take A up: it is an *uptake*.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import sparse

from sysid.errors import SysidInputError
from sysid.sbml import _deps

log = logging.getLogger(__name__)
COBRA_PREFIX = "cobra:"
COBRA_HINT = 'pip install "sysid[cobra]"'
BIOMASS_SBO = 629
MODEL_SUFFIXES = (".xml.gz", ".xml", ".sbml")


@dataclass(frozen=True, eq=False)
class Topology:
    """Reactant and product coefficients (n_species, n_reactions), sparse CSC, and reaction roles."""

    species_ids: tuple[str, ...]
    reaction_ids: tuple[str, ...]
    reactants: sparse.csc_matrix
    products: sparse.csc_matrix
    biomass: np.ndarray  # (n_reactions,) bool
    boundary: np.ndarray  # (n_reactions,) bool: one-sided after fixed species are removed
    uptake: np.ndarray  # (n_reactions,) bool: a boundary reaction that can run backwards (lower bound < 0)
    source: str

    @property
    def internal(self) -> np.ndarray:
        return ~(self.biomass | self.boundary)


def cobra_model_path(name: str) -> Path:
    """The SBML file of one of cobra's bundled models (cobra is located, not imported)."""
    spec = importlib.util.find_spec("cobra")
    if spec is None or not spec.submodule_search_locations:
        raise SysidInputError(f"cobra:{name} needs COBRApy, which is not installed: {COBRA_HINT}")
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    available = sorted({p.name[: -len(s)] for p in data.glob("*") for s in MODEL_SUFFIXES if p.name.endswith(s)})
    for suffix in MODEL_SUFFIXES:
        if (data / f"{name}{suffix}").is_file():
            return data / f"{name}{suffix}"
    raise SysidInputError(f"cobra has no bundled model {name!r}: use one of {', '.join(available)} "
                          "(cobra:NAME), or pass the path of an SBML file")


def read_topology(source: str | Path) -> Topology:
    """``cobra:NAME`` or the path of an SBML file (``.xml``, ``.xml.gz``) as a :class:`Topology`."""
    text = str(source)
    path = cobra_model_path(text[len(COBRA_PREFIX):]) if text.startswith(COBRA_PREFIX) else Path(text)
    if not path.is_file():
        raise SysidInputError(f"network file {path} does not exist: pass an SBML file or cobra:NAME")
    L = _deps.libsbml()
    doc = L.readSBMLFromFile(str(path))
    if doc.getNumErrors(L.LIBSBML_SEV_FATAL) > 0 or doc.getModel() is None:
        first = doc.getError(0).getMessage().strip().splitlines()[0] if doc.getNumErrors() else "no model element"
        raise SysidInputError(f"{path} is not a readable SBML model ({first[:120]}): check the file")
    return _topology(doc.getModel(), text)


def _topology(model, source: str) -> Topology:
    if model.getNumReactions() == 0:
        raise SysidInputError(f"{source} has no reactions: a network needs at least one reaction")
    species = [s for s in model.getListOfSpecies() if not (s.getBoundaryCondition() or s.getConstant())]
    index = {s.getId(): i for i, s in enumerate(species)}
    reactions = list(model.getListOfReactions())
    rows: dict[str, list] = {"r": [], "p": []}
    cols: dict[str, list] = {"r": [], "p": []}
    vals: dict[str, list] = {"r": [], "p": []}
    for j, rxn in enumerate(reactions):
        for side, refs in (("r", rxn.getListOfReactants()), ("p", rxn.getListOfProducts())):
            for ref in refs:
                i = index.get(ref.getSpecies())
                if i is not None:
                    rows[side].append(i)
                    cols[side].append(j)
                    vals[side].append(ref.getStoichiometry() if ref.isSetStoichiometry() else 1.0)
    shape = (len(species), len(reactions))
    reactants, products = (sparse.csc_matrix((vals[s], (rows[s], cols[s])), shape=shape) for s in ("r", "p"))
    has_r = np.diff(reactants.indptr) > 0
    has_p = np.diff(products.indptr) > 0
    biomass = np.array([_is_biomass(r) for r in reactions], bool)
    boundary = (has_r != has_p) & ~biomass
    uptake = boundary & np.array([_can_run_backwards(model, r) for r in reactions], bool)
    return Topology(tuple(s.getId() for s in species), tuple(r.getId() for r in reactions), reactants, products,
                    biomass, boundary, uptake, source)


def _is_biomass(rxn) -> bool:
    return "biomass" in f"{rxn.getId()} {rxn.getName()}".lower() or rxn.getSBOTerm() == BIOMASS_SBO


def _can_run_backwards(model, rxn) -> bool:
    fbc = rxn.getPlugin("fbc")
    bound = fbc.getLowerFluxBound() if fbc is not None else ""
    if bound and model.getParameter(bound) is not None:
        return model.getParameter(bound).getValue() < 0
    return bool(rxn.getReversible())
