"""Dataset folders in the MetabolismGraph layout (docs/reference.md, datasets).

:func:`load_dataset` gives what fitting code may see (concentrations, dc/dt,
network, time step). The type labels (column 6 of ``x_list_0.npy``) and the
generator's parameters are read only by :func:`load_truth`, for evaluation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sysid.errors import SysidInputError
from sysid.io.safe_load import torch_load
from sysid.network import Network
from sysid.simulation.homeostasis import HomeostasisLaw
from sysid.truth import Simulation, SpeciesTruth, Truth

X_FILE, Y_FILE = "x_list_0.npy", "y_list_0.npy"
GRAPH_FILE, S_FILE = "stoich_graph.pt", "stoichiometry.pt"
GT_FILE, P_FILE, TRUTH_FILE = "gt_model.pt", "model_p_0.pt", "truth.json"
N_COLUMNS, CONC_COL, TYPE_COL = 8, 3, 6


@dataclass(frozen=True, eq=False)
class Dataset:
    """Observed trajectories and the known network; no labels."""

    concentrations: np.ndarray  # (n_frames + 1, n_metabolites) float32
    dcdt: np.ndarray  # (n_frames + 1, n_metabolites) float32
    positions: np.ndarray  # (n_metabolites, 2)
    network: Network
    delta_t: float
    experiment_starts: tuple[int, ...] = (0,)  # first frame of each experiment (x_list_k) in the arrays
    euler_steps: bool = True  # x[t+1] = max(x[t] + dt y[t], 0): frames are Euler steps (else a continuous record)
    steps_per_frame: int = 1  # integration steps between recorded frames (truth.json record_every), when known

    @property
    def times(self) -> np.ndarray:
        """Time of each frame since the start of its experiment."""
        frame = np.arange(len(self.concentrations))
        first = np.asarray(self.experiment_starts)[np.searchsorted(self.experiment_starts, frame, side="right") - 1]
        return (frame - first) * self.delta_t

    @property
    def n_frames(self) -> int:
        return self.concentrations.shape[0] - 1

    @property
    def n_metabolites(self) -> int:
        return self.concentrations.shape[1]


def write_dataset(sim: Simulation, folder: Path) -> None:
    """Write a simulation as a MetabolismGraph dataset folder plus ``truth.json``."""
    folder = Path(folder)
    n_t, n_met = sim.concentrations.shape
    x = np.zeros((n_t, n_met, N_COLUMNS), np.float32)
    x[:, :, 0] = np.arange(n_met)
    x[:, :, 1:3] = sim.positions
    x[:, :, CONC_COL] = sim.concentrations
    x[:, :, TYPE_COL] = sim.truth.types
    np.save(folder / X_FILE, x)
    np.save(folder / Y_FILE, sim.dcdt[:, :, None].astype(np.float32))
    e = sim.network.edges
    t = torch.from_numpy
    graph = {
        "sub": (t(e.met_sub), t(e.rxn_sub), t(e.sto_sub)),
        "all": (t(e.met_all), t(e.rxn_all), t(e.sto_all)),
    }
    torch.save(graph, folder / GRAPH_FILE)
    torch.save(t(sim.network.S.astype(np.float32)), folder / S_FILE)
    p = torch.tensor(np.stack([sim.truth.lambdas, sim.truth.baselines], 1), dtype=torch.float32)
    gt = {"log_k": t(sim.truth.log_k.astype(np.float32)), "p": p, **_edge_state(e)}
    torch.save(gt, folder / GT_FILE)
    torch.save(p, folder / P_FILE)
    truth = {
        "delta_t": sim.delta_t,
        "record_every": sim.record_every,
        "measurement_noise_level": sim.noise_level,
        "measurement_noise_kind": sim.noise_kind,
        "types": sim.truth.types.tolist(),
        "lambda_per_type": sim.truth.lambdas.tolist(),
        "baseline_per_type": sim.truth.baselines.tolist(),
        **({"homeostasis": sim.truth.law.to_json()} if sim.truth.law is not None else {}),
        "log_k": sim.truth.log_k.astype(float).tolist(),
        "S": sim.network.S.tolist(),
        "substrates": sim.network.substrates.tolist(),
        **sim.metadata,
    }
    (folder / TRUTH_FILE).write_text(json.dumps(truth))


def _edge_state(e) -> dict:
    t = torch.from_numpy
    return {
        "met_sub": t(e.met_sub), "rxn_sub": t(e.rxn_sub), "sto_sub": t(e.sto_sub),
        "met_all": t(e.met_all), "rxn_all": t(e.rxn_all), "sto_all": t(e.sto_all),
    }


def _require(folder: Path, name: str) -> Path:
    path = folder / name
    if not path.is_file():
        raise SysidInputError(
            f"dataset {folder} has no {name}: point --data at a MetabolismGraph dataset folder "
            "(x_list_0.npy, y_list_0.npy, stoich_graph.pt)"
        )
    return path


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise SysidInputError(f"{path} is not a readable .npy array ({exc}): rewrite it with numpy.save") from None


def check_dataset_folder(folder: str | Path) -> Path:
    """The folder as a Path; a one-line error if it does not exist."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SysidInputError(f"dataset folder {folder} does not exist: pass --data DIR of a dataset")
    return folder


