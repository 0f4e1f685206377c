"""Regression library for stage 1: the windowed (integral-form) regressors.

For rows (metabolite i, window w) the model is

    d_i(w) = s_i * dt sum_t c_i  +  o_i * W dt
             + sum_j beta_j * S_ij dt sum_t v_j                    (per-reaction scale errors)
             + sum_m gamma_m * dt sum_t sum_j S_ij v_j f_m(t, j)   (shared shape errors)

where d is the windowed residual, v the frozen model's rates, and f_m are
shared correction features of a reaction: sums over its substrate edges of
basis functions of log c_e (errors of MLP_sub's shape), and basis functions of
the log aggregate (errors of the softplus link). They linearise
v_true = v * exp(beta_j + sum_m gamma_m f_m), refined by Gauss-Newton in
:mod:`sysid.stage1.regression`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import numpy as np
from scipy import sparse

from sysid.network import Network
from sysid.stage1.block_solve import log_monomials
from sysid.stage1.residuals import window_frames, window_sum
from sysid.threads import allowed

LOG_EPS = 1e-3


@dataclass(frozen=True, eq=False)
class ShapeFeatures:
    """Per-frame, per-reaction shared correction features f_m(t, j): (n_frames + 1, n_reactions, n_features)."""

    values: np.ndarray
    names: list[str]


def hat_knots(x: np.ndarray, n_knots: int, mask: np.ndarray, reference: np.ndarray | None = None
              ) -> np.ndarray | None:
    """The knots of :func:`hat_basis`: quantiles of reference[mask] (default: x[mask]) from its minimum to its
    maximum; None when there are fewer than two."""
    if n_knots < 2 or not mask.any():
        return None
    knots = np.unique(np.quantile((x if reference is None else reference)[mask], np.linspace(0.0, 1.0, n_knots)))
    return knots if len(knots) >= 2 else None


def log_conc(conc: np.ndarray) -> np.ndarray:
    """log(c + LOG_EPS) of concentrations, a negative one (a simulated or shifted state) counted as zero."""
    return np.log(np.maximum(conc, 0.0) + LOG_EPS)


def log_conc_slope(conc: np.ndarray) -> np.ndarray:
    """d :func:`log_conc` / dc: 1 / (c + LOG_EPS) where c > 0, zero where it is counted as zero."""
    return np.where(conc > 0.0, 1.0 / (np.maximum(conc, 0.0) + LOG_EPS), 0.0)


def _hat_piece(x: np.ndarray, knots: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x clipped to the knots, the index of the knot interval it falls in, and that interval's width."""
    z = np.clip(x, knots[0], knots[-1])
    left = np.clip(np.searchsorted(knots, z, side="right") - 1, 0, len(knots) - 2)
    return z, left, knots[left + 1] - knots[left]


