
import dataclasses

import numpy as np
import pytest
import torch

from sysid.config import GraphModelConfig, SimulationConfig
from sysid.errors import SysidInputError
from sysid.io.checkpoint import check_compatible, load_checkpoint, save_checkpoint
from sysid.io.dataset import load_dataset
from sysid.model import MetabolismModel, euler_rollout
from tests.helpers import MG_SAMPLE


def reference_dcdt(model: MetabolismModel, c: np.ndarray) -> np.ndarray:
    """The model equations (docs/reference.md) written out edge by edge, independently of the vectorised code."""
    sd = {k: (v.double() if v.is_floating_point() else v).detach().numpy() for k, v in model.state_dict().items()}

    def mlp(prefix, x):
        idx = sorted(int(k.split(".")[1]) for k in sd if k.startswith(prefix) and k.endswith("weight"))
        for n, i in enumerate(idx):
            x = x @ sd[f"{prefix}.{i}.weight"].T + sd[f"{prefix}.{i}.bias"]
            if n < len(idx) - 1:
                x = np.tanh(x)
        return x

    n_rxn = len(sd["log_k"])
    sto = sd["sto_all"]
    out = mlp("node_func", np.column_stack([c, sd["a"]]))[:, 0]
    log_agg = np.zeros(n_rxn)
    for e, (m, j) in enumerate(zip(sd["met_sub"], sd["rxn_sub"], strict=True)):
        msg = mlp("substrate_func", np.array([[c[m], abs(sto[sd["sub_to_all"][e]])]]))[0, 0]
        log_agg[j] += np.log(max(abs(msg), 1e-8))
    v = 10.0 ** sd["log_k"] * np.log1p(np.exp(np.exp(log_agg)))
    for e, (m, j) in enumerate(zip(sd["met_all"], sd["rxn_all"], strict=True)):
        out[m] += sto[e] * v[j]
    return out


def test_forward_matches_the_equations(small_sim):
    model = MetabolismModel(small_sim.network, GraphModelConfig(), torch.Generator().manual_seed(0))
    c = small_sim.concentrations[10]
    got = model(torch.as_tensor(c)).detach().double().numpy()
    np.testing.assert_allclose(got, reference_dcdt(model, c.astype(np.float64)), rtol=2e-4, atol=1e-6)


def test_batched_forward_equals_per_state(small_sim):
    model = MetabolismModel(small_sim.network, GraphModelConfig(), torch.Generator().manual_seed(0))
    c = torch.as_tensor(small_sim.concentrations[:12]).reshape(3, 4, -1)
    batched = model(c)
    single = torch.stack([torch.stack([model(c[i, j]) for j in range(4)]) for i in range(3)])
    torch.testing.assert_close(batched, single)


def test_euler_rollout_is_first_order():
    """On dc/dt = -c (a single Linear node function), the Euler error halves with the step."""
    from sysid.network import Network

    net = Network(S=np.zeros((1, 1), np.float32), substrates=np.zeros((1, 1), np.float32))
    model = MetabolismModel(net, GraphModelConfig(n_layers_node=1, embedding_dim=1))
    with torch.no_grad():
        model.node_func[0].weight.copy_(torch.tensor([[-1.0, 0.0]]))
        model.node_func[0].bias.zero_()
        model.log_k.fill_(-30.0)  # no reaction flux
    errors = []
    for n in (20, 40, 80):
        c = euler_rollout(model, torch.ones(1, 1, dtype=torch.float32), n, 1.0 / n)[0, -1, 0].item()
        errors.append(abs(c - np.exp(-1.0)))
    assert errors[0] / errors[1] == pytest.approx(2.0, rel=0.1)
    assert errors[1] / errors[2] == pytest.approx(2.0, rel=0.1)


def test_checkpoint_round_trip(small_sim, tmp_path):
    model = MetabolismModel(small_sim.network, GraphModelConfig(), torch.Generator().manual_seed(1))
    save_checkpoint(model, tmp_path / "m.pt")
    back = load_checkpoint(tmp_path / "m.pt")
    c = torch.as_tensor(small_sim.concentrations[:5])
    torch.testing.assert_close(back(c), model(c))
    assert set(torch.load(tmp_path / "m.pt")) == {"model_state_dict"}
    check_compatible(back, small_sim.network)


def test_checkpoint_of_another_network_is_rejected(small_sim, tmp_path):
    from sysid.config import SimulationConfig
    from sysid.simulation.random_network import random_network

    other = random_network(SimulationConfig(n_metabolites=30, n_reactions=60, seed=5), np.random.default_rng(9))
    model = MetabolismModel(other, GraphModelConfig())
    with pytest.raises(SysidInputError, match="stoichiometry differs"):
        check_compatible(model, small_sim.network)
    small = MetabolismModel(random_network(SimulationConfig(n_metabolites=10, n_reactions=5),
                                           np.random.default_rng(0)), GraphModelConfig())
    with pytest.raises(SysidInputError, match="metabolites"):
        check_compatible(small, small_sim.network)


def test_bad_checkpoint_files(tmp_path):
    with pytest.raises(SysidInputError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pt")
    torch.save({"model_state_dict": {"a": torch.zeros(3, 2)}}, tmp_path / "partial.pt")
    with pytest.raises(SysidInputError, match="lacks"):
        load_checkpoint(tmp_path / "partial.pt")


def test_metabolismgraph_checkpoint_loads_as_it_is():
    model = load_checkpoint(MG_SAMPLE / "checkpoint.pt")
    data = load_dataset(MG_SAMPLE)
    check_compatible(model, data.network)
    state = torch.load(MG_SAMPLE / "checkpoint.pt")["model_state_dict"]
    for key, value in state.items():
        torch.testing.assert_close(model.state_dict()[key], value)
    c = data.concentrations[7]
    got = model(torch.as_tensor(c)).detach().double().numpy()
    np.testing.assert_allclose(got, reference_dcdt(model, c.astype(np.float64)), rtol=2e-4, atol=1e-6)



def test_gradients_of_the_forward_pass_are_exact_in_float64():
    """torch.autograd.gradcheck of dc/dt with respect to the concentrations and to every parameter."""
    from sysid.simulation.random_network import random_network

    net = random_network(SimulationConfig(n_metabolites=6, n_reactions=5, max_metabolites_per_reaction=2),
                         np.random.default_rng(2))
    arch = GraphModelConfig(hidden_dim_sub=4, n_layers_sub=3, hidden_dim_node=3, n_layers_node=2)
    c = torch.rand(2, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 4 + 0.5
    for aggr in ("mul", "add"):
        model = MetabolismModel(net, dataclasses.replace(arch, aggr_type=aggr), torch.Generator().manual_seed(0))
        model = model.double()
        assert torch.autograd.gradcheck(model, (c.clone().requires_grad_(True),))
        names = [n for n, p in model.named_parameters() if n != "sto_all"]

        def dcdt(*values, model=model, names=names):
            return torch.func.functional_call(model, dict(zip(names, values, strict=True)), (c,))

        start = tuple(model.get_parameter(n).detach().clone().requires_grad_(True) for n in names)
        assert torch.autograd.gradcheck(dcdt, start)
