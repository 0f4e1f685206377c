"""An SBML model compiled into vectorised torch code: per-reaction rates v_r(c, t) for all frames at once.

Kinetic laws give rates in amount/time; the concentration of state species i
changes by dc_i/dt = sum_r S_ir v_r / V_i with V_i its compartment's size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sysid.errors import SysidInputError
from sysid.sbml import reader
from sysid.sbml.mathml import DTYPE, TIME_KEY, Compiled, Scope, compile_math, function_definitions


@dataclass(frozen=True, eq=False)
class CompiledModel:
    species: reader.SpeciesInfo
    reaction_ids: tuple[str, ...]
    S: np.ndarray  # (n_species, n_reactions) net SBML coefficients
    reactants: np.ndarray  # (n_species, n_reactions) reactant coefficients
    rules: tuple[tuple[str, Compiled], ...]  # assignment rules in dependency order
    laws: tuple[Compiled, ...]
    uses_time: bool

    @property
    def species_ids(self) -> tuple[str, ...]:
        return self.species.ids

    @property
    def concentration_stoichiometry(self) -> np.ndarray:
        """S_ir / V_i: dc/dt = (this) @ v with v in amount/time."""
        return self.S / self.species.volumes[:, None]

    def environment(self, c: torch.Tensor, t: torch.Tensor | float | None = None) -> dict[str, torch.Tensor]:
        """Values of the state species (and rule-set symbols) for concentrations c (..., n_species)."""
        volumes = torch.as_tensor(self.species.volumes, dtype=c.dtype, device=c.device)
        amounts = torch.as_tensor(self.species.only_substance, device=c.device)
        values = torch.where(amounts, c * volumes, c)
        env = {sid: values[..., i] for i, sid in enumerate(self.species.ids)}
        t = 0.0 if t is None else t
        env[TIME_KEY] = torch.as_tensor(t, dtype=c.dtype, device=c.device)
        for name, rule in self.rules:
            env[name] = rule(env)
        return env

    def rates(self, c: torch.Tensor, t: torch.Tensor | float | None = None) -> torch.Tensor:
        """Per-reaction rates (amount/time), shape (..., n_reactions); t is the time of each frame."""
        env = self.environment(c, t)
        base = c.new_zeros(c.shape[:-1])
        return torch.stack([law(env) + base for law in self.laws], dim=-1)

    def dcdt(self, c: torch.Tensor, t: torch.Tensor | float | None = None) -> torch.Tensor:
        """dc/dt of the state species (concentration/time)."""
        Sc = torch.as_tensor(self.concentration_stoichiometry, dtype=c.dtype, device=c.device)
        return self.rates(c, t) @ Sc.T


def compile_model(path_or_doc) -> CompiledModel:
    """Compile an SBML file (or a checked libsbml document) into a :class:`CompiledModel`."""
    doc = reader.read_document(path_or_doc) if isinstance(path_or_doc, str | Path) else path_or_doc
    model = doc.getModel()
    species = reader.state_species(model)
    constants = reader.constant_values(model)
    functions = function_definitions(model)
    rule_targets = reader.assigned_ids(model)
    variables = frozenset(species.ids) | frozenset(rule_targets)
    rules = _ordered_rules(model, constants, variables, functions)
    laws = []
    for reaction in model.getListOfReactions():
        law = reaction.getKineticLaw()
        local = {p.getId(): p.getValue() for p in [*law.getListOfParameters(), *law.getListOfLocalParameters()]}
        scope = Scope(f"kinetic law of reaction '{reaction.getId()}'", {**constants, **local}, variables, functions)
        laws.append(compile_math(law.getMath(), scope))
    S, reactants = reader.stoichiometry(model, species.ids)
    return CompiledModel(
        species=species, reaction_ids=tuple(r.getId() for r in model.getListOfReactions()), S=S,
        reactants=reactants, rules=tuple(rules), laws=tuple(laws), uses_time=_uses_time(model),
    )


def symbol_names(node) -> set[str]:
    """Every name (symbol or called function) in a math tree."""
    out, stack = set(), [node]
    while stack:
        n = stack.pop()
        if n is None:
            continue
        if n.isName():
            out.add(n.getName())
        stack.extend(n.getChild(i) for i in range(n.getNumChildren()))
    return out


def _uses_time(model) -> bool:
    from sysid.sbml import _deps

    L = _deps.libsbml()
    maths = [r.getMath() for r in model.getListOfRules()]
    maths += [r.getKineticLaw().getMath() for r in model.getListOfReactions()]
    maths += [f.getBody() for f in model.getListOfFunctionDefinitions()]
    for math in maths:
        stack = [math]
        while stack:
            n = stack.pop()
            if n is None:
                continue
            if n.getType() == L.AST_NAME_TIME:
                return True
            stack.extend(n.getChild(i) for i in range(n.getNumChildren()))
    return False


def _ordered_rules(model, constants, variables, functions) -> list[tuple[str, Compiled]]:
    """Assignment rules sorted so that each one runs after the rules it reads."""
    pending = {r.getVariable(): r for r in model.getListOfRules() if r.isAssignment()}
    ordered = []
    while pending:
        ready = [v for v, r in pending.items() if not (symbol_names(r.getMath()) & (set(pending) - {v}))]
        if not ready:
            raise SysidInputError(f"the assignment rules for {', '.join(sorted(pending))} depend on each other in a "
                                  "cycle: break the cycle")
        for v in ready:
            scope = Scope(f"assignment rule for '{v}'", constants, variables, functions)
            ordered.append((v, compile_math(pending.pop(v).getMath(), scope)))
    return ordered


def as_tensor(values: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values), dtype=DTYPE)
