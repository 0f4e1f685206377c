"""Random reaction networks of the default regime: autocatalytic cycles plus random mass-conserving reactions."""

from __future__ import annotations

import numpy as np

from sysid.config import SimulationConfig
from sysid.network import Network


def random_network(cfg: SimulationConfig, rng: np.random.Generator) -> Network:
    """Autocatalytic cycles plus random mass-conserving reactions (docs/reference.md, the simulator)."""
    n_met, n_rxn = cfg.n_metabolites, cfg.n_reactions
    S = np.zeros((n_met, n_rxn), np.float32)
    substrates = np.zeros_like(S)
    n_cycle_rxn = int(round(cfg.cycle_fraction * n_rxn)) if cfg.cycle_length >= 2 else 0
    n_cycles = n_cycle_rxn // cfg.cycle_length
    unused = list(rng.permutation(n_met))
    j = 0
    for _ in range(n_cycles):
        if len(unused) >= cfg.cycle_length:
            members, unused = unused[: cfg.cycle_length], unused[cfg.cycle_length :]
        else:
            members = list(rng.choice(n_met, size=cfg.cycle_length, replace=False))
        for a, b in zip(members, members[1:] + members[:1], strict=True):
            # a + b -> 2b: a is food (-1), b the catalyst (+1), both substrates.
            S[a, j], S[b, j] = -1.0, 1.0
            substrates[a, j] = substrates[b, j] = 1.0
            j += 1
    while j < n_rxn:
        _random_reaction(S, substrates, j, cfg.max_metabolites_per_reaction, rng)
        j += 1
    return Network(S=S, substrates=substrates)


def _random_reaction(S, substrates, j, max_substrates, rng) -> None:
    n_met = S.shape[0]
    if n_met < 2:
        return
    n_sub = int(rng.integers(1, min(max_substrates, n_met - 1) + 1))
    order = rng.permutation(n_met)
    subs, rest = order[:n_sub], order[n_sub:]
    coef = rng.integers(1, 3, size=n_sub).astype(np.float32)
    mass = float(coef.sum())
    n_prod = int(rng.integers(1, min(len(rest), int(mass)) + 1))
    prods = rest[:n_prod]
    # Split the consumed mass into positive integer product coefficients.
    cuts: np.ndarray | list[int] = []
    if n_prod > 1:
        cuts = np.sort(rng.choice(np.arange(1, int(mass)), size=n_prod - 1, replace=False))
    prod_coef = np.diff(np.concatenate([[0], cuts, [int(mass)]])).astype(np.float32)
    S[subs, j] = -coef
    substrates[subs, j] = coef
    S[prods, j] = prod_coef
