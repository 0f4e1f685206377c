"""Labels are read by evaluation only: changing the type column changes no fitted number."""

import shutil

import numpy as np
import pytest

from sysid.config import Config
from sysid.pipeline import fit_to_folder

FITTED = ("fits.csv", "groups.json", "detectability.csv")


def _relabel(src, dst, how):
    shutil.copytree(src, dst)
    x = np.load(dst / "x_list_0.npy")
    types = x[:, :, 6]
    if how == "permute":
        x[:, :, 6] = types[:, np.random.default_rng(0).permutation(types.shape[1])]
    elif how == "zero":
        x[:, :, 6] = 0
    else:
        x[:, :, 6] = types.max() - types
    np.save(dst / "x_list_0.npy", x)


@pytest.mark.parametrize("how", ["permute", "zero", "reverse"])
def test_type_column_changes_nothing_fitted(small_dir, small_frozen, tmp_path, how):
    cfg = Config()
    _relabel(small_dir, tmp_path / "relabelled", how)
    fit_to_folder(small_dir, small_frozen, tmp_path / "a", cfg)
    fit_to_folder(tmp_path / "relabelled", small_frozen, tmp_path / "b", cfg)
    for name in FITTED:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_type_column_changes_nothing_refined(small_dir, small_frozen, tmp_path):
    """Stage 2 too: the refined checkpoint (MLP_node, embeddings) is identical with relabelled data."""
    import dataclasses

    import torch

    cfg = Config().replace("training", data_augmentation_loop=10, homeostasis_time_step=4)
    cfg = dataclasses.replace(cfg, sysid=dataclasses.replace(cfg.sysid, refine=dataclasses.replace(
        cfg.sysid.refine, eval_windows=8, validate_every=5)))
    _relabel(small_dir, tmp_path / "relabelled", "permute")
    fit_to_folder(small_dir, small_frozen, tmp_path / "a", cfg, refine_stage=True)
    fit_to_folder(tmp_path / "relabelled", small_frozen, tmp_path / "b", cfg, refine_stage=True)
    for name in (*FITTED, "stage1_init_model.pt", "refined_model.pt"):
        a, b = tmp_path / "a" / name, tmp_path / "b" / name
        if name.endswith(".pt"):
            sa, sb = torch.load(a)["model_state_dict"], torch.load(b)["model_state_dict"]
            assert all(torch.equal(sa[k], sb[k]) for k in sa), name
        else:
            assert a.read_bytes() == b.read_bytes(), name
