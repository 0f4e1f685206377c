
import numpy as np
import pytest
import torch

from sysid.config import GraphModelConfig
from sysid.evaluation.metrics import embedding_metrics, hungarian_accuracy, node_metrics, rate_constants_r2
from sysid.io.checkpoint import load_checkpoint
from sysid.io.dataset import load_truth
from sysid.model import MetabolismModel
from sysid.truth import Truth
from tests.helpers import MG_SAMPLE


def _truth(types, lambdas=(0.001, 0.002), baselines=(4.0, 6.0), n_rxn=3):
    return Truth(np.asarray(types), np.asarray(lambdas), np.asarray(baselines), np.zeros(n_rxn, np.float32))


def test_linear_node_function_gives_ratio_one(small_sim):
    """A single Linear MLP_node: out = w_c c + a_0 + b, with slope w_c = -lambda_t and a_0 = lambda_t cb_t."""
    t = small_sim.truth
    model = MetabolismModel(small_sim.network, GraphModelConfig(n_layers_node=1, embedding_dim=2))
    for typ in range(t.n_types):  # one Linear layer has one slope, so check one type at a time
        with torch.no_grad():
            model.node_func[0].weight.copy_(torch.tensor([[-t.lambdas[typ], 1.0, 0.0]]))
            model.node_func[0].bias.zero_()
            model.a.zero_()
            model.a[:, 0] = float(t.lambdas[typ] * t.baselines[typ])
        m = node_metrics(model, t)
        assert m[f"MLP_node_slope_ratio_{typ}"] == pytest.approx(1.0, rel=1e-5)
        assert m[f"MLP_node_offset_ratio_{typ}"] == pytest.approx(1.0, rel=1e-5)


def test_embedding_accuracy_on_constructed_clusters():
    rng = np.random.default_rng(0)
    types = np.repeat([0, 1], 20)
    a = np.where(types[:, None] == 0, [0.0, 0.0], [1.0, 1.0]) + rng.normal(0, 0.005, (40, 2))
    m = embedding_metrics(a, _truth(types))
    assert m["embedding_cluster_acc"] == 1.0 and m["embedding_n_clusters"] == 2
    assert m["embedding_silhouette"] > 0.9
    # swapped labels do not matter (Hungarian), one merged blob gives half
    assert embedding_metrics(a, _truth(1 - types))["embedding_cluster_acc"] == 1.0
    blob = rng.normal(0, 0.01, (40, 2))
    m = embedding_metrics(blob, _truth(types))
    assert m["embedding_cluster_acc"] == 0.5 and m["embedding_n_clusters"] == 1


def test_noise_points_form_one_extra_cluster():
    types = np.array([0] * 6 + [1] * 6)
    a = np.vstack([np.zeros((6, 2)), np.arange(6)[:, None] * np.array([[1.0, 1.0]]) + 5])  # type 1 scattered
    m = embedding_metrics(a, _truth(types))
    assert m["embedding_n_clusters"] == 1 and m["embedding_cluster_acc"] == 1.0


def test_hungarian_counts_unmapped_clusters_as_wrong():
    assert hungarian_accuracy(np.array([0, 1, 2, 3]), np.array([0, 0, 1, 1])) == 0.5


def test_rate_constants_r2_corrects_the_substrate_scale(small_sim):
    model = MetabolismModel(small_sim.network, GraphModelConfig(n_layers_sub=1))
    alpha = 3.7
    with torch.no_grad():
        model.substrate_func[0].weight.copy_(torch.tensor([[alpha, 0.0]]))
        model.substrate_func[0].bias.zero_()
        n_sub = model.n_sub_per_rxn.double()
        model.log_k.copy_(torch.as_tensor(small_sim.truth.log_k, dtype=torch.float64) - n_sub * np.log10(alpha))
    assert rate_constants_r2(model, small_sim.truth.log_k) == pytest.approx(1.0, abs=1e-9)


def test_rate_constants_r2_matches_the_original_code():
    r2 = rate_constants_r2(load_checkpoint(MG_SAMPLE / "checkpoint.pt"), load_truth(MG_SAMPLE).log_k)
    assert r2 == pytest.approx(0.7874, abs=5e-5)