def load_dataset(folder: str | Path) -> Dataset:
    """Read and check a dataset folder; raises SysidInputError on bad input."""
    folder = check_dataset_folder(folder)
    x = _load_npy(_require(folder, X_FILE))
    y = _load_npy(_require(folder, Y_FILE))
    _check_arrays(x, y, folder)
    xs, ys = [x], [y]
    for k in range(1, 10**6):  # further experiments: x_list_1.npy, y_list_1.npy, ...
        if not (folder / f"x_list_{k}.npy").is_file():
            break
        xs.append(_load_npy(folder / f"x_list_{k}.npy"))
        ys.append(_load_npy(_require(folder, f"y_list_{k}.npy")))
        _check_arrays(xs[-1], ys[-1], folder)
        if xs[-1].shape[1] != x.shape[1]:
            raise SysidInputError(f"{folder}/x_list_{k}.npy has {xs[-1].shape[1]} metabolites but x_list_0.npy has "
                                  f"{x.shape[1]}: every experiment must record the same metabolites")
    starts = tuple(int(s) for s in np.cumsum([0] + [len(a) for a in xs[:-1]]))
    conc = np.ascontiguousarray(np.concatenate([a[:, :, CONC_COL] for a in xs]))
    dcdt = np.ascontiguousarray(np.concatenate([a[:, :, 0] for a in ys]))
    network = _load_network(folder, conc.shape[1])
    dt = _delta_t(folder, conc[: len(x)], dcdt[: len(x)])
    every = _record_every(folder)
    euler = every == 1 and all(_euler_steps(a[:, :, CONC_COL], b[:, :, 0], dt) for a, b in zip(xs, ys, strict=True))
    return Dataset(conc, dcdt, np.ascontiguousarray(x[0, :, 1:3]), network, dt, starts, euler, every)


def _record_every(folder: Path) -> int:
    """Integration steps per recorded frame from truth.json's ``record_every`` (1 when not recorded)."""
    truth = folder / TRUTH_FILE
    every = json.loads(truth.read_text()).get("record_every", 1) if truth.is_file() else 1
    if not isinstance(every, int) or every < 1:
        raise SysidInputError(f"{truth} has record_every {every!r}: use a positive integer or remove the key")
    return every


def _euler_steps(conc: np.ndarray, dcdt: np.ndarray, dt: float) -> bool:
    """True if (nearly) every frame is the clamped Euler step of the previous one, as simulators write them."""
    step = np.maximum(conc[:-1] + np.float32(dt) * dcdt[:-1], 0)
    tol = 1e-5 * max(float(np.abs(conc).max()), 1e-30)
    return bool(np.mean(np.abs(conc[1:] - step) <= tol) >= 0.99)


def _check_arrays(x: np.ndarray, y: np.ndarray, folder: Path) -> None:
    if x.ndim != 3 or x.shape[2] != N_COLUMNS:
        raise SysidInputError(
            f"{folder / X_FILE} has shape {x.shape}: expected (n_frames+1, n_metabolites, {N_COLUMNS})"
        )
    if y.shape != (*x.shape[:2], 1):
        raise SysidInputError(f"{folder / Y_FILE} has shape {y.shape}: expected {(*x.shape[:2], 1)} to match x_list")
    for name, arr in ((X_FILE, x), (Y_FILE, y)):
        if not np.issubdtype(arr.dtype, np.floating):
            raise SysidInputError(f"{folder / name} has dtype {arr.dtype}: store it as float32")
    if x.shape[0] < 3:
        raise SysidInputError(f"{folder / X_FILE} has {x.shape[0]} frames: at least 3 are needed")
    conc = x[:, :, CONC_COL]
    if not np.all(np.isfinite(conc)) or not np.all(np.isfinite(y)):
        raise SysidInputError(f"dataset {folder} contains NaN or inf values: remove or interpolate those frames")
    if np.any(conc < 0):
        i, j = np.argwhere(conc < 0)[0]
        raise SysidInputError(
            f"dataset {folder} has a negative concentration (frame {i}, metabolite {j}): "
            "concentrations must be >= 0; clip or correct the data"
        )