def hat_basis(x: np.ndarray, n_knots: int, mask: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """Piecewise-linear hat functions on knots at quantiles of reference[mask] (default: x[mask]) from its
    minimum to its maximum: array of shape (*x.shape, n_hats).

    The first hat is left out: the hats sum to one, which the per-reaction scale already spans.
    """
    return hat_values(x, hat_knots(x, n_knots, mask, reference))


def hat_values(x: np.ndarray, knots: np.ndarray | None) -> np.ndarray:
    """:func:`hat_basis` on given ``knots`` (None: no hats): (*x.shape, n_hats)."""
    if knots is None:
        return np.zeros((*x.shape, 0))
    z, left, width = _hat_piece(x, knots)
    frac = (z - knots[left]) / width
    hats = np.zeros((*x.shape, len(knots)))
    np.put_along_axis(hats, left[..., None], (1.0 - frac)[..., None], axis=-1)
    np.put_along_axis(hats, left[..., None] + 1, frac[..., None], axis=-1)
    return hats[..., 1:]


def hat_basis_slopes(x: np.ndarray, knots: np.ndarray | None) -> np.ndarray:
    """Derivatives in x of :func:`hat_basis` on ``knots`` (None: no hats): (*x.shape, n_hats); zero outside."""
    if knots is None:
        return np.zeros((*x.shape, 0))
    _, left, width = _hat_piece(x, knots)
    inside = (x >= knots[0]) & (x <= knots[-1])
    slopes = np.zeros((*x.shape, len(knots)))
    np.put_along_axis(slopes, left[..., None], np.where(inside, -1.0 / width, 0.0)[..., None], axis=-1)
    np.put_along_axis(slopes, left[..., None] + 1, np.where(inside, 1.0 / width, 0.0)[..., None], axis=-1)
    return slopes[..., 1:]


def substrate_incidence(network: Network) -> list[tuple[float, sparse.csr_matrix]]:
    """Per distinct substrate coefficient |s| (ascending: the order of the shape features' blocks), that value
    and the (metabolites, reactions) count of the substrate edges that carry it (repeated edges add up)."""
    e = network.edges
    out = []
    for s in np.unique(e.sto_sub):
        edges = np.nonzero(e.sto_sub == s)[0]
        out.append((float(s), sparse.csr_matrix((np.ones(len(edges)), (e.met_sub[edges], e.rxn_sub[edges])),
                                                shape=(network.n_metabolites, network.n_reactions))))
    return out


@dataclass(frozen=True, eq=False)
class ShapeKnots:
    """Where the hats of :func:`shape_features` sit: per distinct substrate coefficient |s| (ascending), its
    substrate edges (:func:`substrate_incidence`) and the knots of their log concentrations; the knots of the
    reactions' log aggregate; None where there are no hats."""

    substrates: tuple[tuple[float, sparse.csr_matrix, np.ndarray | None], ...]
    aggregate: np.ndarray | None
    has_substrate: np.ndarray  # per reaction

    @property
    def names(self) -> list[str]:
        """The features' names, in their order."""
        names = [f"log_c hat {k} (|s|={s:g})" for s, _, knots in self.substrates for k in range(1, _n_hats(knots) + 1)]
        return names + [f"log_agg hat {k}" for k in range(1, _n_hats(self.aggregate) + 1)]


def _n_hats(knots: np.ndarray | None) -> int:
    return 0 if knots is None else len(knots) - 1


def _log_aggregate(aggregate: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(np.abs(aggregate), 1e-12))


def shape_knots(conc: np.ndarray, aggregate: np.ndarray, network: Network, n_knots: int) -> ShapeKnots:
    """The knots of :func:`shape_features`: ``n_knots`` quantiles of the log concentrations of each |s| class's
    substrates and of the log aggregate of the reactions that have substrates, over these states."""
    logc, log_agg = log_conc(conc), _log_aggregate(aggregate)
    classes = tuple((s, incidence, hat_knots(logc, n_knots, np.broadcast_to(incidence.getnnz(axis=1) > 0,
                                                                            logc.shape)))
                    for s, incidence in substrate_incidence(network))
    has_sub = np.bincount(network.edges.rxn_sub, minlength=network.n_reactions) > 0
    return ShapeKnots(classes, hat_knots(log_agg, n_knots, np.broadcast_to(has_sub, log_agg.shape)), has_sub)


FEATURE_FRAMES = 128  # frames per block of shape features: small temporaries, work for each thread
THREADED_BLOCKS = 8  # blocks from which the threads pay off


def shape_features(conc: np.ndarray, aggregate: np.ndarray, network: Network, n_knots: int,
                   knots: ShapeKnots | None = None) -> ShapeFeatures:
    """Shared features of each reaction: per coefficient value |s|, sums over its substrate edges of
    hat functions of log c_e (MLP_sub shape errors); and hat functions of its log aggregate (link errors).

    The hats sit on ``knots`` when given (:func:`shape_knots` of the data, for the features of other states),
    else on the knots of ``conc`` and ``aggregate`` themselves. Frames are filled in blocks of FEATURE_FRAMES, on
    as many threads as the budget allows (:func:`sysid.threads.allowed`) when there are at least THREADED_BLOCKS
    of them (a record, not the few states of one step): each frame's features are its own."""
    knots = shape_knots(conc, aggregate, network, n_knots) if knots is None else knots
    values = np.empty((conc.shape[0], network.n_reactions, len(knots.names)))
    blocks = [slice(lo, lo + FEATURE_FRAMES) for lo in range(0, conc.shape[0], FEATURE_FRAMES)]
    fill = partial(_fill_features, conc, aggregate, knots, values)
    workers = allowed() if len(blocks) >= THREADED_BLOCKS else 1
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(fill, blocks))
    else:
        for block in blocks:
            fill(block)
    return ShapeFeatures(values, knots.names)


