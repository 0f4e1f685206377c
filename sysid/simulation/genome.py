"""Ground truth on a real network topology: synthetic scaled mass action plus homeostasis (docs/genome.md).

    dc_i/dt = -lambda_{type(i)} (c_i - cb_{type(i)}) + sum_j S_ij v_j,    v_j = k_j prod_s (c_s / c_ref)^|s_sj|

log10 k_j is uniform in [log_k_min, log_k_max] whatever the reaction's order
(the sum of its substrate coefficients), so every reaction runs at about k_j
near c = c_ref: plain mass action with such k overflows on genome-scale
networks, where orders reach 9. The same rate is plain mass action
k'_j prod c_s^|s| with k'_j = k_j c_ref^(-order_j); the truth stores log10 k'_j,
so the frozen model from the truth and the rate-constant metrics need nothing new.
Everything runs on sparse matrices: one Euler step costs O(edges).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from sysid.config import Config
from sysid.errors import SysidInputError
from sysid.network import Network
from sysid.simulation.euler import _add_measurement_noise, euler_integrate, metabolite_types
from sysid.simulation.topology import Topology, read_topology
from sysid.truth import Simulation, Truth

log = logging.getLogger(__name__)
LOG_FLOOR = 1e-300


@dataclass(frozen=True, eq=False)
class GenomeNetwork:
    """A network built from a topology, with the ids of its species and reactions and each reaction's role."""

    network: Network
    species_ids: tuple[str, ...]
    reaction_ids: tuple[str, ...]
    roles: tuple[str, ...]  # "internal", "inflow" or "outflow" per reaction


def build_network(topo: Topology, exchanges: str = "drop", max_order: float = np.inf) -> GenomeNetwork:
    """Internal reactions (and, with ``exchanges='keep'``, boundary ones as inflow or outflow); unused species out.

    Reactions of order (sum of substrate coefficients) above ``max_order`` are dropped: lumped steps such as
    100 monomers -> polymer, whose rate (c / c_ref)^100 is no kinetics.

    A kept boundary reaction that makes a species, or can take it up (:mod:`~sysid.simulation.topology`),
    becomes a constant inflow ``-> A``; the others a first-order outflow ``A ->``.
    """
    net = (topo.products - topo.reactants).tocsc()
    reactants = topo.reactants.tocsc()
    keep = topo.internal.copy()
    roles = np.full(len(keep), "internal", dtype=object)
    if exchanges == "keep":
        makes = np.diff(topo.products.indptr) > 0
        inflow = topo.boundary & (makes | topo.uptake)
        keep |= topo.boundary
        roles[inflow] = "inflow"
        roles[topo.boundary & ~inflow] = "outflow"
        flip = sparse.diags(np.where(topo.boundary & topo.uptake & ~makes, -1.0, 1.0))
        net = (net @ flip).tocsc()  # an uptake written as A -> runs as -> A
        reactants = (reactants @ sparse.diags(np.where(inflow, 0.0, 1.0))).tocsc()
    # substrates: reactant coefficients where the net coefficient is not 0 (a catalyst on both sides is no substrate)
    substrates = reactants.multiply(net != 0).tocsc()
    order = np.asarray(substrates.sum(axis=0)).ravel()
    too_high = keep & (order > max_order)
    if too_high.any():
        log.warning("%d reactions of order above %g dropped (e.g. %s)", too_high.sum(), max_order,
                    topo.reaction_ids[int(np.argmax(too_high))])
    columns = np.nonzero(keep & ~too_high & (np.diff(net.indptr) > 0))[0]
    net, substrates = net[:, columns], substrates[:, columns]
    used = np.nonzero(np.diff(net.tocsr().indptr) > 0)[0]
    if len(used) == 0 or len(columns) == 0:
        raise SysidInputError(f"{topo.source}: no species are left once boundary and biomass reactions are "
                              "dropped: use a network with internal reactions or set network.exchanges: keep")
    net, substrates = net[used], substrates[used]
    log.info("network %s: %d species x %d reactions kept (of %d x %d)", topo.source, len(used), len(columns),
             *topo.reactants.shape)
    network = Network(S=net.toarray().astype(np.float32), substrates=substrates.toarray().astype(np.float32))
    return GenomeNetwork(network, tuple(topo.species_ids[i] for i in used),
                         tuple(topo.reaction_ids[j] for j in columns), tuple(roles[columns]))


