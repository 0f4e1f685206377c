"""Errors users can act on: one line naming the problem and the fix, exit code 2, nothing half-written.

Every case runs the real entry point ``sysid_cli.main.main`` (in-process through
tests.helpers.sysid, which captures its output and exit code); the Ctrl-C and SIGTERM
cases run ``python -m sysid_cli.main`` in a subprocess and send it the signal.
Cases already covered by test_cli.py (missing dataset folder, missing
x_list_0.npy, missing config, lambda list length, negative delta_t, missing
parent folder, unknown option, n_metabolites mismatch, simulate over an
existing --out) are not repeated here.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import assert_one_line_error, sysid

TINY = {"n_metabolites": 12, "n_reactions": 24, "n_frames": 400, "seed": 5}


def _tiny_dataset(folder: Path, **simulation) -> Path:
    from sysid.config import Config
    from sysid.io.dataset import write_dataset
    from sysid.simulation import simulate

    folder.mkdir()
    write_dataset(simulate(Config().replace("simulation", **{**TINY, **simulation}).simulation), folder)
    return folder


def _checkpoint(data: Path, path: Path, log_k_noise: float = 0.0) -> Path:
    from sysid.config import GraphModelConfig
    from sysid.io.checkpoint import save_checkpoint
    from sysid.io.dataset import load_dataset, load_truth
    from sysid.phase1.from_truth import model_from_truth

    ds = load_dataset(data)
    model = model_from_truth(ds.network, load_truth(data).log_k, GraphModelConfig(), log_k_noise=log_k_noise, seed=0,
                             concentrations=ds.concentrations)
    save_checkpoint(model, path)
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny dataset and a matching frozen checkpoint."""
    root = tmp_path_factory.mktemp("tiny")
    data = _tiny_dataset(root / "data")
    return data, _checkpoint(data, root / "frozen.pt")


def assert_nothing_written(folder: Path, *names: str) -> None:
    """No output and no leftover temporary file or folder (atomic writes use hidden '.NAME.tmp-*')."""
    for name in names:
        assert not (folder / name).exists(), name
    assert not [p.name for p in folder.iterdir() if ".tmp-" in p.name]


# --- dataset folders -------------------------------------------------------------------------------


def _edit_x(x, y):
    x = x.copy()
    x[7, 2, 3] = -0.5
    return x, y


def _nan_x(x, y):
    x = x.copy()
    x[3, 1, 3] = np.nan
    return x, y


def _inf_y(x, y):
    y = y.copy()
    y[9, 0, 0] = np.inf
    return x, y


ARRAY_CASES = {
    "x without the column axis": (lambda x, y: (x[:, :, 3], y), ["x_list_0.npy", "shape", "n_metabolites, 8"]),
    "x stored as integers": (lambda x, y: (x.astype(np.int64), y), ["dtype int64", "float32"]),
    "y shorter than x": (lambda x, y: (x, y[:-10]), ["y_list_0.npy", "shape", "to match x_list"]),
    "NaN in concentrations": (_nan_x, ["NaN or inf"]),
    "inf in dc/dt": (_inf_y, ["NaN or inf"]),
    "negative concentration": (_edit_x, ["negative concentration", "frame 7, metabolite 2", ">= 0"]),
    "two frames only": (lambda x, y: (x[:2], y[:2]), ["2 frames", "at least 3"]),
}


@pytest.mark.parametrize("case", list(ARRAY_CASES))
def test_bad_arrays(tiny, tmp_path, case):
    data, ckpt = tiny
    edit, words = ARRAY_CASES[case]
    bad = shutil.copytree(data, tmp_path / "bad")
    x, y = edit(np.load(data / "x_list_0.npy"), np.load(data / "y_list_0.npy"))
    np.save(bad / "x_list_0.npy", x)
    np.save(bad / "y_list_0.npy", y)
    assert_one_line_error(sysid("fit", "--data", bad, "--model", ckpt, "--out", tmp_path / "o"), *words)
    assert_nothing_written(tmp_path, "o")


def _graph(data: Path):
    return torch.load(data / "stoich_graph.pt", weights_only=True)


FILE_CASES = {
    "unreadable npy": ("x_list_0.npy", lambda d: b"not an array", ["x_list_0.npy", "numpy.save"]),
    "unreadable torch file": ("stoich_graph.pt", lambda d: b"garbage", ["stoich_graph.pt", "torch.load"]),
    "edge pair instead of triple": (
        "stoich_graph.pt", lambda d: {"sub": _graph(d)["sub"][:2], "all": _graph(d)["all"]}, ["'sub'", "triple"]),
    "edge index out of range": (
        "stoich_graph.pt",
        lambda d: {"sub": _graph(d)["sub"], "all": (_graph(d)["all"][0] + 100, *_graph(d)["all"][1:])},
        ["'all'", "metabolite", "different networks"]),
    "stoichiometry with too few reactions": (
        "stoichiometry.pt", lambda d: torch.load(d / "stoichiometry.pt")[:, :5], ["reaction", "5 reactions"]),
    "graph and stoichiometry disagree": (
        "stoichiometry.pt", lambda d: -torch.load(d / "stoichiometry.pt"), ["disagree"]),
    "missing stoich_graph.pt": ("stoich_graph.pt", None, ["no stoich_graph.pt"]),
}


