"""Labels are read by evaluation only: changing the type column changes no fitted number."""

import dataclasses
import shutil

import numpy as np
import pytest

from sysid.config import Config
from sysid.pipeline import fit_to_folder

FITTED = ("fits.csv", "groups.json", "detectability.csv")
WINDOWS = (10, 20)  # output-error windows of the noisy record (short: a fast test)


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


@pytest.fixture(scope="module")
def noisy_record(tmp_path_factory):
    """A small noisy record (so that the output-error fit follows stage 1) and its frozen model."""
    from sysid.io.checkpoint import save_checkpoint
    from sysid.io.dataset import write_dataset
    from sysid.phase1.from_truth import model_from_truth
    from sysid.simulation import simulate

    cfg = Config().replace("simulation", n_metabolites=18, n_reactions=36, n_frames=600, seed=1)
    sim = simulate(cfg.simulation, 0.01)
    folder = tmp_path_factory.mktemp("noisy")
    (folder / "data").mkdir()
    write_dataset(sim, folder / "data")
    save_checkpoint(model_from_truth(sim.network, sim.truth.log_k, cfg.graph_model, log_k_noise=0.1, seed=3,
                                     concentrations=sim.concentrations), folder / "frozen.pt")
    return folder / "data", folder / "frozen.pt"


def test_type_column_changes_nothing_fitted_by_output_error(noisy_record, tmp_path):
    data, frozen = noisy_record
    cfg = Config()
    cfg = dataclasses.replace(cfg, sysid=dataclasses.replace(
        cfg.sysid, stage1=dataclasses.replace(cfg.sysid.stage1, output_error_windows=WINDOWS)))
    _relabel(data, tmp_path / "relabelled", "permute")
    metrics = fit_to_folder(data, frozen, tmp_path / "a", cfg)
    fit_to_folder(tmp_path / "relabelled", frozen, tmp_path / "b", cfg)
    assert metrics["stage1_output_error"] == 1.0  # the output-error answer is the one compared
    for name in FITTED:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
