"""Reading an SBML file: checks, refused constructs and the model's parts sysid needs.

The state of the system is the concentration vector of the *state species*:
floating (not boundary), not constant and not set by an assignment rule, in
the order of the file. Boundary and constant species, compartments and
parameters are constants; species and parameters set by assignment rules are
computed from the state (and time) before the kinetic laws.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sysid.errors import SysidInputError
from sysid.sbml import _deps

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class SpeciesInfo:
    ids: tuple[str, ...]  # state species, in file order
    volumes: np.ndarray  # (n,) size of each one's compartment
    initial: np.ndarray  # (n,) initial concentrations
    only_substance: np.ndarray  # (n,) bool: symbols mean amounts (hasOnlySubstanceUnits)


def read_document(path: str | Path):
    """Parse and check an SBML file; initial assignments are expanded into values."""
    L = _deps.libsbml()
    path = Path(path)
    if not path.is_file():
        raise SysidInputError(f"SBML file {path} does not exist: pass the path of an SBML .xml model")
    doc = L.readSBMLFromFile(str(path))
    return check_document(doc, str(path))


def read_string(text: str, where: str = "SBML string"):
    return check_document(_deps.libsbml().readSBMLFromString(text), where)


def check_document(doc, where: str):
    L = _deps.libsbml()
    if doc.getNumErrors(L.LIBSBML_SEV_FATAL) + doc.getNumErrors(L.LIBSBML_SEV_ERROR) > 0:
        errors = [doc.getError(i) for i in range(doc.getNumErrors())]
        first = next(e for e in errors if e.getSeverity() >= L.LIBSBML_SEV_ERROR)
        message = " ".join(first.getMessage().split())
        raise SysidInputError(f"{where} is not valid SBML (line {first.getLine()}: {message[:160]}): fix the file")
    model = doc.getModel()
    if model is None:
        raise SysidInputError(f"{where} has no <model>: it is not an SBML model")
    refuse_unsupported(model, where)
    if model.getNumInitialAssignments():
        props = L.ConversionProperties()
        props.addOption("expandInitialAssignments", True)
        if doc.convert(props) != L.LIBSBML_OPERATION_SUCCESS:
            raise SysidInputError(f"{where}: its initial assignments cannot be evaluated: replace them by values")
    return doc


def refuse_unsupported(model, where: str) -> None:
    """Events, rate rules, algebraic rules, varying compartments or stoichiometries: one line naming the element."""
    L = _deps.libsbml()
    if model.getNumEvents():
        ev = model.getEvent(0)
        raise _unsupported(where, f"event '{ev.getId() or ev.getName() or 0}'")
    for rule in model.getListOfRules():
        if rule.isRate():
            raise _unsupported(where, f"rate rule for '{rule.getVariable()}'")
        if rule.isAlgebraic():
            raise _unsupported(where, f"algebraic rule '{L.formulaToL3String(rule.getMath())}'")
    assigned = {r.getVariable() for r in model.getListOfRules()}
    for comp in model.getListOfCompartments():
        if comp.getId() in assigned or not comp.getConstant():
            raise _unsupported(where, f"compartment '{comp.getId()}' of varying size")
    for reaction in model.getListOfReactions():
        if not reaction.isSetKineticLaw():
            raise _unsupported(where, f"reaction '{reaction.getId()}' without a kinetic law")
        for ref in [*reaction.getListOfReactants(), *reaction.getListOfProducts()]:
            if ref.isSetStoichiometryMath() or (ref.isSetId() and ref.getId() in assigned):
                raise _unsupported(where, f"varying stoichiometry of '{ref.getSpecies()}' in '{reaction.getId()}'")
    for sp in model.getListOfSpecies():
        if sp.isSetConversionFactor():
            raise _unsupported(where, f"conversion factor of species '{sp.getId()}'")
    if model.isSetConversionFactor():
        raise _unsupported(where, "model conversion factor")


def _unsupported(where: str, element: str) -> SysidInputError:
    return SysidInputError(f"{where}: {element} is not supported by sysid's SBML reader: remove it from the model")


def assigned_ids(model) -> list[str]:
    return [r.getVariable() for r in model.getListOfRules() if r.isAssignment()]


def compartment_sizes(model) -> dict[str, float]:
    sizes = {}
    for comp in model.getListOfCompartments():
        if comp.isSetSize():
            sizes[comp.getId()] = comp.getSize()
        elif comp.isSetVolume():
            sizes[comp.getId()] = comp.getVolume()
        else:
            sizes[comp.getId()] = 1.0
            log.warning("compartment %s has no size; using 1", comp.getId())
    return sizes


def initial_concentration(species, sizes: dict[str, float]) -> float:
    if species.isSetInitialConcentration():
        return species.getInitialConcentration()
    if species.isSetInitialAmount():
        return species.getInitialAmount() / sizes[species.getCompartment()]
    return 0.0


def state_species(model) -> SpeciesInfo:
    sizes = compartment_sizes(model)
    rule_set = set(assigned_ids(model))
    chosen = [sp for sp in model.getListOfSpecies()
              if not sp.getBoundaryCondition() and not sp.getConstant() and sp.getId() not in rule_set]
    if not chosen:
        raise SysidInputError("the SBML model has no floating species that reactions change: nothing to identify")
    return SpeciesInfo(
        ids=tuple(sp.getId() for sp in chosen),
        volumes=np.array([sizes[sp.getCompartment()] for sp in chosen], np.float64),
        initial=np.array([initial_concentration(sp, sizes) for sp in chosen], np.float64),
        only_substance=np.array([sp.getHasOnlySubstanceUnits() for sp in chosen], bool),
    )


def constant_values(model) -> dict[str, float]:
    """Values of every symbol that does not change: compartments, parameters, fixed species."""
    sizes = compartment_sizes(model)
    rule_set = set(assigned_ids(model))
    values = dict(sizes)
    for p in model.getListOfParameters():
        if p.getId() not in rule_set:
            values[p.getId()] = p.getValue() if p.isSetValue() else float("nan")
    for sp in model.getListOfSpecies():
        if sp.getId() in rule_set or not (sp.getBoundaryCondition() or sp.getConstant()):
            continue
        conc = initial_concentration(sp, sizes)
        values[sp.getId()] = conc * sizes[sp.getCompartment()] if sp.getHasOnlySubstanceUnits() else conc
    return values


def stoichiometry(model, species_ids: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Net stoichiometry and reactant coefficients (n_species, n_reactions), rows aligned by species id."""
    row = {s: i for i, s in enumerate(species_ids)}
    n_rxn = model.getNumReactions()
    S = np.zeros((len(species_ids), n_rxn))
    reactants = np.zeros_like(S)
    for j, reaction in enumerate(model.getListOfReactions()):
        for sign, refs in ((-1.0, reaction.getListOfReactants()), (1.0, reaction.getListOfProducts())):
            for ref in refs:
                i = row.get(ref.getSpecies())
                if i is None:
                    continue
                coef = ref.getStoichiometry() if ref.isSetStoichiometry() else 1.0
                S[i, j] += sign * coef
                if sign < 0:
                    reactants[i, j] += coef
    return S, reactants
