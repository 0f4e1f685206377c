import logging

import pytest

from sysid.config import Config, config_from_dict, load_config
from sysid.errors import SysidInputError


def test_default_is_the_seed_regime():
    cfg = load_config(None)
    assert cfg.simulation.n_metabolites == 100 and cfg.simulation.n_reactions == 256
    assert cfg.simulation.homeostatic_lambda_per_type == (0.001, 0.002)
    assert cfg.simulation.homeostatic_baseline_per_type == (4.0, 6.0)
    assert cfg.training.cluster_distance_threshold == 0.1


def test_shipped_default_yaml_matches_the_defaults():
    assert load_config("configs/default.yaml") == Config()


def test_unknown_keys_warn_and_are_ignored(caplog):
    with caplog.at_level(logging.WARNING):
        cfg = config_from_dict({"simulation": {"n_metabolites": 10, "n_metabolite_types": 1,
                                               "homeostatic_lambda_per_type": [0.001],
                                               "homeostatic_baseline_per_type": [4.0], "connectivity": 3},
                                "plotting": {"x": 1}})
    assert cfg.simulation.n_metabolites == 10
    assert "connectivity" in caplog.text and "plotting" in caplog.text


def test_yaml_scientific_strings_are_floats(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("training:\n  learning_rate_node_homeostasis: 1E-3\n")
    assert load_config(path).training.learning_rate_node_homeostasis == pytest.approx(1e-3)


@pytest.mark.parametrize(
    "data, words",
    [
        ({"simulation": {"homeostatic_lambda_per_type": [0.1]}}, "n_metabolite_types"),
        ({"simulation": {"delta_t": -0.1}}, "delta_t"),
        ({"simulation": {"n_metabolites": "many"}}, "n_metabolites"),
        ({"graph_model": {"aggr_type": "max"}}, "aggr_type"),
        ({"training": {"batch_size": 2.5}}, "batch_size"),
        ({"simulation": [1, 2]}, "simulation"),
    ],
)
def test_bad_values_raise_one_clear_line(data, words):
    with pytest.raises(SysidInputError) as err:
        config_from_dict(data)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(SysidInputError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("simulation: [unclosed\n")
    with pytest.raises(SysidInputError, match="not valid YAML"):
        load_config(bad)
