"""Second-order bias of the frozen model's rates at noisy recorded states (errors in variables).

Evaluated at a recorded state c + e (noise e with sd sigma_k per metabolite), a
curved rate law is biased:

    E[v_j(c + e)] = v_j(c) + 1/2 sum_k sigma_k^2 d2 v_j / dc_k^2 + O(sigma^4).

Noise averages out over a window but this bias does not: it has one sign along
the trajectory and accumulates over the window like the homeostatic term, so
it lands mostly in the offsets (default regime at absolute noise 0.02, seed 19:
the estimated bias has a median size of 6% of the weakly regulated type's
offset and correlates 0.57 / 0.70 with the offsets' errors of the two types).

The correction subtracts it from the rates. With a colouring of the metabolites
in which no two substrates of one reaction share a colour
(:func:`sysid.stage1.shooting.substrate_colouring`), the second difference of
the rates along u = sigma * 1[colour],

    v_j(c + u) + v_j(c - u) - 2 v_j(c),

holds no mixed derivatives: it is sum_k sigma_k^2 d2 v_j / dc_k^2 over that
colour's substrates of reaction j, to fourth order. Summed over the colours
that is the whole bias (times two), from two evaluations of the frozen model per
colour. The curvature is taken at the noisy states (the error of that is of the
order of the neglected terms). Only frozen models whose rates depend on their
substrates alone qualify (MetabolismGraph models; an SBML law may read modifiers).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sysid.model import MetabolismModel
from sysid.network import Network
from sysid.stage1.residuals import FrozenEvaluation, evaluate_frozen
from sysid.stage1.shooting import substrate_colouring


def rate_bias(model: MetabolismModel, conc: np.ndarray, noise_sd: np.ndarray, network: Network,
              centre: np.ndarray | None = None) -> np.ndarray:
    """(frames, reactions): 1/2 sum_k sigma_k^2 d2 v_j / dc_k^2 at the recorded states (``centre``: the rates
    there, when already evaluated)."""
    colour = substrate_colouring(network.substrates)
    centre = evaluate_frozen(model, conc).rates if centre is None else centre
    total = np.zeros_like(centre)
    for k in range(int(colour.max()) + 1):
        step = np.where(colour == k, noise_sd, 0.0)
        up = evaluate_frozen(model, conc + step).rates
        down = evaluate_frozen(model, np.maximum(conc - step, 0.0)).rates
        total += up + down - 2.0 * centre
    return 0.5 * total


def debiased(frozen: FrozenEvaluation, model: MetabolismModel, conc: np.ndarray, noise_sd: np.ndarray,
             network: Network) -> FrozenEvaluation:
    """``frozen`` with the rates' second-order noise bias taken out of the rates and the reaction part."""
    bias = rate_bias(model, np.asarray(conc, np.float64), noise_sd, network, frozen.rates)
    return dataclasses.replace(frozen, rates=frozen.rates - bias,
                               reaction=frozen.reaction - bias @ network.S.astype(np.float64).T)
