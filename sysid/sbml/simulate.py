"""Ground truth from an SBML model: the homeostatic model simulated by libroadrunner, several experiments.

Experiment k starts (at time 0) from the model's initial concentrations times
exp(N(0, initial_perturbation_sd^2)) per species, and is recorded every
``delta_t`` for ``n_frames`` steps. y is the exact dc/dt (concentration/time)
of the homeostatic model at the recorded (noise-free) states, from the
compiled kinetic laws, which are checked against roadrunner's own reaction
rates at those states. Measurement noise is relative: c * (1 + level * N(0, 1)),
clipped at 0; y is not recomputed from the noisy values.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sysid.errors import SysidInputError
from sysid.io.dataset import CONC_COL, GRAPH_FILE, N_COLUMNS, S_FILE, TRUTH_FILE, TYPE_COL
from sysid.network import Network
from sysid.sbml import _deps
from sysid.sbml.compiled import CompiledModel, compile_model
from sysid.sbml.homeostasis import HomeostasisTruth, add_homeostasis, choose_truth
from sysid.sbml.reader import read_document
from sysid.sbml_config import SbmlConfig

log = logging.getLogger(__name__)
TRUTH_MODEL_FILE = "truth_model.xml"
RATE_CHECK_TOLERANCE = 1e-6  # compiled vs roadrunner reaction rates, relative to the largest rate
NEGATIVE_TOLERANCE = 1e-9  # integrator round-off below zero, relative to the largest concentration
MAX_DRAWS = 5  # initial states drawn per experiment before giving up
NEGLIGIBLE_RATIO = 1e-3  # |homeostatic term| / turnover flux below this is warned about


@dataclass(frozen=True, eq=False)
class SbmlSimulation:
    concentrations: list[np.ndarray]  # per experiment: (n_frames + 1, n_species) float32
    dcdt: list[np.ndarray]
    network: Network  # concentration stoichiometry S_ir / V_i
    truth: HomeostasisTruth
    truth_sbml: str
    positions: np.ndarray
    homeostasis_ratio: float  # mean |homeostatic term| / mean turnover flux (half of sum_r |S_ir v_r| / V_i)


def model_network(model: CompiledModel) -> Network:
    """Network of a compiled model: S_ir / V_i, substrates its reactants (where the net coefficient is not 0)."""
    S = model.concentration_stoichiometry
    substrates = np.where(S != 0, model.reactants / model.species.volumes[:, None], 0.0)
    return Network(S=S.astype(np.float32), substrates=substrates.astype(np.float32))


def simulate_sbml(path: str | Path, cfg: SbmlConfig, progress: Callable[[int], None] | None = None) -> SbmlSimulation:
    doc = read_document(path)
    base = compile_model(doc)
    truth = choose_truth(base, cfg)
    L = _deps.libsbml()
    truth_doc = add_homeostasis(doc, truth)
    xml = L.writeSBMLToString(truth_doc)
    full = compile_model(truth_doc)
    rr = _runner(xml)
    rng = np.random.default_rng(cfg.seed)
    xs, ys, ratios = [], [], []
    for k in range(cfg.n_experiments):
        times, conc, rates = _experiment(rr, full, truth, cfg, rng, k)
        _check_rates(full, conc, times, rates, k)
        with torch.no_grad():
            c = torch.as_tensor(conc)
            y = full.dcdt(c, torch.as_tensor(times)).numpy()
            turnover = 0.5 * (base.rates(c, torch.as_tensor(times)).abs() @ torch.as_tensor(
                np.abs(base.concentration_stoichiometry)).T).numpy()
        ratios.append((np.abs(y - base_dcdt(base, conc, times)).mean(), turnover.mean()))
        xs.append(conc)
        ys.append(y)
        if progress is not None:
            progress(k + 1)
    ratio = float(sum(r[0] for r in ratios) / max(sum(r[1] for r in ratios), 1e-300))
    if ratio < NEGLIGIBLE_RATIO:
        log.warning("the homeostatic term is %.2g of the turnover flux: it is negligible and will not be "
                    "identifiable; raise sbml.lambda_per_type", ratio)
    noise_rng = np.random.default_rng(cfg.seed + 1)
    xs = [_noisy(x, cfg.measurement_noise_level, noise_rng) for x in xs]
    positions = np.random.default_rng(cfg.seed + 2).normal(0.0, 0.25, size=(len(truth.species_ids), 2))
    return SbmlSimulation(xs, [y.astype(np.float32) for y in ys], model_network(base), truth, xml,
                          positions.astype(np.float32), ratio)


def base_dcdt(model: CompiledModel, conc: np.ndarray, times: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model.dcdt(torch.as_tensor(conc), torch.as_tensor(times)).numpy()


def _runner(xml: str):
    rr = _deps.roadrunner().RoadRunner(xml)
    rr.integrator.relative_tolerance = 1e-10
    rr.integrator.absolute_tolerance = 1e-12
    rr.integrator.maximum_num_steps = 1_000_000
    return rr


def _experiment(rr, model: CompiledModel, truth: HomeostasisTruth, cfg: SbmlConfig, rng, k: int):
    """Experiment k from a perturbed initial state; a state the model cannot be integrated from (a rule
    leaving its domain, say) is redrawn, up to MAX_DRAWS times, and the last failure is reported."""
    for draw in range(MAX_DRAWS):
        c0 = truth.baselines * np.exp(rng.normal(0.0, cfg.initial_perturbation_sd, size=len(truth.baselines)))
        try:
            return _run_experiment(rr, model, c0, cfg.n_frames, truth.delta_t, k)
        except SysidInputError as exc:
            if draw == MAX_DRAWS - 1:
                raise
            log.warning("experiment %d: initial state %d redrawn (%s)", k, draw, str(exc)[:120])
    raise AssertionError("unreachable")


def _run_experiment(rr, model: CompiledModel, c0: np.ndarray, n_frames: int, dt: float, k: int):
    rr.resetAll()
    for sid, value in zip(model.species_ids, c0, strict=True):
        rr[f"[{sid}]"] = float(value)
    rr.timeCourseSelections = ["time", *[f"[{s}]" for s in model.species_ids], *model.reaction_ids]
    try:
        out = np.asarray(rr.simulate(0.0, n_frames * dt, n_frames + 1))
    except RuntimeError as exc:
        first = " ".join(str(exc).split())[:160]
        raise SysidInputError(f"experiment {k} could not be integrated by libroadrunner ({first}): "
                              "lower sbml.initial_perturbation_sd or delta_t * n_frames") from None
    n = len(model.species_ids)
    times, conc, rates = out[:, 0], out[:, 1 : 1 + n], out[:, 1 + n :]
    if not (np.all(np.isfinite(conc)) and np.all(np.isfinite(rates))):
        bad = int(np.argmax(~np.all(np.isfinite(conc), axis=1)))
        raise SysidInputError(f"experiment {k} diverged (non-finite values from frame {bad}): "
                              "lower sbml.initial_perturbation_sd or delta_t * n_frames")
    floor = -NEGATIVE_TOLERANCE * max(float(np.abs(conc).max()), 1e-300)
    if np.any(conc < floor):
        frame, i = np.argwhere(conc < floor)[0]
        raise SysidInputError(f"experiment {k} went negative ({model.species_ids[i]} at t = {times[frame]:.4g}): "
                              "the model is not valid there; lower sbml.initial_perturbation_sd")
    return times, np.maximum(conc, 0.0), rates


@torch.no_grad()
def _check_rates(model: CompiledModel, conc: np.ndarray, times: np.ndarray, rates: np.ndarray, k: int) -> None:
    mine = model.rates(torch.as_tensor(conc), torch.as_tensor(times)).numpy()
    err = float(np.abs(mine - rates).max() / max(float(np.abs(rates).max()), 1e-300))
    if err > RATE_CHECK_TOLERANCE:
        raise SysidInputError(f"experiment {k}: sysid's compiled rate laws differ from libroadrunner's by {err:.2g} "
                              "(relative): the model uses SBML that sysid translates differently; please report it")


def _noisy(x: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    if level > 0:
        x = np.maximum(x * (1.0 + level * rng.normal(size=x.shape)), 0.0)
    return x.astype(np.float32)


def write_sbml_dataset(sim: SbmlSimulation, folder: Path) -> None:
    """MetabolismGraph layout with one x_list_k / y_list_k per experiment, truth.json and truth_model.xml."""
    from sysid.io.dataset import _edge_state

    folder = Path(folder)
    n_met = len(sim.truth.species_ids)
    for k, (conc, y) in enumerate(zip(sim.concentrations, sim.dcdt, strict=True)):
        x = np.zeros((len(conc), n_met, N_COLUMNS), np.float32)
        x[:, :, 0] = np.arange(n_met)
        x[:, :, 1:3] = sim.positions
        x[:, :, CONC_COL] = conc
        x[:, :, TYPE_COL] = sim.truth.types
        np.save(folder / f"x_list_{k}.npy", x)
        np.save(folder / f"y_list_{k}.npy", y[:, :, None])
    edges = _edge_state(sim.network.edges)
    graph = {"sub": (edges["met_sub"], edges["rxn_sub"], edges["sto_sub"]),
             "all": (edges["met_all"], edges["rxn_all"], edges["sto_all"])}
    torch.save(graph, folder / GRAPH_FILE)
    torch.save(torch.from_numpy(sim.network.S), folder / S_FILE)
    truth = {**sim.truth.to_json(), "source": "sbml", "n_experiments": len(sim.concentrations),
             "homeostasis_ratio": sim.homeostasis_ratio}
    (folder / TRUTH_FILE).write_text(json.dumps(truth, indent=1))
    (folder / TRUTH_MODEL_FILE).write_text(sim.truth_sbml)
