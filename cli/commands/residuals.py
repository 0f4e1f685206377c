"""Residuals of the frozen reaction model (single-step and windowed), with a summary and trace plots."""

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from sysid.config import load_config

from ..common import done, out_console, resolve_data, resolve_model, settle_imports, setup_logging


def command(
    data: Annotated[Path | None, typer.Option("--data", help="dataset folder (embedded default if omitted)")] = None,
    model: Annotated[Path | None, typer.Option("--model", help="frozen checkpoint (shipped one if omitted)")] = None,
    out: Annotated[Path, typer.Option("--out", help="folder for residuals.npz and plots")] = Path("residuals"),
    config: Annotated[Path | None, typer.Option("--config", help="YAML config")] = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing --out")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    setup_logging(verbose)
    from sysid.pipeline import residuals_to_folder  # imported here: `sysid --help` stays light
    settle_imports()

    cfg = load_config(config)
    table = residuals_to_folder(resolve_data(data, cfg), resolve_model(model), out, cfg, force=force)
    view = Table(title="mean |value| (rate units)")
    view.add_column("part")
    view.add_column("magnitude", justify="right")
    for key, value in table.items():
        view.add_row(key, f"{value:.4g}")
    out_console.print(view)
    done(out)
