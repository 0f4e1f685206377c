"""Write a frozen SBML model with a controlled error: one factor per rate law, or every kinetic parameter."""

from pathlib import Path
from typing import Annotated

import typer

from ..common import done, settle_imports, setup_logging


def command(
    model: Annotated[Path, typer.Argument(help="SBML model (.xml)")],
    out: Annotated[Path, typer.Option("--out", help="perturbed SBML file to write")],
    rate_noise: Annotated[float | None, typer.Option("--rate-noise", help="sd of log factor per rate law")] = None,
    param_noise: Annotated[float | None, typer.Option("--param-noise", help="sd of log factor per parameter")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing --out")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    setup_logging(verbose)
    from sysid.pipeline import perturb_to_file  # imported here: `sysid --help` stays light
    settle_imports()

    perturb_to_file(model, out, rate_noise=rate_noise, param_noise=param_noise, seed=seed, force=force)
    done(out)
