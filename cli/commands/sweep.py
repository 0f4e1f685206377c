"""Run a grid of cells (simulate -> frozen model -> fit) from a sweep file, in-process or on Ray."""

from pathlib import Path
from typing import Annotated

import typer

from sysid.sweep import SweepProgress, expand, load_sweep, run_sweep

from ..common import console, done, out_console, progress_bar, setup_logging


def command(
    sweep: Annotated[Path, typer.Argument(help="sweep YAML file (see docs/sweeps.md)")],
    out: Annotated[Path, typer.Option("--out", help="sweep folder: results.csv, summary.md, plots/, cells/")],
    address: Annotated[str | None, typer.Option("--address", help="Ray cluster: auto or ray://host:port")] = None,
    workers: Annotated[int | None, typer.Option(
        "--workers", help="cells at once; 1 runs in-process without Ray (default: every CPU Ray sees)")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="keep OUT: skip ok cells, rerun the others")] = False,
    force: Annotated[bool, typer.Option("--force", help="clear an existing OUT and start afresh")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    from ..main import Terminated  # raised on SIGTERM (cli/main.py imports this module first)

    setup_logging(verbose)
    spec = load_sweep(sweep)
    with progress_bar("cells", len(expand(spec))) as update:

        def show(state: SweepProgress) -> None:
            update(state.finished, total=state.total, failed=state.failed, running=state.running)

        try:
            report = run_sweep(spec, out, workers=workers, address=address, resume=resume, force=force,
                               progress=show)
        except (KeyboardInterrupt, Terminated) as exc:
            what, code = ("interrupted", 130) if isinstance(exc, KeyboardInterrupt) else ("terminated", 143)
            console.print(f"{what}: the finished cells are kept in {Path(out) / 'results.csv'}; "
                          "rerun with --resume to finish the sweep")
            raise SystemExit(code) from None
    state = report.progress
    out_console.print(f"{report.n_cells} cells: {report.skipped} already ok (kept), {state.done} ok, "
                      f"{state.failed} failed or timed out")
    done(out)
