"""Stage 1 with SBML frozen models, end to end: truth metrics in analysis.log, and the misfit warning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sysid.config import Config, SbmlConfig
from sysid.evaluation.metrics import species_stage1_metrics
from sysid.pipeline import fit_to_folder, perturb_to_file
from sysid.reports import read_analysis_log
from sysid.sbml.simulate import simulate_sbml, write_sbml_dataset
from sysid.stage1.result import HomeostasisFit
from sysid.truth import SpeciesTruth

WOLF = Path(__file__).resolve().parents[2] / "examples" / "sbml" / "BIOMD0000000206.xml"


@pytest.fixture(scope="module")
def wolf(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wolf")
    data = folder / "data"
    data.mkdir()
    write_sbml_dataset(simulate_sbml(WOLF, SbmlConfig(n_frames=600)), data)
    return folder, data


def test_rate_noise_fit_reports_the_truth_metrics(wolf):
    folder, data = wolf
    frozen = perturb_to_file(WOLF, folder / "rate.xml", rate_noise=0.1, param_noise=None, seed=1)
    fit_to_folder(data, frozen, folder / "fit_rate", Config())
    log = read_analysis_log(folder / "fit_rate" / "analysis.log")
    assert log["stage1_frozen_misfit"] == 0 and log["stage1_misfit_statistic"] < 0.01
    assert log["stage1_n_unidentifiable"] == 3  # s1 (constant feed), at and s6o (first-order sinks)
    for t in (0, 1):
        assert log[f"stage1_slope_ratio_{t}"] == pytest.approx(1.0, abs=0.05)
    assert log["stage1_group_acc"] == 1.0 and log["stage1_n_groups"] == 2
    assert log["stage1_baseline_err_median"] < 0.02


def test_parameter_noise_is_detected_and_nothing_is_reported_as_known(wolf):
    folder, data = wolf
    frozen = perturb_to_file(WOLF, folder / "param.xml", rate_noise=None, param_noise=0.1, seed=1)
    fit_to_folder(data, frozen, folder / "fit_param", Config())
    log = read_analysis_log(folder / "fit_param" / "analysis.log")
    assert log["stage1_frozen_misfit"] == 1 and log["stage1_misfit_statistic"] > 0.01
    assert log["stage1_n_unidentifiable"] == 9
    assert np.isnan(log["stage1_group_acc"])
    rows = (folder / "fit_param" / "fits.csv").read_text().splitlines()[1:]
    assert all(row.endswith(",false") for row in rows)


def test_species_metrics_known_answer():
    """Two types (lambda 1 and 4), one species without homeostasis (type -1), one not identified."""
    truth = SpeciesTruth(types=np.array([0, 0, 1, 1, -1, 1]), lambdas=np.array([1.0, 1.0, 4.0, 4.0, 0.0, 4.0]),
                         baselines=np.array([2.0, 3.0, 1.0, 5.0, 1.0, 1.0]), lambda_per_type=np.array([1.0, 4.0]))
    slope = np.array([-1.1, -0.9, -4.0, -4.4, 0.0, 9.0])
    cb_fit = np.array([2.2, 3.0, 1.0, 5.5, 1.0, 1.0])  # set-point errors 0.1, 0, 0, 0.1 on the identified ones
    fit = HomeostasisFit(slope=slope, offset=-slope * cb_fit, slope_se=np.ones(6), offset_se=np.ones(6),
                         groups=np.array([1, 1, 0, 1, 0, 0]), identified=np.array([True] * 5 + [False]))
    m = species_stage1_metrics(fit, truth)
    assert m["stage1_slope_ratio_0"] == pytest.approx(1.0)
    assert m["stage1_slope_ratio_1"] == pytest.approx(4.2 / 4.0)
    assert m["stage1_group_acc"] == pytest.approx(0.75)  # 3 of the 4 identified species with homeostasis
    assert m["stage1_n_groups"] == 2
    assert m["stage1_baseline_err_median"] == pytest.approx(0.05)
    assert m["stage1_baseline_err_p90"] == pytest.approx(0.1)


def test_refine_runs_end_to_end_with_an_sbml_frozen_model(wolf):
    import dataclasses

    from sysid.io.safe_load import torch_load

    folder, data = wolf
    cfg = Config().replace("training", data_augmentation_loop=10, homeostasis_time_step=4)
    cfg = dataclasses.replace(cfg, sysid=dataclasses.replace(cfg.sysid, refine=dataclasses.replace(
        cfg.sysid.refine, eval_windows=8, validate_every=5)))
    fit_to_folder(data, WOLF, folder / "fit_refine", cfg, refine_stage=True)
    log = read_analysis_log(folder / "fit_refine" / "analysis.log")
    assert np.isfinite(log["phase2_loss"]) and log["phase2_loss"] > 0
    for t in (0, 1):
        # the exact model: stage 1 is right to 5%, and the distilled, briefly refined MLP_node keeps that order
        assert log[f"stage1_slope_ratio_{t}"] == pytest.approx(1.0, abs=0.05)
        assert 0.5 < log[f"MLP_node_slope_ratio_{t}"] < 1.5
    state = torch_load(folder / "fit_refine" / "refined_model.pt")["model_state_dict"]
    assert state["a"].shape[0] == 9 and "node_func.0.weight" in state


def test_refine_refuses_rate_laws_that_read_time(tmp_path):
    from sysid.errors import SysidInputError
    from sysid.frozen import load_frozen
    from sysid.stage2.sbml_node import SbmlNodeModel
    from tests.sbml.test_sbml import pathway_sbml

    path = tmp_path / "pathway.xml"
    path.write_text(pathway_sbml())  # its feed switches at t = 0.05
    with pytest.raises(SysidInputError) as info:
        SbmlNodeModel(load_frozen(path), Config().graph_model)
    assert "time" in str(info.value) and "\n" not in str(info.value)