def scaled_log_k(log_k: np.ndarray, substrates: sparse.spmatrix, reference: float) -> np.ndarray:
    """log10 k'_j = log10 k_j - order_j log10 c_ref: the plain mass-action constants of the scaled rates."""
    order = np.asarray(substrates.sum(axis=0)).ravel()
    return log_k - order * np.log10(reference)


def mass_action(S: sparse.csr_matrix, substrates_t: sparse.csr_matrix, k: np.ndarray):
    """v(c) = k prod c^|s| and its stoichiometric sum, on sparse matrices (substrates_t is (n_rxn, n_met))."""

    def reaction_part(c: np.ndarray) -> np.ndarray:
        return S @ (k * np.exp(substrates_t @ np.log(np.maximum(c, LOG_FLOOR))))

    return reaction_part


def simulate_network(source: str, cfg: Config, progress: Callable[[int], None] | None = None) -> Simulation:
    """Simulate the topology of ``source`` (an SBML file or ``cobra:NAME``) with the ``simulation`` keys."""
    sim, net_cfg = cfg.simulation, cfg.network
    genome = build_network(read_topology(source), net_cfg.exchanges, net_cfg.max_order)
    network = genome.network
    n_met, n_rxn = network.S.shape
    if sim.n_metabolite_types > n_met:
        raise SysidInputError(f"{source}: {n_met} species are left, fewer than simulation.n_metabolite_types "
                              f"({sim.n_metabolite_types}): use fewer types")
    rng = np.random.default_rng(sim.seed)
    substrates = sparse.csc_matrix(network.substrates.astype(np.float64))
    drawn = np.asarray(rng.uniform(sim.log_k_min, sim.log_k_max, size=n_rxn))
    log_k = scaled_log_k(drawn, substrates, net_cfg.reference_concentration)
    types = rng.permutation(metabolite_types(n_met, sim.n_metabolite_types))
    lambdas = np.asarray(sim.homeostatic_lambda_per_type, np.float64)
    baselines = np.asarray(sim.homeostatic_baseline_per_type, np.float64)
    lam, cb = lambdas[types], baselines[types]
    reaction_part = mass_action(sparse.csr_matrix(network.S.astype(np.float64)), substrates.T.tocsr(), 10.0**log_k)

    def rhs(c):
        return -lam * (c - cb) + reaction_part(c)

    x0 = np.asarray(rng.uniform(sim.concentration_min, sim.concentration_max, size=n_met))
    x, y = euler_integrate(rhs, x0, sim.n_frames, sim.delta_t, progress, net_cfg.max_concentration)
    _report_range(x)
    positions = rng.normal(0.0, 0.25, size=(n_met, 2)).astype(np.float32)
    noise = cfg.training.measurement_noise_level
    if noise > 0:
        x, y = _add_measurement_noise(x, noise, np.float32(sim.delta_t), np.random.default_rng(sim.seed + 1))
    truth = Truth(types=types, lambdas=lambdas, baselines=baselines, log_k=log_k.astype(np.float32))
    metadata = {"source": "network", "network": source, "species_ids": list(genome.species_ids),
                "reaction_ids": list(genome.reaction_ids), "reaction_roles": list(genome.roles),
                "reference_concentration": net_cfg.reference_concentration}
    return Simulation(x, y, positions, network, truth, float(sim.delta_t), metadata)


def _report_range(x: np.ndarray) -> None:
    zero = float(np.mean(x[-1] == 0))
    log.info("simulated concentrations: max %.3g, median at the end %.3g, %.1f%% of species at 0 at the end",
             float(x.max()), float(np.median(x[-1])), 100 * zero)
    if zero > 0:
        log.warning("%.1f%% of species end at 0 (their windows are masked in stage 1)", 100 * zero)