def _fill_features(conc: np.ndarray, aggregate: np.ndarray, knots: ShapeKnots, out: np.ndarray, block: slice
                   ) -> None:
    """:func:`shape_features` of the frames ``block``, written into those rows of ``out``: each |s| class's
    hats summed over its substrate edges into its columns (no concatenated copy), then the aggregate's."""
    logc = log_conc(conc[block])
    values = out[block]
    k = 0
    for _, incidence, class_knots in knots.substrates:
        hats = hat_values(logc, class_knots)  # (T, N, K)
        t, n, n_hats = hats.shape
        by_metabolite = np.ascontiguousarray(hats.transpose(0, 2, 1)).reshape(t * n_hats, n)
        by_reaction = (by_metabolite @ incidence).reshape(t, n_hats, values.shape[1])
        values[..., k : k + n_hats] = by_reaction.transpose(0, 2, 1)
        k += n_hats
    agg_hats = hat_values(_log_aggregate(aggregate[block]), knots.aggregate)
    np.multiply(agg_hats, knots.has_substrate[None, :, None], out=values[..., k:])


SHAPE_FEATURE_BYTES = 2 * 2**30  # per-frame shape features above this size are left out (genome-scale networks)


def affordable_knots(n_frames: int, network: Network, n_knots: int) -> int:
    """``n_knots``, or 0 when the (frames, reactions, features) array of shape features would exceed
    SHAPE_FEATURE_BYTES: one block of n_knots - 1 hats per distinct |s| plus one for the aggregate."""
    n_feat = (len(np.unique(network.edges.sto_sub)) + 1) * max(n_knots - 1, 0)
    return n_knots if (n_frames + 1) * network.n_reactions * n_feat * 8 <= SHAPE_FEATURE_BYTES else 0


@dataclass(frozen=True, eq=False)
class Design:
    """Sparse windowed design; rows are the valid (metabolite, window) pairs in metabolite-major order.

    Columns: slope of each metabolite, offset of each metabolite, one scale
    correction per reaction, the shared shape corrections, then (optionally) one
    additive mass-action term per reaction.
    """

    X: sparse.csr_matrix
    y: np.ndarray
    rows_met: np.ndarray  # metabolite of each row
    rows_win: np.ndarray  # window of each row
    n_met: int
    n_rxn: int
    n_shape: int

    @property
    def slope_cols(self) -> slice:
        return slice(0, self.n_met)

    @property
    def offset_cols(self) -> slice:
        return slice(self.n_met, 2 * self.n_met)

    @property
    def reaction_cols(self) -> slice:
        return slice(2 * self.n_met, 2 * self.n_met + self.n_rxn)

    @property
    def shape_cols(self) -> slice:
        start = 2 * self.n_met + self.n_rxn
        return slice(start, start + self.n_shape)

    @property
    def nuisance_cols(self) -> slice:
        """Everything but the per-metabolite slope and offset."""
        return slice(2 * self.n_met, self.X.shape[1])


def mass_action_monomials(conc: np.ndarray, substrates: np.ndarray) -> np.ndarray:
    """prod_k c_k^|s_kj| per frame and reaction: the library's candidate rate law."""
    logc = np.log(np.maximum(conc, 1e-300))
    zero = log_monomials((conc <= 0).astype(np.float64), (substrates > 0).astype(np.float64))
    return np.exp(log_monomials(logc, substrates)) * (zero == 0)


def _reaction_block(S: np.ndarray, per_window: np.ndarray, row_of: np.ndarray, n_rows: int) -> sparse.csr_matrix:
    """Columns j with entry S_ij * per_window[w, j] on row (i, w)."""
    si, sj = np.nonzero(S)
    rr = row_of[si].ravel()
    rc = np.repeat(sj, per_window.shape[0])
    rv = (S[si, sj][:, None] * per_window[:, sj].T).ravel()
    ok = rr >= 0
    return sparse.csr_matrix((rv[ok], (rr[ok], rc[ok])), shape=(n_rows, S.shape[1]))


def _dense_block(values: np.ndarray) -> sparse.csr_matrix:
    """A dense (rows, columns) block as CSR with every entry stored (zeros too): no scan for the nonzeros."""
    n_rows, n_cols = values.shape
    if n_cols == 0:
        return sparse.csr_matrix(values.shape)
    indices, indptr = np.tile(np.arange(n_cols), n_rows), np.arange(0, values.size + 1, n_cols)
    return sparse.csr_matrix((values.ravel(), indices, indptr), shape=values.shape)


def window_runs(starts: np.ndarray, window: int) -> list[tuple[int, int]]:
    """(first, end) index ranges of windows that follow each other back to back (start + window = next start)."""
    breaks = np.flatnonzero(np.diff(starts) != window) + 1
    bounds = [0, *breaks.tolist(), len(starts)]
    return [(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True) if hi > lo]


