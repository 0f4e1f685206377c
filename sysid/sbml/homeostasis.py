"""The homeostatic ground truth: an SBML model plus lambda_t (cb_i - c_i) for its eligible species.

Each term is an SBML reaction ``sysid_homeostasis_<id>`` producing the species
at rate V_i * lambda_i * (cb_i - c_i) (amount/time), so that its concentration
changes by lambda_i (cb_i - c_i): without the compartment factor V_i the
effective lambda would be lambda / V_i.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sysid.errors import SysidInputError
from sysid.sbml import _deps
from sysid.sbml.compiled import CompiledModel
from sysid.sbml_config import SbmlConfig

# lambda_t * (median turnover time) for the automatic scale, spread geometrically over the types:
# 0.05-0.2 gives a homeostatic term of a few percent of the reaction terms.
AUTO_LAMBDA_TURNOVER = (0.05, 0.2)
AUTO_DT_TURNOVER = 0.1  # delta_t / (median turnover time) for the automatic time step
PREFIX = "sysid_homeostasis_"


@dataclass(frozen=True, eq=False)
class HomeostasisTruth:
    species_ids: tuple[str, ...]
    eligible: np.ndarray  # (n,) bool
    types: np.ndarray  # (n,) int, -1 where not eligible
    lambdas: np.ndarray  # (n,) per species, 0 where not eligible
    baselines: np.ndarray  # (n,) cb_i, the initial concentrations
    lambda_per_type: np.ndarray  # (n_types,)
    turnover_time: float
    delta_t: float

    def to_json(self) -> dict:
        return {
            "species_ids": list(self.species_ids), "eligible": self.eligible.tolist(), "types": self.types.tolist(),
            "lambda": self.lambdas.tolist(), "cb": self.baselines.tolist(),
            "lambda_per_type": self.lambda_per_type.tolist(), "median_turnover_time": self.turnover_time,
            "delta_t": self.delta_t,
        }


def eligible_species(model: CompiledModel) -> np.ndarray:
    """State species touched by some reaction (boundary, constant and rule-set species are not state species)."""
    return (np.abs(model.S).sum(1) + model.reactants.sum(1)) > 0


@torch.no_grad()
def median_turnover_time(model: CompiledModel, eligible: np.ndarray) -> float:
    """Median over eligible species of c_i / (half the total flux through i), at the initial state."""
    c = torch.as_tensor(model.species.initial, dtype=torch.float64)[None]
    v = model.rates(c).numpy()[0]
    flux = 0.5 * np.abs(model.concentration_stoichiometry * v).sum(1)
    ok = eligible & (flux > 0) & (model.species.initial > 0)
    if not ok.any():
        raise SysidInputError("no species of the SBML model has a nonzero flux at the initial state: "
                              "give the model initial concentrations at which reactions run")
    return float(np.median(model.species.initial[ok] / flux[ok]))


def choose_truth(model: CompiledModel, cfg: SbmlConfig) -> HomeostasisTruth:
    """Types (random, seeded, balanced), lambda per type and cb = initial concentration."""
    eligible = eligible_species(model)
    if not eligible.any():
        raise SysidInputError("no floating species of the SBML model is changed by a reaction: nothing to regulate")
    tau = median_turnover_time(model, eligible)
    n_types = cfg.n_metabolite_types
    if cfg.lambda_per_type:
        lam_t = np.asarray(cfg.lambda_per_type, np.float64)
    else:
        lo, hi = AUTO_LAMBDA_TURNOVER
        lam_t = np.geomspace(lo, hi, n_types) / tau if n_types > 1 else np.array([np.sqrt(lo * hi) / tau])
    rng = np.random.default_rng(cfg.seed)
    n_elig = int(eligible.sum())
    types = np.full(len(eligible), -1, np.int64)
    types[eligible] = rng.permutation(np.arange(n_elig) % n_types)
    lambdas = np.where(eligible, lam_t[np.maximum(types, 0)], 0.0)
    delta_t = cfg.delta_t if cfg.delta_t > 0 else float(f"{AUTO_DT_TURNOVER * tau:.3g}")
    return HomeostasisTruth(model.species_ids, eligible, types, lambdas, model.species.initial.copy(), lam_t,
                            tau, delta_t)


def add_homeostasis(doc, truth: HomeostasisTruth):
    """A copy of the document with one homeostatic reaction (and its two parameters) per eligible species."""
    L = _deps.libsbml()
    doc = doc.clone()
    model = doc.getModel()
    taken = {e.getId() for e in [*model.getListOfParameters(), *model.getListOfReactions(),
                                 *model.getListOfSpecies(), *model.getListOfCompartments()]}
    for i, sid in enumerate(truth.species_ids):
        if not truth.eligible[i]:
            continue
        species = model.getSpecies(sid)
        lam, cb, rid = f"{PREFIX}lambda_{sid}", f"{PREFIX}cb_{sid}", f"{PREFIX}{sid}"
        if taken & {lam, cb, rid}:
            raise SysidInputError(f"the SBML model already uses the id {rid} (or its parameters): rename it")
        for pid, value in ((lam, truth.lambdas[i]), (cb, truth.baselines[i])):
            p = model.createParameter()
            _ok(p.setId(pid), pid)
            p.setValue(float(value))
            p.setConstant(True)
        comp = species.getCompartment()
        amount = species.getHasOnlySubstanceUnits()  # the symbol then means an amount
        formula = f"{lam} * ({comp} * {cb} - {sid})" if amount else f"{comp} * {lam} * ({cb} - {sid})"
        reaction = model.createReaction()
        _ok(reaction.setId(rid), rid)
        reaction.setReversible(True)
        if doc.getLevel() >= 3:
            reaction.setFast(False)
        product = reaction.createProduct()
        product.setSpecies(sid)
        product.setStoichiometry(1.0)
        if doc.getLevel() >= 3:
            product.setConstant(True)
        law = reaction.createKineticLaw()
        _ok(law.setMath(L.parseL3Formula(formula)), rid)
    return doc


def _ok(code: int, what: str) -> None:
    if code != 0:
        raise SysidInputError(f"libsbml refused to build {what} (code {code}): the model's SBML level may be too old")