@pytest.mark.parametrize("case", list(FILE_CASES))
def test_bad_dataset_files(tiny, tmp_path, case):
    data, ckpt = tiny
    name, content, words = FILE_CASES[case]
    bad = shutil.copytree(data, tmp_path / "bad")
    if content is None:
        (bad / name).unlink()
    else:
        value = content(data)
        if isinstance(value, bytes):
            (bad / name).write_bytes(value)
        else:
            torch.save(value, bad / name)
    assert_one_line_error(sysid("residuals", "--data", bad, "--model", ckpt, "--out", tmp_path / "o"), *words)
    assert_nothing_written(tmp_path, "o")


def test_truth_file_without_parameters(tiny, tmp_path):
    data, ckpt = tiny
    bad = shutil.copytree(data, tmp_path / "bad")
    torch.save({"log_k": torch.zeros(3)}, bad / "gt_model.pt")
    assert_one_line_error(sysid("evaluate", "--data", bad, "--model", ckpt, "--out", tmp_path / "o"),
                          "gt_model.pt", "'p'")
    assert_nothing_written(tmp_path, "o")


# --- checkpoints -----------------------------------------------------------------------------------


def test_missing_checkpoint(tiny, tmp_path):
    data, _ = tiny
    proc = sysid("fit", "--data", data, "--model", tmp_path / "nope.pt", "--out", tmp_path / "o")
    assert_one_line_error(proc, "nope.pt", "does not exist", "--model")
    assert_nothing_written(tmp_path, "o")


def test_checkpoint_with_other_reaction_count(tiny, tmp_path):
    data, _ = tiny
    other = _tiny_dataset(tmp_path / "other", n_reactions=30)
    ckpt = _checkpoint(other, tmp_path / "other.pt")
    proc = sysid("fit", "--data", data, "--model", ckpt, "--out", tmp_path / "o")
    assert_one_line_error(proc, "12 metabolites x 30 reactions", "12 x 24", "trained on this dataset")
    assert_nothing_written(tmp_path, "o")


def test_checkpoint_with_other_stoichiometry(tiny, tmp_path):
    """Same sizes, different network (another seed): the stoichiometry check catches it."""
    data, _ = tiny
    other = _tiny_dataset(tmp_path / "other", seed=99)
    ckpt = _checkpoint(other, tmp_path / "other.pt")
    proc = sysid("residuals", "--data", data, "--model", ckpt, "--out", tmp_path / "o")
    assert_one_line_error(proc, "stoichiometry differs")
    assert_nothing_written(tmp_path, "o")


@pytest.mark.parametrize("case", ["not a model", "inconsistent buffers"])
def test_malformed_checkpoint(tiny, tmp_path, case):
    data, ckpt = tiny
    state = torch.load(ckpt, weights_only=True)["model_state_dict"]
    if case == "not a model":
        blob, words = {"weights": torch.zeros(3)}, ["lacks", "model_state_dict"]
    else:
        state = dict(state, log_k=state["log_k"][:4])
        blob, words = {"model_state_dict": state}, ["reaction", "4 reactions"]
    torch.save(blob, tmp_path / "m.pt")
    assert_one_line_error(sysid("fit", "--data", data, "--model", tmp_path / "m.pt", "--out", tmp_path / "o"), *words)
    assert_nothing_written(tmp_path, "o")


# --- configs ---------------------------------------------------------------------------------------

