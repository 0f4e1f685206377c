"""Make the frozen reaction model: train log_k and MLP_sub on a dataset, or build it from the truth."""

from pathlib import Path
from typing import Annotated

import typer

from sysid.config import load_config
from sysid.errors import SysidInputError

from ..common import done, out_console, progress_bar, resolve_data, settle_imports, setup_logging


def command(
    out: Annotated[Path, typer.Option("--out", help="checkpoint (.pt); CKPT.json, CKPT.loss.png beside it")],
    data: Annotated[Path | None, typer.Option("--data", help="dataset folder (embedded default if omitted)")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML config (sysid.phase1, graph_model)")] = None,
    from_truth: Annotated[bool, typer.Option("--from-truth", help="true log_k + noise, mass-action MLP_sub")] = False,
    log_k_noise: Annotated[float, typer.Option("--log-k-noise", help="sd of the Gaussian noise on log_k")] = 0.0,
    seed: Annotated[int | None, typer.Option("--seed", help="seed (default: sysid.phase1.seed)")] = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing --out")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    setup_logging(verbose)
    from sysid.pipeline import phase1_to_file  # imported here: `sysid --help` stays light
    settle_imports()

    if log_k_noise < 0:
        raise SysidInputError(f"--log-k-noise is {log_k_noise}: use a standard deviation >= 0")
    if log_k_noise and not from_truth:
        raise SysidInputError("--log-k-noise only applies with --from-truth: add --from-truth or drop it")
    cfg = load_config(config)
    data = resolve_data(data, cfg)
    with progress_bar("phase1", cfg.sysid.phase1.n_epochs) as update:
        summary = phase1_to_file(data, out, cfg, force=force, from_truth=from_truth,
                                 log_k_noise=log_k_noise, seed=seed, progress=update)
    if "rate_constants_R2" in summary:
        out_console.print(f"rate_constants_R2: {summary['rate_constants_R2']:.6g}")
    done(out)
