"""Evaluate a checkpoint against a dataset's truth: analysis.log and figures."""

from pathlib import Path
from typing import Annotated

import typer

from sysid.config import load_config

from ..common import done, out_console, settle_imports, setup_logging


def command(
    data: Annotated[Path, typer.Option("--data", help="dataset folder with its truth")],
    model: Annotated[Path, typer.Option("--model", help="checkpoint (.pt) to evaluate")],
    out: Annotated[Path, typer.Option("--out", help="folder for analysis.log and plots")],
    config: Annotated[Path | None, typer.Option("--config", help="YAML config (aggr_type, eps)")] = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing --out")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    setup_logging(verbose)
    from sysid.pipeline import evaluate_to_folder  # imported here: `sysid --help` stays light
    settle_imports()

    metrics = evaluate_to_folder(data, model, out, load_config(config), force=force)
    for key, value in metrics.items():
        out_console.print(f"{key}: {value:.6g}")
    done(out)
