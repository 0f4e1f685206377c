import numpy as np
import pytest

from sysid.config import SimulationConfig
from sysid.errors import SysidInputError
from sysid.network import Network
from sysid.simulation.random_network import random_network


@pytest.mark.parametrize("cycle_fraction, n_met, n_rxn", [(1.0, 100, 256), (0.5, 20, 40), (0.0, 10, 25), (1.0, 7, 9)])
def test_every_reaction_conserves_mass(cycle_fraction, n_met, n_rxn):
    cfg = SimulationConfig(n_metabolites=n_met, n_reactions=n_rxn, cycle_fraction=cycle_fraction)
    net = random_network(cfg, np.random.default_rng(1))
    assert net.S.shape == (n_met, n_rxn)
    np.testing.assert_array_equal(net.S.sum(axis=0), 0.0)
    assert net.left_null_space().shape[0] >= 1  # total mass is conserved
    np.testing.assert_allclose(net.left_null_space() @ net.S, 0.0, atol=1e-9)


def test_autocatalytic_cycles_have_the_documented_form():
    net = random_network(SimulationConfig(n_metabolites=9, n_reactions=9), np.random.default_rng(0))
    for j in range(9):
        food, cat = np.nonzero(net.S[:, j] == -1)[0], np.nonzero(net.S[:, j] == 1)[0]
        assert len(food) == len(cat) == 1
        assert set(np.nonzero(net.substrates[:, j])[0]) == {food[0], cat[0]}
    # the first cycles use each metabolite once
    assert sorted(np.nonzero(net.S[:, :9] == -1)[0]) == list(range(9))


def test_edges_round_trip():
    net = random_network(SimulationConfig(n_metabolites=15, n_reactions=30, cycle_fraction=0.5),
                         np.random.default_rng(2))
    e = net.edges
    back = Network.from_edges(15, 30, (e.met_sub, e.rxn_sub, e.sto_sub), (e.met_all, e.rxn_all, e.sto_all))
    np.testing.assert_array_equal(back.S, net.S)
    np.testing.assert_array_equal(back.substrates, net.substrates)
    np.testing.assert_array_equal(e.met_all[e.sub_to_all], e.met_sub)
    np.testing.assert_array_equal(e.rxn_all[e.sub_to_all], e.rxn_sub)
    assert np.all(e.sto_all[e.prod_indices] > 0)


def test_substrate_with_zero_net_coefficient_is_rejected():
    S = np.zeros((3, 1), np.float32)
    sub = np.zeros_like(S)
    sub[0, 0] = 1.0
    with pytest.raises(SysidInputError, match="net stoichiometry is 0"):
        _ = Network(S=S, substrates=sub).edges
