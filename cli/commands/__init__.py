"""One module per command; each exposes ``command``."""

from importlib import import_module

import typer

COMMANDS = ("simulate", "phase1", "residuals", "fit", "evaluate", "perturb", "sweep")


def register(app: typer.Typer) -> None:
    for name in COMMANDS:
        module = import_module(f"{__name__}.{name}")
        app.command(name, help=module.__doc__)(module.command)
