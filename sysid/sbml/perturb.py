"""Frozen SBML models with a controlled error (``sysid perturb``), for studies.

- rate noise: each reaction's kinetic law is multiplied by its own factor exp(N(0, sd^2)),
  the analogue of log_k noise for MetabolismGraph models;
- parameter noise: every kinetic parameter (local parameters of the laws, and the
  model's constant parameters that the laws or the assignment rules read) is
  multiplied by its own exp(N(0, sd^2)). Corrections per reaction cannot absorb this.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sysid.errors import SysidInputError
from sysid.sbml import _deps
from sysid.sbml.compiled import symbol_names as _names


def perturb_rates(doc, sd: float, rng: np.random.Generator):
    """A copy whose kinetic law r is factor_r * (law r)."""
    L = _deps.libsbml()
    doc = doc.clone()
    for reaction in doc.getModel().getListOfReactions():
        law = reaction.getKineticLaw()
        factor = L.ASTNode(L.AST_REAL)
        factor.setValue(float(np.exp(rng.normal(0.0, sd))))
        product = L.ASTNode(L.AST_TIMES)
        product.addChild(factor)
        product.addChild(law.getMath().deepCopy())
        law.setMath(product)
    return doc


def kinetic_parameters(model) -> list[str]:
    """Ids of the constant global parameters read by kinetic laws or assignment rules (functions included)."""
    used: set[str] = set()
    for reaction in model.getListOfReactions():
        used |= _names(reaction.getKineticLaw().getMath())
    for rule in model.getListOfRules():
        used |= _names(rule.getMath())
    rule_set = {r.getVariable() for r in model.getListOfRules()}
    return [p.getId() for p in model.getListOfParameters() if p.getId() in used and p.getId() not in rule_set]


def perturb_parameters(doc, sd: float, rng: np.random.Generator):
    """A copy with every kinetic parameter multiplied by its own exp(N(0, sd^2))."""
    doc = doc.clone()
    model = doc.getModel()
    for pid in kinetic_parameters(model):
        p = model.getParameter(pid)
        p.setValue(p.getValue() * float(np.exp(rng.normal(0.0, sd))))
    for reaction in model.getListOfReactions():
        law = reaction.getKineticLaw()
        for p in [*law.getListOfParameters(), *law.getListOfLocalParameters()]:
            p.setValue(p.getValue() * float(np.exp(rng.normal(0.0, sd))))
    return doc


def perturb(doc, *, rate_noise: float | None, param_noise: float | None, seed: int):
    if (rate_noise is None) == (param_noise is None):
        raise SysidInputError("give exactly one of --rate-noise SD and --param-noise SD")
    sd = float(rate_noise if rate_noise is not None else param_noise)  # type: ignore[arg-type]  # one is set
    if not np.isfinite(sd) or sd < 0:
        raise SysidInputError(f"the noise sd is {sd}: use a value >= 0")
    rng = np.random.default_rng(seed)
    return perturb_rates(doc, sd, rng) if rate_noise is not None else perturb_parameters(doc, sd, rng)


def write_document(doc, path: Path) -> None:
    """Write an SBML document to ``path``."""
    _deps.libsbml().writeSBMLToFile(doc, str(path))
