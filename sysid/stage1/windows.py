"""The windows of the output-error fit: which lengths a record gets (:class:`WindowPlan`), where each window
starts, which blocks are held out, and the shorter lengths a sparse record starts with."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HELD_OUT_EVERY = 5  # every 5th block of the longest windows is held out to compare the answer with stage 1's


def output_error_starts(n_frames: int, window: int, experiment_starts=(0,), use: np.ndarray | None = None
                        ) -> np.ndarray:
    """First sample of each window of ``window`` recorded samples, windows inside one experiment, not
    sharing samples; with ``use`` (per sample), only the windows whose samples it allows."""
    bounds = [*experiment_starts, n_frames + 1]
    first = np.concatenate([np.arange(s, e - window + 1, window)
                            for s, e in zip(bounds[:-1], bounds[1:], strict=True)]).astype(np.int64)
    if use is None:
        return first
    return first[use[first[:, None] + np.arange(window)[None, :]].all(axis=1)]


def held_out_samples(n_frames: int, block: int, experiment_starts=(0,)) -> np.ndarray | None:
    """Per recorded sample, whether it lies in a held-out block: every HELD_OUT_EVERY-th block of ``block``
    samples of each experiment. None when no held-out window or fewer than two training windows would be left."""
    bounds = [*experiment_starts, n_frames + 1]
    index = np.concatenate([np.arange(e - s) // block for s, e in zip(bounds[:-1], bounds[1:], strict=True)])
    held = index % HELD_OUT_EVERY == HELD_OUT_EVERY - 1
    enough = [output_error_starts(n_frames, block, experiment_starts, use).size >= least
              for use, least in ((held, 1), (~held, 2))]
    return held if all(enough) else None


def held_out_lengths(n_frames: int, windows: tuple[int, ...], experiment_starts=(0,)
                     ) -> tuple[tuple[int, ...], np.ndarray | None]:
    """``windows`` (short to long) without the longest lengths that the record cannot hold a block of out
    (:func:`held_out_samples`), and the held-out samples of the longest one it can; all of ``windows`` and None
    when it can hold out none (no comparison then)."""
    for k in range(len(windows), 0, -1):
        held = held_out_samples(n_frames, windows[k - 1], experiment_starts)
        if held is not None:
            return windows[:k], held
    return windows, None


def within_span(windows: tuple[int, ...], substeps: int, max_steps: int) -> tuple[int, ...]:
    """The lengths of ``windows`` (samples) that span at most ``max_steps`` integration steps on a record with
    ``substeps`` steps per sample (at least the shortest: a record whose samples are far apart keeps one): a
    longer window carries the frozen model's errors, and the system's own divergence, further."""
    kept = tuple(w for w in windows if w * substeps <= max_steps)
    return kept if kept or not windows else (min(windows),)


def lead_in(windows: tuple[int, ...], substeps: int) -> tuple[int, ...]:
    """``windows`` (samples) preceded, on a record with ``substeps`` Euler steps per sample, by shorter lengths
    that double from the one spanning about ``windows[0]`` steps (at least 2 samples): a fit over windows of many
    steps only converges from a start close to the answer."""
    lead, w = [], max(2, round(windows[0] / substeps))
    while 2 * w <= windows[0]:
        lead.append(w)
        w *= 2
    return (*lead, *windows)  # none with one step per sample: windows[0] itself spans windows[0] steps


@dataclass(frozen=True)
class WindowPlan:
    """The output error's window lengths (samples, short to long) as configured, of which a record gets those
    spanning at most ``max_steps`` integration steps (:func:`within_span`; None: any)."""

    lengths: tuple[int, ...]
    max_steps: int | None = None

    def for_record(self, n_frames: int, substeps: int, experiment_starts=(0,)
                   ) -> tuple[tuple[int, ...], np.ndarray | None]:
        """The lengths a record of ``n_frames`` samples, ``substeps`` integration steps each, is fitted over
        (within the span, after the lead-in of :func:`lead_in`, as far as :func:`held_out_lengths` allows) and its
        held-out samples (None: no comparison)."""
        lengths = self.lengths if self.max_steps is None else within_span(self.lengths, substeps, self.max_steps)
        return held_out_lengths(n_frames, lead_in(lengths, substeps), experiment_starts)
