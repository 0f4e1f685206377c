import json

import numpy as np
import pytest
import torch

from sysid.errors import SysidInputError
from sysid.io.dataset import load_dataset, load_truth


def test_round_trip(small_dir, small_sim):
    ds = load_dataset(small_dir)
    np.testing.assert_array_equal(ds.concentrations, small_sim.concentrations)
    np.testing.assert_array_equal(ds.dcdt, small_sim.dcdt)
    np.testing.assert_array_equal(ds.network.S, small_sim.network.S)
    assert ds.delta_t == small_sim.delta_t
    assert not hasattr(ds, "types")  # fitting code cannot see labels
    truth = load_truth(small_dir)
    np.testing.assert_array_equal(truth.types, small_sim.truth.types)
    np.testing.assert_allclose(truth.lambdas, small_sim.truth.lambdas)


def test_mg_layout(small_dir):
    x = np.load(small_dir / "x_list_0.npy")
    y = np.load(small_dir / "y_list_0.npy")
    assert x.dtype == np.float32 and x.shape[2] == 8 and y.shape == (*x.shape[:2], 1)
    np.testing.assert_array_equal(x[:, :, 0], np.broadcast_to(np.arange(x.shape[1]), x.shape[:2]))
    graph = torch.load(small_dir / "stoich_graph.pt")
    assert set(graph) == {"sub", "all"} and graph["sub"][0].dtype == torch.int64
    gt = torch.load(small_dir / "gt_model.pt")
    assert gt["p"].shape == (2, 2) and "log_k" in gt
    assert torch.equal(torch.load(small_dir / "model_p_0.pt"), gt["p"])


def test_delta_t_is_inferred_without_truth_json(small_dir, tmp_path):
    for f in small_dir.iterdir():
        if f.name != "truth.json":
            (tmp_path / f.name).write_bytes(f.read_bytes())
    expected = json.loads((small_dir / "truth.json").read_text())["delta_t"]
    assert load_dataset(tmp_path).delta_t == pytest.approx(expected)


def _copy(src, dst):
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())


@pytest.mark.parametrize(
    "damage, words",
    [
        (lambda d: (d / "y_list_0.npy").unlink(), "no y_list_0.npy"),
        (lambda d: np.save(d / "x_list_0.npy", np.zeros((5, 3), np.float32)), "shape"),
        (lambda d: np.save(d / "y_list_0.npy", np.zeros((4, 3, 1), np.float32)), "shape"),
        (lambda d: _set(d, np.nan), "NaN"),
        (lambda d: _set(d, -1.0), "negative"),
        (lambda d: np.save(d / "x_list_0.npy", np.load(d / "x_list_0.npy").astype(np.int32)), "dtype"),
        (lambda d: (d / "stoich_graph.pt").write_bytes(b"garbage"), "torch.load"),
    ],
)
def test_bad_datasets_raise_clear_errors(small_dir, tmp_path, damage, words):
    _copy(small_dir, tmp_path)
    damage(tmp_path)
    with pytest.raises(SysidInputError, match=words):
        load_dataset(tmp_path)


def _set(folder, value):
    x = np.load(folder / "x_list_0.npy")
    x[5, 2, 3] = value
    np.save(folder / "x_list_0.npy", x)


def test_missing_folder(tmp_path):
    with pytest.raises(SysidInputError, match="does not exist"):
        load_dataset(tmp_path / "none")
