"""The frozen model's shape corrections at any states, for the fits that simulate it (the output error).

Stage 1's shared features phi (:func:`sysid.stage1.design.shape_features`: hat
functions of each substrate's log concentration and of each reaction's log
aggregate) are evaluated at simulated states on the knots of the record, so
that a corrected rate is v_j(c) exp(sum_f gamma_f phi_jf(c)), and the
derivative of phi gamma in c follows the substrates' log concentrations.
"""

from __future__ import annotations

import numpy as np

from sysid.io.dataset import Dataset
from sysid.model import MetabolismModel
from sysid.stage1.design import hat_basis_slopes, log_conc, log_conc_slope, shape_features, shape_knots
from sysid.stage1.shooting import rates_and_jacobian, substrate_colouring


class ShapeBasis:
    """Stage 1's shared MLP_sub shape features phi (:func:`sysid.stage1.design.shape_features`) at any states, on
    the knots of the record: the frozen rates corrected by them are v_j(c) exp(sum_f gamma_f phi_jf(c))."""

    def __init__(self, data: Dataset, model: MetabolismModel, knots: int):
        record = data.concentrations.astype(np.float64)
        colour = substrate_colouring(data.network.substrates)
        self.network, self.knots = data.network, knots
        self.placed = shape_knots(record, rates_and_jacobian(model, record, colour, False)[2], data.network, knots)
        self.n = len(self.placed.names)
        # per coefficient value |s| (the features' order): substrate edges per (metabolite, reaction) and knots
        self._classes = [(incidence.toarray(), class_knots)
                         for _, incidence, class_knots in self.placed.substrates]
        self.n_substrate = sum(0 if k is None else len(k) - 1 for _, k in self._classes)  # the rest: aggregate

    def __call__(self, x: np.ndarray, aggregate: np.ndarray) -> np.ndarray:
        """Features (B, J, F) of states x (B, M) with the frozen model's aggregates there (B, J)."""
        return shape_features(x, aggregate, self.network, self.knots, self.placed).values

    def log_factor_slopes(self, x: np.ndarray, shape: np.ndarray, pairs: tuple[np.ndarray, np.ndarray]
                          ) -> np.ndarray:
        """d (phi_j gamma) / d c_m at states x for the substrate ``pairs`` (reaction j, metabolite m)
        (:func:`sysid.stage1.shooting.substrate_pairs`): (B, pairs), through the substrates' log concentrations
        (zero elsewhere; the features of the log aggregate are left out: their derivative would need the
        aggregate's)."""
        rxn, met = pairs
        out = np.zeros((len(x), len(rxn)))
        first = 0
        log_x, dlog_x = log_conc(x), log_conc_slope(x)
        for count, knots in self._classes:
            slopes = hat_basis_slopes(log_x, knots)  # (B, M, hats)
            n_hats = slopes.shape[-1]
            per_metabolite = slopes @ shape[first : first + n_hats] * dlog_x  # (B, M)
            out += count.T[rxn, met][None] * per_metabolite[:, met]
            first += n_hats
        return out
