"""summary.md: how the main ratios and the group accuracy move along each axis of the sweep."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from sysid.io.atomic import atomic_file
from sysid.sweep.execute import OK

WORST = "stage1_worst_ratio_error"
# in this order when present; WORST is derived from the per-type stage1 ratios
MAIN_METRICS = ("stage1_avg_slope_ratio", WORST, "stage1_group_acc", "avg_slope_ratio", "embedding_cluster_acc",
                "rate_constants_R2")
PLOTTED = ("stage1_avg_slope_ratio", WORST, "stage1_group_acc", "avg_slope_ratio", "embedding_cluster_acc")


def read_results(path: Path) -> pd.DataFrame:
    """results.csv with the derived worst |ratio - 1| of the stage-1 per-type ratios."""
    frame = pd.read_csv(path, dtype={"cell_id": str, "error": str}, keep_default_na=False, na_values=["", "nan"])
    ratios = [c for c in frame.columns if c.startswith(("stage1_slope_ratio_", "stage1_offset_ratio_"))]
    if ratios:
        frame[WORST] = (frame[ratios].astype(float) - 1.0).abs().max(axis=1, skipna=False)
    return frame


def varying_axes(frame: pd.DataFrame, axes: Sequence[str]) -> list[str]:
    return [a for a in axes if a in frame.columns and frame[a].nunique() > 1]


def write_summary(results: Path, out: Path, axes: Sequence[str], title: str) -> pd.DataFrame:
    frame = read_results(results)
    ok = frame[frame["status"] == OK]
    counts = frame["status"].value_counts()
    lines = [f"# Sweep summary: {title}", "",
             f"{len(frame)} cells: {counts.get(OK, 0)} ok, {counts.get('failed', 0)} failed, "
             f"{counts.get('timeout', 0)} timed out. Rows: [results.csv](results.csv). Each table gives the mean, "
             "min and max of a metric over the ok cells that share one value of an axis (all other axes pooled).",
             ""]
    bad = frame[frame["status"] != OK]
    if len(bad):
        lines += ["## Cells that did not finish", "", markdown(bad[["cell_id", *axes, "status", "error"]]), ""]
    for metric in (m for m in MAIN_METRICS if m in ok.columns):
        lines += [f"## {metric}", ""]
        for axis in axes:
            table = ok.groupby(axis)[metric].agg(["mean", "min", "max", "count"]).reset_index()
            lines += [f"by {axis}:", "", markdown(table.rename(columns={"count": "cells"})), ""]
    with atomic_file(out, force=True) as tmp:
        tmp.write_text("\n".join(lines))
    return frame


def markdown(frame: pd.DataFrame) -> str:
    """A pipe table (pandas' to_markdown needs the optional tabulate package)."""
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def _fmt(value) -> str:
    if isinstance(value, float | np.floating):
        return "" if np.isnan(value) else f"{value:.4g}"
    return str(value).replace("|", "/")
