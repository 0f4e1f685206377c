"""SBML jobs that write files (atomically): the simulated dataset and perturbed models."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sysid.config import Config
from sysid.outputs import atomic_dir, atomic_file, check_writable
from sysid.sbml import _deps


def simulate_sbml_to_folder(model: Path, cfg: Config, out: Path, *, force: bool = False,
                            progress: Callable[[int], None] | None = None) -> Path:
    """``sysid simulate --sbml``: the dataset of section "Simulating from SBML" in docs/sbml.md."""
    from sysid.sbml.simulate import simulate_sbml, write_sbml_dataset

    check_writable(Path(out), force)
    sim = simulate_sbml(model, cfg.sbml, progress)
    with atomic_dir(out, force) as tmp:
        write_sbml_dataset(sim, tmp)
    return Path(out)


def perturb_to_file(model: Path, out: Path, *, rate_noise: float | None, param_noise: float | None, seed: int,
                    force: bool = False) -> Path:
    from sysid.sbml.compiled import compile_model
    from sysid.sbml.perturb import perturb
    from sysid.sbml.reader import read_document

    check_writable(Path(out), force)
    doc = perturb(read_document(model), rate_noise=rate_noise, param_noise=param_noise, seed=seed)
    compile_model(doc)  # the result must still be a model sysid can use
    with atomic_file(out, force) as tmp:
        _deps.libsbml().writeSBMLToFile(doc, str(tmp))
    return Path(out)
