"""Labels are read by evaluation only: changing the type column changes no fitted number."""

import shutil

import numpy as np
import pytest

from sysid.config import Config
from sysid.pipeline import fit_to_folder

FITTED = ("fits.csv", "groups.json")


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
