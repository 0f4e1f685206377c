"""The command line: outputs, --force, one-line errors with exit code 2, atomic results."""

import json

import numpy as np
import pytest

from sysid.errors import SysidInputError
from sysid.io.atomic import atomic_dir
from sysid.reports import read_analysis_log
from tests.helpers import assert_one_line_error, sysid


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    path.write_text("simulation:\n  n_metabolites: 12\n  n_reactions: 20\n  n_frames: 400\n  seed: 1\n")
    return path


def test_simulate_writes_the_dataset_and_refuses_to_overwrite(tmp_path, tiny_config):
    out = tmp_path / "data"
    proc = sysid("simulate", "--config", tiny_config, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "results written to" in proc.stdout
    x = np.load(out / "x_list_0.npy")
    assert x.shape == (401, 12, 8) and x.dtype == np.float32
    for name in ("y_list_0.npy", "stoich_graph.pt", "stoichiometry.pt", "gt_model.pt", "model_p_0.pt", "truth.json"):
        assert (out / name).is_file()
    before = (out / "x_list_0.npy").read_bytes()
    assert_one_line_error(sysid("simulate", "--config", tiny_config, "--out", out), "--force")
    assert (out / "x_list_0.npy").read_bytes() == before
    assert sysid("simulate", "--config", tiny_config, "--out", out, "--force").returncode == 0


def test_fit_and_evaluate_on_a_dataset(small_dir, small_frozen, tmp_path):
    proc = sysid("fit", "--data", small_dir, "--model", small_frozen, "--out", tmp_path / "fit")
    assert proc.returncode == 0, proc.stderr
    log = read_analysis_log(tmp_path / "fit" / "analysis.log")
    assert log["stage1_group_acc"] == 1.0 and abs(log["stage1_avg_slope_ratio"] - 1) < 0.02
    # linear data: every group keeps the line, and the curve keys come last
    assert list(log)[-2:] == ["stage1_curve_err_0", "stage1_curve_err_1"] and max(list(log.values())[-2:]) < 0.05
    groups = json.loads((tmp_path / "fit" / "groups.json").read_text())["groups"]
    assert [g["form"] for g in groups] == ["linear", "linear"]
    for name in ("fits.csv", "groups.json", "stage1_fits.png", "stage1_groups.png", "detectability.csv",
                 "detectability.png"):
        assert (tmp_path / "fit" / name).is_file()
    proc = sysid("residuals", "--data", small_dir, "--model", small_frozen, "--out", tmp_path / "res")
    assert proc.returncode == 0, proc.stderr
    assert "true homeostasis" in proc.stdout
    with np.load(tmp_path / "res" / "residuals.npz") as z:
        assert z["single_step"].shape == np.load(small_dir / "y_list_0.npy").shape[:2]
    proc = sysid("evaluate", "--data", small_dir, "--model", small_frozen, "--out", tmp_path / "ev")
    assert proc.returncode == 0, proc.stderr
    assert read_analysis_log(tmp_path / "ev" / "analysis.log")["rate_constants_R2"] > 0.8


def test_fit_is_deterministic(small_dir, small_frozen, tmp_path):
    for name in ("a", "b"):
        assert sysid("fit", "--data", small_dir, "--model", small_frozen, "--out", tmp_path / name).returncode == 0
    assert (tmp_path / "a" / "analysis.log").read_text() == (tmp_path / "b" / "analysis.log").read_text()
    assert (tmp_path / "a" / "fits.csv").read_text() == (tmp_path / "b" / "fits.csv").read_text()


@pytest.mark.parametrize(
    "args, words",
    [
        (["fit", "--data", "{tmp}/missing"], ["does not exist"]),
        (["evaluate", "--data", "{tmp}", "--model", "{tmp}/m.pt", "--out", "{tmp}/o"], ["x_list_0.npy"]),
        (["simulate", "--config", "{tmp}/missing.yaml", "--out", "{tmp}/o"], ["missing.yaml"]),
        (["simulate", "--config", "{tmp}/bad.yaml", "--out", "{tmp}/o"], ["n_metabolite_types"]),
        (["simulate", "--config", "{tmp}/neg.yaml", "--out", "{tmp}/o"], ["delta_t"]),
        (["simulate", "--out", "{tmp}/nope/deeper"], ["parent folder"]),
        (["fit", "--bogus"], ["bogus"]),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, args, words):
    (tmp_path / "bad.yaml").write_text("simulation:\n  homeostatic_lambda_per_type: [0.001]\n")
    (tmp_path / "neg.yaml").write_text("simulation:\n  delta_t: -0.1\n")
    proc = sysid(*[a.format(tmp=tmp_path) for a in args], subprocess_run=args[0] == "fit")
    assert_one_line_error(proc, *words)
    assert not (tmp_path / "o").exists()


def test_checkpoint_that_does_not_match_the_dataset(small_dir, tmp_path, tiny_config):
    sysid("simulate", "--config", tiny_config, "--out", tmp_path / "other")
    from sysid.config import GraphModelConfig
    from sysid.io.checkpoint import save_checkpoint
    from sysid.io.dataset import load_dataset
    from sysid.model import MetabolismModel

    save_checkpoint(MetabolismModel(load_dataset(tmp_path / "other").network, GraphModelConfig()), tmp_path / "m.pt")
    proc = sysid("fit", "--data", small_dir, "--model", tmp_path / "m.pt", "--out", tmp_path / "o")
    assert_one_line_error(proc, "metabolites")
    assert not (tmp_path / "o").exists()


def test_interrupted_run_leaves_no_partial_output(tmp_path):
    out = tmp_path / "result"
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(out) as tmp:
            (tmp / "half.txt").write_text("partial")
            raise KeyboardInterrupt
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(SysidInputError):
        with atomic_dir(out) as tmp:
            raise SysidInputError("bad")
    assert list(tmp_path.iterdir()) == []


REFINE_TINY = (
    "training:\n  data_augmentation_loop: 10\n  homeostasis_time_step: 4\n"
    "sysid:\n  refine:\n    eval_windows: 8\n    validate_every: 5\n"
)


def test_fit_refine_is_deterministic(small_dir, small_frozen, tmp_path, monkeypatch):
    """Same config and seed: identical analysis.log for stage 1 + stage 2 on the CPU."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # the subprocesses inherit it: CPU only
    (tmp_path / "refine.yaml").write_text(REFINE_TINY)
    for name in ("a", "b"):
        proc = sysid("fit", "--refine", "--data", small_dir, "--model", small_frozen, "--config",
                     tmp_path / "refine.yaml", "--out", tmp_path / name)
        assert proc.returncode == 0, proc.stderr
    log_a = (tmp_path / "a" / "analysis.log").read_text()
    assert "avg_slope_ratio" in log_a and "embedding_cluster_acc" in log_a
    assert log_a == (tmp_path / "b" / "analysis.log").read_text()
