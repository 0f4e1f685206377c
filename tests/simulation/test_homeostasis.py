"""Homeostasis forms of the simulator: known values, bad parameters, the truth file."""

from pathlib import Path

import numpy as np
import pytest

from sysid.config import config_from_dict, load_config
from sysid.errors import SysidInputError
from sysid.io.dataset import load_truth, write_dataset
from sysid.simulation.euler import mass_action_rates, simulate
from sysid.simulation.homeostasis import HomeostasisLaw
from tests.helpers import assert_one_line_error, small_config, sysid

ROOT = Path(__file__).resolve().parents[2]
SATURATING = {"homeostasis_form": "saturating", "homeostatic_scale_per_type": (2.0, 3.0)}
HILL = {"homeostasis_form": "hill", "homeostatic_vmax_per_type": (0.008, 0.012),
        "homeostatic_scale_per_type": (4.0, 6.0), "homeostatic_hill_per_type": (2.0, 3.0),
        "homeostatic_decay_per_type": (0.001, 0.001)}


def _law(**sim) -> HomeostasisLaw:
    from sysid.simulation.euler import homeostasis_law

    return homeostasis_law(small_config(**sim).simulation)


def test_saturating_has_slope_minus_lambda_at_the_set_point_and_levels_off():
    law = _law(**SATURATING)
    for t, (lam, cb, k) in enumerate([(0.001, 4.0, 2.0), (0.002, 6.0, 3.0)]):
        h = 1e-6
        slope = (law.curve(t, cb + h) - law.curve(t, cb - h)) / (2 * h)
        assert slope == pytest.approx(-lam, rel=1e-6)
        assert law.curve(t, cb) == 0.0
        assert law.curve(t, 1e3) == pytest.approx(-lam * k, rel=1e-9)
    lam, c = law.linearisation()
    np.testing.assert_allclose(lam, [0.001, 0.002])
    np.testing.assert_allclose(c, [4.0, 6.0])


def test_hill_set_points_and_slopes_are_known():
    law = _law(**HILL)
    # v / (1 + (c/K)^n) = d c at c = K when v = 2 d K: both types are built that way
    lam, c = law.linearisation()
    np.testing.assert_allclose(c, [4.0, 6.0], rtol=1e-9)
    # slope -v n / (4 K) - d at c = K
    np.testing.assert_allclose(lam, [0.008 * 2 / 16 + 0.001, 0.012 * 3 / 24 + 0.001], rtol=1e-9)
    assert law.curve(0, 0.0) == pytest.approx(0.008)


def test_linear_form_is_the_old_law_and_nonlinear_data_follow_their_law():
    for sim in ({}, HILL):
        out = simulate(small_config(n_frames=50, **sim).simulation)
        c = out.concentrations.astype(np.float64)
        v = mass_action_rates(c, 10.0 ** out.truth.log_k.astype(np.float64), out.network.substrates.astype(float))
        reactions = v @ out.network.S.T.astype(np.float64)
        if not sim:
            t = out.truth
            np.testing.assert_array_equal(out.truth.rates(c), -t.lambdas[t.types] * (c - t.baselines[t.types]))
        np.testing.assert_allclose(out.dcdt, out.truth.rates(c) + reactions, rtol=1e-5, atol=1e-6)


def test_truth_file_round_trip(tmp_path):
    out = simulate(small_config(n_frames=20, **SATURATING).simulation)
    write_dataset(out, tmp_path)
    truth = load_truth(tmp_path)
    assert truth.form == "saturating"
    c = np.linspace(0, 20, 7)
    for t in range(2):
        np.testing.assert_array_equal(truth.curve(t, c), out.truth.curve(t, c))


@pytest.mark.parametrize("sim, words", [
    ({"homeostasis_form": "sigmoid"}, ["homeostasis_form", "'sigmoid'", "linear, saturating, hill"]),
    ({"homeostasis_form": "saturating"}, ["homeostatic_scale_per_type", "missing", "'saturating'"]),
    ({**HILL, "homeostatic_decay_per_type": [0.001]}, ["homeostatic_decay_per_type", "has 1 values"]),
    ({**HILL, "homeostatic_scale_per_type": [4.0, -1.0]}, ["homeostatic_scale_per_type", "<= 0"]),
    ({**HILL, "homeostatic_hill_per_type": [2.0, 0.0]}, ["homeostatic_hill_per_type", "<= 0"]),
    ({**HILL, "homeostatic_vmax_per_type": [-0.1, 0.1]}, ["homeostatic_vmax_per_type", "negative"]),
    ({**HILL, "homeostatic_decay_per_type": [0.001, -1e-3]}, ["homeostatic_decay_per_type", "negative"]),
])
def test_bad_homeostasis_parameters_raise_one_line(sim, words, tmp_path):
    with pytest.raises(SysidInputError) as err:
        config_from_dict({"simulation": sim})
    assert "\n" not in str(err.value) and all(w in str(err.value) for w in words)
    text = "simulation:\n" + "".join(f"  {k}: {list(v) if isinstance(v, tuple) else v}\n" for k, v in sim.items())
    (tmp_path / "c.yaml").write_text(text)
    proc = sysid("simulate", "--config", tmp_path / "c.yaml", "--out", tmp_path / "o")
    assert_one_line_error(proc, *words)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("name", ["saturating", "hill"])
def test_documented_defaults_are_weak_like_the_default_regime(name):
    """The example regimes' regulation is about 1e-3 of the reactions, like the default's."""
    cfg = load_config(ROOT / "examples" / "nonlinear" / f"{name}.yaml")
    sims = {k: simulate(c.replace("simulation", n_frames=400, n_metabolites=30, n_reactions=60).simulation)
            for k, c in (("default", load_config(None)), (name, cfg))}
    ratio = {}
    for k, out in sims.items():
        h = out.truth.rates(out.concentrations.astype(np.float64))
        ratio[k] = np.sqrt(np.mean(h**2)) / np.sqrt(np.mean((out.dcdt - h) ** 2))
    assert 1e-4 < ratio[name] < 1e-2
    assert 0.2 < ratio[name] / ratio["default"] < 5.0
