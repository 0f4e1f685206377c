"""Figures of a sweep: a heatmap per pair of varying axes, or a line when only one axis varies."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def sweep_figures(ok: pd.DataFrame, axes: Sequence[str], metrics: Sequence[str], out: Path) -> list[Path]:
    """Mean of each metric over the other axes; returns the files written."""
    written = []
    for metric in metrics:
        if len(axes) == 1:
            written.append(_line(ok, axes[0], metric, out / f"{metric}__{_name(axes[0])}.png"))
        for a, b in itertools.combinations(axes, 2):
            written.append(_heatmap(ok, a, b, metric, out / f"{metric}__{_name(a)}__{_name(b)}.png"))
    return written


def _name(axis: str) -> str:
    return axis.replace(".", "-")


def _line(ok: pd.DataFrame, axis: str, metric: str, path: Path) -> Path:
    mean = ok.groupby(axis)[metric].agg(["mean", "min", "max"])
    fig, ax = plt.subplots(figsize=(5, 3.5))
    x = [str(v) for v in mean.index]
    ax.fill_between(x, mean["min"], mean["max"], alpha=0.25, label="min-max")
    ax.plot(x, mean["mean"], marker="o", label="mean")
    ax.set(xlabel=axis, ylabel=metric, title=f"{metric} against {axis}")
    ax.legend(fontsize=8)
    return _save(fig, path)


def _heatmap(ok: pd.DataFrame, a: str, b: str, metric: str, path: Path) -> Path:
    table = ok.pivot_table(index=a, columns=b, values=metric, aggfunc="mean")
    fig, ax = plt.subplots(figsize=(1.2 * len(table.columns) + 3, 0.7 * len(table.index) + 2.5))
    image = ax.imshow(table.to_numpy(float), cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(table.columns)), [str(v) for v in table.columns])
    ax.set_yticks(range(len(table.index)), [str(v) for v in table.index])
    for (i, j), value in pd.DataFrame(table.to_numpy(float)).stack().items():
        ax.text(j, i, f"{value:.3g}", ha="center", va="center", color="white", fontsize=8)
    ax.set(xlabel=b, ylabel=a, title=f"mean {metric}")
    fig.colorbar(image, ax=ax)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

