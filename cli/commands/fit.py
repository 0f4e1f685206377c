"""Stage 1 fits (slopes, offsets, groups); with --refine also the neural stage 2."""

from pathlib import Path
from typing import Annotated

import typer

from sysid.config import load_config

from ..common import done, out_console, progress_bar, resolve_data, resolve_model, settle_imports, setup_logging


def command(
    data: Annotated[Path | None, typer.Option("--data", help="dataset folder (embedded default if omitted)")] = None,
    model: Annotated[Path | None, typer.Option("--model", help="frozen checkpoint (shipped one if omitted)")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML config")] = None,
    out: Annotated[Path, typer.Option("--out", help="result folder")] = Path("fit"),
    refine: Annotated[bool, typer.Option("--refine", help="also run the neural refine (stage 2)")] = False,
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing --out")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    setup_logging(verbose)
    # The refine's rollouts are many small tensor ops: one intra-op thread is faster than two, and
    # two threads collapse when another process holds a core (measured 0.05 s vs 7 s per rollout).
    # Stage 1 sets its own: the frozen evaluation and the output error run torch on the thread budget.
    import torch

    from sysid.pipeline import fit_to_folder  # imported here: `sysid --help` stays light

    settle_imports()

    torch.set_num_threads(1)
    cfg = load_config(config)
    data_dir, model_path = resolve_data(data, cfg), resolve_model(model)
    loops = cfg.training.data_augmentation_loop
    with progress_bar("stage 1 output error", None) as update:  # one bar, shown when either stage reports

        def stage1(done: int, total: int, description: str = "stage 1 output error", **fields: float) -> None:
            update(done, total=total, description=description, **fields)

        def refining(step: int, **fields: float) -> None:
            update(step, total=loops, description="refining", **fields)

        metrics = fit_to_folder(data_dir, model_path, out, cfg, force=force, refine_stage=refine,
                                progress=refining if refine else None, stage1_progress=stage1)
    for key, value in metrics.items():
        out_console.print(f"{key}: {value:.6g}")
    done(out)