def _load_network(folder: Path, n_met: int) -> Network:
    S = torch_load(_require(folder, S_FILE))
    graph = torch_load(_require(folder, GRAPH_FILE))
    if not isinstance(graph, dict) or "sub" not in graph or "all" not in graph:
        raise SysidInputError(f"{folder / GRAPH_FILE} must hold a dict with 'sub' and 'all' edge triples: rewrite it")
    S = np.asarray(S, np.float32)
    if S.ndim != 2 or S.shape[0] != n_met:
        raise SysidInputError(
            f"{folder / S_FILE} has shape {S.shape} but the data has {n_met} metabolites: "
            "use the stoichiometry of this dataset"
        )
    network = Network.from_edges(n_met, S.shape[1], graph["sub"], graph["all"], source=str(folder / GRAPH_FILE))
    if not np.allclose(network.S, S):
        raise SysidInputError(f"{folder / GRAPH_FILE} and {S_FILE} disagree: regenerate the dataset")
    return network


def _delta_t(folder: Path, conc: np.ndarray, dcdt: np.ndarray) -> float:
    truth = folder / TRUTH_FILE
    if truth.is_file():
        return float(json.loads(truth.read_text())["delta_t"])
    # MetabolismGraph folders do not store delta_t; x[t+1] = x[t] + dt * y[t] away from clamps.
    dx = np.diff(conc, axis=0).astype(np.float64)
    yy = dcdt[:-1].astype(np.float64)
    keep = conc[1:] > 0
    dt = float(np.sum(dx[keep] * yy[keep]) / max(np.sum(yy[keep] ** 2), 1e-300))
    if not np.isfinite(dt) or dt <= 0:
        raise SysidInputError(f"cannot infer delta_t from {folder}: add truth.json with a 'delta_t' key")
    return float(f"{dt:.6g}")


def load_truth(folder: str | Path) -> Truth | None:
    """Evaluation only: type labels and generator parameters, or None if absent."""
    folder = Path(folder)
    gt_path = folder / GT_FILE
    if not gt_path.is_file():
        return None
    gt = torch_load(gt_path)
    if not isinstance(gt, dict) or "p" not in gt or "log_k" not in gt:
        raise SysidInputError(f"{gt_path} must be a state dict with 'p' and 'log_k': remove it if there is no truth")
    x = np.load(folder / X_FILE, mmap_mode="r")
    types = np.asarray(x[0, :, TYPE_COL]).astype(np.int64)
    p = np.asarray(gt["p"].detach() if hasattr(gt["p"], "detach") else gt["p"], np.float64)
    log_k = np.asarray(gt["log_k"], np.float32)
    if p.ndim != 2 or p.shape[1] != 2 or log_k.ndim != 1:
        raise SysidInputError(f"{gt_path} has p of shape {p.shape} and log_k of shape {log_k.shape}: "
                              "expected p (n_types, 2) = [lambda, baseline] and log_k (n_reactions,)")
    if types.min() < 0 or types.max() >= len(p):
        raise SysidInputError(f"{folder / X_FILE} column 6 has types outside 0..{len(p) - 1} of {gt_path}: "
                              "the labels and gt_model.pt come from different datasets")
    return Truth(types=types, lambdas=p[:, 0], baselines=p[:, 1], log_k=log_k, law=_load_law(folder, len(p)))


def _load_law(folder: Path, n_types: int) -> HomeostasisLaw | None:
    """The regulation law of truth.json (``homeostasis``); None for datasets written before it was stored."""
    path = folder / TRUTH_FILE
    if not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text()).get("homeostasis")
    except (json.JSONDecodeError, AttributeError):
        raise SysidInputError(f"{path} is not a JSON object: regenerate the dataset with sysid simulate") from None
    if stored is None:
        return None
    law = HomeostasisLaw.from_json(stored)
    if law.n_types != n_types:
        raise SysidInputError(f"{path} has a homeostasis law for {law.n_types} types but gt_model.pt has {n_types}: "
                              "regenerate the dataset")
    return law


def load_species_truth(folder: str | Path) -> SpeciesTruth | None:
    """Evaluation only: the per-species truth of an SBML dataset (truth.json with 'lambda' and 'cb'), or None."""
    path = Path(folder) / TRUTH_FILE
    if not path.is_file():
        return None
    truth = json.loads(path.read_text())
    if truth.get("source") != "sbml":
        return None
    try:
        out = SpeciesTruth(types=np.asarray(truth["types"], np.int64), lambdas=np.asarray(truth["lambda"], np.float64),
                           baselines=np.asarray(truth["cb"], np.float64),
                           lambda_per_type=np.asarray(truth["lambda_per_type"], np.float64))
    except (KeyError, TypeError, ValueError) as exc:
        raise SysidInputError(f"{path} lacks or mangles {exc}: it must hold types, lambda, cb and lambda_per_type "
                              "per species, as sysid simulate --sbml writes it") from None
    if not len(out.types) == len(out.lambdas) == len(out.baselines):
        raise SysidInputError(f"{path}: types, lambda and cb have different lengths; regenerate the dataset")
    return out
