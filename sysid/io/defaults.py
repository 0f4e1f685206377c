"""The embedded default: the default regime (simulated once, cached) and the shipped frozen model."""

from __future__ import annotations

import hashlib
import json
import os
from importlib import resources
from pathlib import Path

from sysid.config import Config, load_config
from sysid.io.atomic import atomic_dir
from sysid.io.dataset import write_dataset

REFERENCE_CHECKPOINT = "reference_phase1.pt"


def default_config() -> Config:
    return load_config(None)


def cache_root() -> Path:
    return Path(os.environ.get("SYSID_CACHE", Path.home() / ".cache" / "sysid"))


def default_dataset_dir(cfg: Config | None = None) -> Path:
    """Folder of the default-regime dataset, simulated on first use (deterministic)."""
    cfg = cfg or default_config()
    key = json.dumps([cfg.simulation.__dict__, cfg.training.measurement_noise_level,
                      cfg.training.measurement_noise_kind], sort_keys=True, default=str)
    folder = cache_root() / f"default-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    if not (folder / "truth.json").is_file():
        from sysid.simulation import simulate  # here: once the dataset is cached, no simulator is needed

        folder.parent.mkdir(parents=True, exist_ok=True)
        with atomic_dir(folder, force=True) as tmp:
            write_dataset(simulate(cfg.simulation, cfg.training.measurement_noise_level,
                                    noise_kind=cfg.training.measurement_noise_kind), tmp)
    return folder


def reference_checkpoint() -> Path:
    """The frozen Phase 1 model shipped with the package (see docs/phase1.md)."""
    return Path(str(resources.files("sysid") / "data" / REFERENCE_CHECKPOINT))
