"""Figures. Imported by the pipeline's reporting layer only, never by the numerical core."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sysid.metrics import SWEEP  # noqa: E402
from sysid.simulate import Truth  # noqa: E402


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def rate_constants(learned: np.ndarray, truth: np.ndarray, r2: float, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(truth, learned, s=8, alpha=0.7)
    lo, hi = float(min(truth.min(), learned.min())), float(max(truth.max(), learned.max()))
    ax.plot([lo, hi], [lo, hi], "k--", lw=1)
    ax.set(xlabel="true log10 k", ylabel="learned log10 k (scale-corrected)", title=f"rate constants, R2 = {r2:.3f}")
    _save(fig, path)


def node_functions(curves: np.ndarray, truth: Truth, path: Path, c: np.ndarray = SWEEP) -> None:
    """MLP_node curves per true type against the truth lines."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    colors = plt.cm.tab10(np.arange(truth.n_types) % 10)
    for t in range(truth.n_types):
        rows = curves[truth.types == t]
        ax.plot(c, rows.T, color=colors[t], alpha=0.25, lw=0.8)
        ax.plot(c, truth.slopes()[t] * c + truth.offsets()[t], "--", color=colors[t], lw=2, label=f"type {t} truth")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set(xlabel="concentration c", ylabel="MLP_node([c, a_i])", title="homeostasis per metabolite vs truth")
    ax.legend()
    _save(fig, path)


def embeddings(a: np.ndarray, labels: np.ndarray, title: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    if a.shape[1] == 1:
        a = np.column_stack([a[:, 0], np.zeros(len(a))])
    for lab in np.unique(labels):
        m = labels == lab
        ax.scatter(a[m, 0], a[m, 1], s=14, label=str(lab))
    ax.set(xlabel="a[0]", ylabel="a[1]", title=title)
    ax.legend(fontsize=8)
    _save(fig, path)


def loss_curves(curves: dict[str, list[float]], path: Path, ylabel: str = "loss") -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, values in curves.items():
        if len(values):
            ax.plot(np.arange(1, len(values) + 1), values, label=name)
    ax.set(xlabel="step", ylabel=ylabel, yscale="log")
    ax.legend()
    _save(fig, path)
