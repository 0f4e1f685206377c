"""Simulate the ground-truth system and write a MetabolismGraph dataset folder."""

from pathlib import Path
from typing import Annotated

import typer

from sysid.config import load_config
from sysid.errors import SysidInputError

from ..common import done, progress_bar, settle_imports, setup_logging


def command(
    out: Annotated[Path, typer.Option("--out", help="dataset folder to create")],
    config: Annotated[Path | None, typer.Option("--config", help="YAML config (default regime if omitted)")] = None,
    sbml: Annotated[Path | None, typer.Option("--sbml", help="SBML model as the reaction part of the truth")] = None,
    network: Annotated[str | None, typer.Option(
        "--network", help="SBML file or cobra:NAME whose topology the truth uses (kinetic laws ignored)")] = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing --out")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    setup_logging(verbose)
    # imported here: `sysid --help` stays light
    from sysid.pipeline import simulate_network_to_folder, simulate_sbml_to_folder, simulate_to_folder
    settle_imports()

    if sbml is not None and network is not None:
        raise SysidInputError("--sbml and --network are alternatives: pass one of them")
    cfg = load_config(config)
    if sbml is not None:
        with progress_bar("simulating experiments", cfg.sbml.n_experiments) as update:
            simulate_sbml_to_folder(sbml, cfg, out, force=force, progress=update)
        done(out)
        return
    if network is not None:
        with progress_bar("simulating", cfg.simulation.n_frames) as update:
            simulate_network_to_folder(network, cfg, out, force=force, progress=update)
        done(out)
        return
    with progress_bar("simulating", cfg.simulation.n_frames) as update:
        simulate_to_folder(cfg, out, force=force, progress=update)
    done(out)
