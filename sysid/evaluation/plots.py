"""Figures. Imported by the pipeline's reporting layer only, never by the numerical core."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import ticker  # noqa: E402

from sysid.curves import SWEEP  # noqa: E402
from sysid.truth import Truth  # noqa: E402


def _save(fig, path: Path | BinaryIO) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _log_y(ax) -> None:
    """A log y axis labelled with plain numbers (10, 0.01, 2e-05): matplotlib's default powers of ten go through
    its mathtext engine, whose first use costs about 0.25 s of every command that draws one."""
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(_decade_label))
    ax.yaxis.set_minor_formatter(ticker.LogFormatter(10, labelOnlyBase=False))  # labels them when few decades


def _decade_label(value: float, _position) -> str:
    """A major tick of a log axis (a power of ten): 0.001 to 10000 written out, further ones as 1e-05, 1e+06."""
    return f"{value:g}" if 1e-3 <= value <= 1e4 else f"{value:.0e}"


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


def loss_curves(curves: dict[str, list[float]], path: Path | BinaryIO, ylabel: str = "loss",
                steps: dict[str, list[int]] | None = None) -> None:
    """One line per curve; x is 1..n unless ``steps`` gives a curve's own step numbers."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, values in curves.items():
        if len(values):
            x = (steps or {}).get(name, np.arange(1, len(values) + 1))
            ax.plot(x, values, label=name, marker="o" if name in (steps or {}) else None)
    ax.set(xlabel="step", ylabel=ylabel)
    _log_y(ax)
    if ax.get_legend_handles_labels()[1]:  # a from-truth model has no loss curve
        ax.legend()
    _save(fig, path)


def residual_traces(time: np.ndarray, observed: np.ndarray, reaction: np.ndarray, residual: np.ndarray,
                    metabolites: list[int], path: Path, homeostasis: np.ndarray | None = None) -> None:
    """Observed dc/dt, frozen reaction part and residual for a few metabolites."""
    fig, axes = plt.subplots(len(metabolites), 2, figsize=(10, 2.2 * len(metabolites)), squeeze=False)
    for row, i in enumerate(metabolites):
        axes[row, 0].plot(time, observed[:, i], lw=0.8, label="observed dc/dt")
        axes[row, 0].plot(time, reaction[:, i], lw=0.8, ls="--", label="frozen reaction part")
        axes[row, 0].set_ylabel(f"metabolite {i}")
        axes[row, 1].plot(time, residual[:, i], lw=0.6, label="residual")
        if homeostasis is not None:
            axes[row, 1].plot(time, homeostasis[:, i], lw=1.2, label="true homeostasis")
    axes[0, 0].legend(fontsize=7)
    axes[0, 1].legend(fontsize=7)
    axes[-1, 0].set_xlabel("time")
    axes[-1, 1].set_xlabel("time")
    _save(fig, path)


def stage1_scatter(slope, offset, slope_se, offset_se, groups, path: Path, truth: Truth | None = None) -> None:
    """Fitted slope vs offset per metabolite with error bars, coloured by group."""
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for g in np.unique(groups):
        m = groups == g
        ax.errorbar(slope[m], offset[m], xerr=slope_se[m], yerr=offset_se[m], fmt="o", ms=3, lw=0.6,
                    label=f"group {g} ({m.sum()})")
    if truth is not None:
        ax.scatter(truth.slopes(), truth.offsets(), marker="x", s=80, c="k", label="truth per type")
    ax.set(xlabel="slope (-lambda)", ylabel="offset (lambda * cb)", title="stage 1 fits")
    ax.legend(fontsize=8)
    _save(fig, path)


def group_lines(group_slopes, group_offsets, path: Path, truth: Truth | None = None, c: np.ndarray = SWEEP) -> None:
    """Pooled homeostasis line of each group, with the truth lines when known."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for g, (s, o) in enumerate(zip(group_slopes, group_offsets, strict=True)):
        ax.plot(c, s * c + o, lw=2, label=f"group {g}")
    if truth is not None:
        for t in range(truth.n_types):
            ax.plot(c, truth.slopes()[t] * c + truth.offsets()[t], "k--", lw=1, label="truth" if t == 0 else None)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set(xlabel="concentration c", ylabel="homeostatic rate", title="stage 1 group lines")
    ax.legend(fontsize=8)
    _save(fig, path)


def detectability(z_score: np.ndarray, identified: np.ndarray, z_min: float, path: Path,
                  crb_relative: np.ndarray | None = None) -> None:
    """z-score |slope| / se per metabolite (log scale), unidentified ones marked; relative Cramer-Rao bound if any."""
    n_panels = 1 if crb_relative is None else 2
    fig, axes = plt.subplots(1, n_panels, figsize=(6 * n_panels, 4), squeeze=False)
    ax = axes[0, 0]
    idx = np.arange(len(z_score))
    z = np.maximum(z_score, 1e-3)
    ax.scatter(idx[identified], z[identified], s=10, label="identified")
    ax.scatter(idx[~identified], z[~identified], s=18, marker="x", color="C3", label="not identified")
    ax.axhline(z_min, color="grey", ls="--", lw=1)
    ax.set(xlabel="metabolite", ylabel="|slope| / se", title="detectability")
    _log_y(ax)
    ax.legend(fontsize=8)
    if crb_relative is not None:
        ax = axes[0, 1]
        ax.scatter(idx, np.maximum(crb_relative, 1e-6), s=10)
        ax.set(xlabel="metabolite", ylabel="Cramer-Rao sd / |slope|", title="physical limit of the slope")
        _log_y(ax)
    _save(fig, path)


def curves_vs_truth(c: np.ndarray, learned: np.ndarray, stage1: np.ndarray, truth: Truth, path: Path) -> None:
    """One panel per true type: the true law h_t(c), MLP_node of the type's metabolites and stage 1's curves,
    over ``c`` (the pooled observed range); ``learned`` and ``stage1`` are (n_metabolites, len(c))."""
    fig, axes = plt.subplots(1, truth.n_types, figsize=(4.5 * truth.n_types, 4), squeeze=False)
    for t, ax in enumerate(axes[0]):
        m = truth.types == t
        ax.plot(c, stage1[m].T, color="tab:orange", alpha=0.3, lw=0.8)
        ax.plot(c, learned[m].T, color="tab:blue", alpha=0.3, lw=0.8)
        ax.plot(c, truth.curve(t, c), "k--", lw=2, label=f"truth ({truth.form})")
        ax.plot([], [], color="tab:orange", label="stage 1")
        ax.plot([], [], color="tab:blue", label="MLP_node (kept)")
        ax.axhline(0, color="grey", lw=0.5)
        ax.set(xlabel="concentration c", ylabel="regulation h(c)", title=f"type {t}")
        ax.legend(fontsize=8)
    _save(fig, path)
