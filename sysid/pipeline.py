"""Pipeline jobs that read inputs and write a result folder atomically."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sysid.checkpoint import check_compatible, load_checkpoint
from sysid.config import Config
from sysid.dataset import load_dataset, load_truth, write_dataset
from sysid.errors import SysidInputError
from sysid.outputs import atomic_dir
from sysid.simulate import simulate


def simulate_to_folder(
    cfg: Config, out: Path, *, force: bool = False, progress: Callable[[int], None] | None = None
) -> Path:
    with atomic_dir(out, force) as tmp:
        write_dataset(simulate(cfg.simulation, cfg.training.measurement_noise_level, progress), tmp)
    return Path(out)


def evaluate_to_folder(data: Path, model: Path, out: Path, cfg: Config, *, force: bool = False) -> dict[str, float]:
    from sysid.evaluate import evaluate_model

    dataset = load_dataset(data)
    truth = load_truth(data)
    if truth is None:
        raise SysidInputError(f"dataset {data} has no gt_model.pt: evaluation needs the ground truth")
    net = load_checkpoint(model, cfg.graph_model.aggr_type)
    check_compatible(net, dataset.network)
    with atomic_dir(out, force) as tmp:
        metrics = evaluate_model(net, dataset, truth, tmp, cfg.training.cluster_distance_threshold)
    return metrics
