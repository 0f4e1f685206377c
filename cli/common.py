"""Shared command-line plumbing: error reporting, progress bars, embedded defaults."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from sysid.config import Config, SimulationConfig
from sysid.errors import SysidInputError

console = Console(stderr=True)
out_console = Console()
_PROCESS = {"console_script": False}  # True in the `sysid` process itself (main.entry), not in a test's process


def as_console_script() -> None:
    """Mark this process as the `sysid` command's own (:func:`settle_imports` freezes then)."""
    _PROCESS["console_script"] = True


def settle_imports() -> None:
    """After a command's imports, in the `sysid` process: their objects frozen out of the garbage collector's
    later full passes, which each walked every object of torch, scikit-learn and the rest (0.13-0.16 s apiece,
    two of them in `sysid fit` on the default). A test that calls the commands in its own process keeps its
    collector as it is."""
    if _PROCESS["console_script"]:
        gc.freeze()


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False, show_time=False)],
        force=True,
    )


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[..., None]]:
    """Yield ``update(completed, total=None, description=None, **fields)``; fields (e.g. loss=...) are shown
    live. With ``total`` None the bar stays hidden until the first update (work that may not happen)."""
    columns = [
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
    ]
    with Progress(*columns, console=console, transient=False, disable=not console.is_terminal) as bar:
        task = bar.add_task(description, total=total, info="", visible=total is not None)

        def update(completed: int, total: int | None = None, description: str | None = None,
                   **fields: float) -> None:
            info = "  ".join(f"{k} {v:.4g}" for k, v in fields.items())
            bar.update(task, completed=completed, total=total, description=description, info=info, visible=True)

        yield update


def resolve_data(data: Path | None, cfg: Config) -> Path:
    """``--data``, or the dataset that ``cfg.simulation`` describes (the embedded default: simulated on first use)."""
    from sysid.io.dataset import check_dataset_folder
    from sysid.io.defaults import default_dataset_dir

    if data is not None:
        return check_dataset_folder(data)  # before the model is resolved and announced

    if cfg.simulation == SimulationConfig():
        console.print("using the embedded default dataset (default regime, seed 42)")
    else:
        console.print("using the dataset of the config's simulation section (simulated once, then cached)")
    return default_dataset_dir(cfg)


def resolve_model(model: Path | None) -> Path:
    """``--model``, or the reference frozen model shipped in the package."""
    if model is not None:
        return model
    from sysid.io.defaults import reference_checkpoint

    path = reference_checkpoint()
    if not path.is_file():
        raise SysidInputError(f"the shipped reference checkpoint {path} is missing: reinstall sysid or pass --model")
    console.print("using the shipped reference frozen model")
    return path


def fail(message: str) -> None:
    # escaped: messages hold paths and hints such as "[a, b, ...]" that rich would read as markup
    console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)


def done(out: Path) -> None:
    out_console.print(f"results written to {Path(out).absolute()}")