CONFIG_CASES = {
    "word for a number": ("simulation:\n  n_metabolites: many\n", ["simulation.n_metabolites", "int", "many"]),
    "scalar for a list": ("simulation:\n  homeostatic_baseline_per_type: 4.0\n", ["must be a list", "[a, b"]),
    "baselines per type": ("simulation:\n  n_metabolite_types: 3\n  homeostatic_lambda_per_type: [1, 2, 3]\n",
                           ["homeostatic_baseline_per_type", "has 2 values", "n_metabolite_types is 3"]),
    "negative noise": ("training:\n  measurement_noise_level: -0.01\n", ["measurement_noise_level", ">= 0"]),
    "zero rollout": ("training:\n  homeostasis_time_step: 0\n", ["homeostasis_time_step", "positive"]),
    "section not a mapping": ("simulation: 5\n", ["'simulation'", "mapping"]),
    "broken YAML": ("simulation:\n  n_frames: [1, 2\n", ["not valid YAML", "syntax"]),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_bad_config(tmp_path, case):
    text, words = CONFIG_CASES[case]
    (tmp_path / "c.yaml").write_text(text)
    assert_one_line_error(sysid("simulate", "--config", tmp_path / "c.yaml", "--out", tmp_path / "o"), *words)
    assert_nothing_written(tmp_path, "o")


def test_bad_option_values(tiny, tmp_path):
    data, _ = tiny
    proc = sysid("phase1", "--data", data, "--out", tmp_path / "m.pt", "--from-truth", "--log-k-noise", "-1")
    assert_one_line_error(proc, "--log-k-noise", ">= 0")
    proc = sysid("phase1", "--data", data, "--out", tmp_path / "m.pt", "--log-k-noise", "0.1")
    assert_one_line_error(proc, "--from-truth")
    assert_nothing_written(tmp_path, "m.pt", "m.pt.json", "m.pt.loss.png")


# --- outputs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["fit", "residuals", "evaluate", "phase1"])
def test_existing_out_needs_force(tiny, tmp_path, command):
    data, ckpt = tiny
    out = tmp_path / ("m.pt" if command == "phase1" else "result")
    if command == "phase1":
        out.write_bytes(b"keep me")
        args = ["--from-truth"]
    else:
        out.mkdir()
        (out / "keep.txt").write_bytes(b"keep me")
        args = ["--model", ckpt]
    proc = sysid(command, "--data", data, *args, "--out", out)
    assert_one_line_error(proc, "already exists", "--force")
    kept = out if command == "phase1" else out / "keep.txt"
    assert kept.read_bytes() == b"keep me"
    assert_nothing_written(tmp_path)


def test_refine_needs_frames_for_its_rollouts(tiny, tmp_path):
    data, ckpt = tiny
    (tmp_path / "c.yaml").write_text("training:\n  homeostasis_time_step: 300\n")
    proc = sysid("fit", "--refine", "--data", data, "--model", ckpt, "--config", tmp_path / "c.yaml",
                 "--out", tmp_path / "o")
    assert_one_line_error(proc, "400 steps", "homeostasis_time_step = 300", "at least 602")
    assert_nothing_written(tmp_path, "o")


# --- Ctrl-C ----------------------------------------------------------------------------------------


def _interrupt_when(proc: subprocess.Popen, ready, timeout: float = 120.0, sig: int = signal.SIGINT
                    ) -> tuple[int, str]:
    """Send ``sig`` once ``ready()`` holds (work under way); return exit code and stderr."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the command ended or never got going: {proc.communicate()[1]}")
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


def _default_sigint() -> None:
    """A job a shell starts in the background inherits SIGINT ignored, and Python then keeps it ignored: the
    command under test gets the default disposition whatever way the test suite itself was started."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _popen(*args) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "sysid_cli.main", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, preexec_fn=_default_sigint)


def _temp_dir_exists(parent: Path, name: str):
    return lambda: any(p.name.startswith(f".{name}.tmp-") for p in parent.iterdir())


def test_ctrl_c_during_simulate_leaves_nothing(tmp_path):
    (tmp_path / "long.yaml").write_text("simulation:\n  n_metabolites: 12\n  n_reactions: 24\n  n_frames: 2000000\n")
    proc = _popen("simulate", "--config", tmp_path / "long.yaml", "--out", tmp_path / "data")
    code, err = _interrupt_when(proc, _temp_dir_exists(tmp_path, "data"))
    assert code == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert_nothing_written(tmp_path, "data")


def test_ctrl_c_during_fit_leaves_nothing(tiny, tmp_path):
    data, ckpt = tiny
    (tmp_path / "long.yaml").write_text(
        "training:\n  data_augmentation_loop: 100000\n  homeostasis_time_step: 4\n"
    )
    proc = _popen("fit", "--refine", "--data", data, "--model", ckpt, "--config", tmp_path / "long.yaml",
                  "--out", tmp_path / "fit")
    code, err = _interrupt_when(proc, _temp_dir_exists(tmp_path, "fit"))
    assert code == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert_nothing_written(tmp_path, "fit")


def test_sigterm_during_simulate_leaves_nothing(tmp_path):
    """SIGTERM (e.g. a batch scheduler's kill) cleans up like Ctrl-C and exits 143."""
    (tmp_path / "long.yaml").write_text("simulation:\n  n_metabolites: 12\n  n_reactions: 24\n  n_frames: 2000000\n")
    proc = _popen("simulate", "--config", tmp_path / "long.yaml", "--out", tmp_path / "data")
    code, err = _interrupt_when(proc, _temp_dir_exists(tmp_path, "data"), sig=signal.SIGTERM)
    assert code == 143, err
    assert "terminated" in err and "Traceback" not in err
    assert_nothing_written(tmp_path, "data")
