import numpy as np
import pytest

from sysid.simulation.euler import mass_action_rates, metabolite_types, simulate
from tests.helpers import small_config


def test_shapes_dtypes_and_determinism(small_sim):
    again = simulate(small_config().simulation)
    n = small_config().simulation
    assert small_sim.concentrations.shape == (n.n_frames + 1, n.n_metabolites)
    assert small_sim.concentrations.dtype == np.float32 and small_sim.dcdt.dtype == np.float32
    np.testing.assert_array_equal(small_sim.concentrations, again.concentrations)
    other = simulate(small_config(seed=7).simulation)
    assert not np.array_equal(small_sim.concentrations, other.concentrations)


def test_euler_relation_holds_exactly(small_sim):
    x, y = small_sim.concentrations, small_sim.dcdt
    step = np.maximum(x[:-1] + np.float32(small_sim.delta_t) * y[:-1], np.float32(0))
    np.testing.assert_array_equal(x[1:], step)


def test_y_is_the_exact_derivative(small_sim):
    c = small_sim.concentrations.astype(np.float64)
    t = small_sim.truth
    lam, cb = t.lambdas[t.types], t.baselines[t.types]
    v = mass_action_rates(c, 10.0 ** t.log_k.astype(np.float64), small_sim.network.substrates.astype(np.float64))
    expected = -lam * (c - cb) + v @ small_sim.network.S.T.astype(np.float64)
    np.testing.assert_allclose(small_sim.dcdt, expected, rtol=1e-5, atol=1e-6)


def test_noisy_y_is_the_finite_difference():
    sim = simulate(small_config(n_frames=200).simulation, noise_level=0.01)
    x, y = sim.concentrations, sim.dcdt
    unclamped = (x[1:] > 0) & (x[:-1] > 0)
    fd = (x[1:] - x[:-1]) / np.float32(sim.delta_t)
    np.testing.assert_allclose(y[:-1][unclamped], fd[unclamped], rtol=1e-6)
    assert np.all(x >= 0)


@pytest.mark.parametrize("n, k", [(100, 2), (10, 3), (7, 1), (9, 4)])
def test_types_are_contiguous_blocks(n, k):
    types = metabolite_types(n, k)
    assert types[0] == 0 and types[-1] == k - 1
    assert np.all(np.diff(types) >= 0) and len(np.unique(types)) == k
    assert np.bincount(types)[:-1].tolist() == [n // k] * (k - 1)


def test_default_regime_scales():
    sim = simulate(small_config(n_metabolites=100, n_reactions=256, n_frames=300).simulation)
    h = -sim.truth.lambdas[sim.truth.types] * (sim.concentrations - sim.truth.baselines[sim.truth.types])
    ratio = np.mean(np.abs(sim.dcdt)) / np.mean(np.abs(h))
    assert 50 < ratio < 2000  # homeostasis is 100-1000x weaker than the reactions


def test_divergent_simulation_is_a_clear_error():
    from sysid.errors import SysidInputError

    with pytest.raises(SysidInputError, match="diverged"):
        simulate(small_config(log_k_min=1.0, log_k_max=2.0, n_frames=200).simulation)