def window_products(rates: np.ndarray, values: np.ndarray, starts: np.ndarray, window: int) -> np.ndarray:
    """sum over frames t0..t0+W-1 of each window of rates[t, j] * values[t, j, f]: (n_windows, n_rxn, n_features).

    The einsum of the gathered frames (no (frames, rxns, features) temporary), on views where windows follow
    each other back to back: their frames are one contiguous range, reshaped, with the gathered copy's layout,
    so the sums are the same numbers without copying the features. Reading the features is what costs (265 MB
    on the default regime), so the windows are split between as many threads as the budget allows
    (:func:`sysid.threads.allowed`) when there are at least THREADED_WINDOWS: each window's sums are its own,
    the same numbers on any number of threads."""
    out = np.empty((len(starts), *values.shape[1:]))
    workers = allowed() if len(starts) >= THREADED_WINDOWS else 1
    pieces = [(lo + k * (hi - lo) // workers, lo + (k + 1) * (hi - lo) // workers)
              for lo, hi in window_runs(starts, window) for k in range(workers)]
    fill = partial(_fill_window_products, rates, values, starts, window, out)
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(fill, [piece for piece in pieces if piece[1] > piece[0]]))
    else:
        for piece in pieces:
            fill(piece)
    return out


THREADED_WINDOWS = 16  # windows from which window_products splits them between threads


def _fill_window_products(rates: np.ndarray, values: np.ndarray, starts: np.ndarray, window: int, out: np.ndarray,
                          piece: tuple[int, int]) -> None:
    """:func:`window_products` of the back-to-back windows lo..hi-1 (``piece``), written into out[lo:hi]."""
    lo, hi = piece
    first, n = int(starts[lo]), hi - lo
    contiguous = rates.flags.c_contiguous and values.flags.c_contiguous
    if not contiguous or first < 0 or first + n * window > len(rates):  # gathered (indexing raises as before)
        frames = window_frames(starts[lo:hi], window)
        rates_w, values_w = rates[frames], values[frames]
    else:
        rates_w = rates[first : first + n * window].reshape(n, window, *rates.shape[1:])
        values_w = values[first : first + n * window].reshape(n, window, *values.shape[1:])
    out[lo:hi] = np.einsum("wtj,wtjf->wjf", rates_w, values_w)


def build_design(
    target: np.ndarray,
    conc: np.ndarray,
    rates: np.ndarray,
    features: ShapeFeatures,
    S: np.ndarray,
    starts: np.ndarray,
    valid: np.ndarray,
    window: int,
    dt: float,
    monomials: np.ndarray | None = None,
    ramp: int = 1,
    trapezoid: bool = False,
) -> Design:
    """Assemble the windowed regressors from per-frame rates, features and (optionally) monomials.

    ``target`` and ``valid`` are (n_windows, n_metabolites).
    """
    n_met, n_rxn = S.shape
    n_feat = features.values.shape[-1]
    row_of = -np.ones((n_met, len(starts)), np.int64)
    rows_met, rows_win = np.nonzero(valid.T)
    n_rows = len(rows_met)
    row_of[rows_met, rows_win] = np.arange(n_rows)
    c_win = dt * window_sum(conc, starts, window, ramp, trapezoid)  # (n_win, n_met)
    n_win = len(starts)
    f_win = np.zeros((n_win, n_rxn, n_feat))
    for a in range(ramp):  # windows shifted by a frames
        f_win += (dt / ramp) * window_products(rates, features.values, starts + a, window)
        if trapezoid:
            end, begin = starts + a + window, starts + a
            f_win += (0.5 * dt / ramp) * (rates[end][..., None] * features.values[end]
                                          - rates[begin][..., None] * features.values[begin])
    # sum_j S_ij f_win[w, j, f] as one matrix product: (n_met, n_rxn) @ (n_rxn, n_win * n_feat)
    shape_block = (S @ f_win.transpose(1, 0, 2).reshape(n_rxn, -1)).reshape(n_met, n_win, n_feat)
    idx = np.arange(n_rows)
    blocks = [
        sparse.csr_matrix((c_win[rows_win, rows_met], (idx, rows_met)), shape=(n_rows, n_met)),
        sparse.csr_matrix((np.full(n_rows, window * dt), (idx, rows_met)), shape=(n_rows, n_met)),
        _reaction_block(S, dt * window_sum(rates, starts, window, ramp, trapezoid), row_of, n_rows),
        _dense_block(shape_block[rows_met, rows_win]),
    ]
    if monomials is not None:
        blocks.append(_reaction_block(S, dt * window_sum(monomials, starts, window, ramp, trapezoid), row_of, n_rows))
    X = sparse.hstack(blocks, format="csr")
    return Design(X, target.T[rows_met, rows_win], rows_met, rows_win, n_met, n_rxn, n_feat)
