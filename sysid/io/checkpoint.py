"""Checkpoints in the MetabolismGraph layout: torch.save({'model_state_dict': ...})."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from sysid.config import GraphModelConfig
from sysid.errors import SysidInputError
from sysid.io.safe_load import torch_load
from sysid.model import EDGE_BUFFERS, MetabolismModel
from sysid.network import Network

if TYPE_CHECKING:
    from sysid.frozen import FrozenModel  # the interface; sysid.frozen loads checkpoints through this module

REQUIRED = ("a", "log_k", "sto_all", *EDGE_BUFFERS[:5])


def architecture_from_state(state: dict, aggr_type: str = "mul") -> GraphModelConfig:
    """Read layer sizes off a state dict (aggregation is not stored; it comes from the config)."""

    def linears(prefix: str) -> list[int]:
        idx = sorted(int(m.group(1)) for k in state if (m := re.fullmatch(rf"{prefix}\.(\d+)\.weight", k)))
        return idx

    sub, node = linears("substrate_func"), linears("node_func")
    if not sub or not node:
        raise SysidInputError("checkpoint has no substrate_func/node_func layers: is it a MetabolismGraph model?")
    return GraphModelConfig(
        hidden_dim_sub=int(state[f"substrate_func.{sub[0]}.weight"].shape[0]) if len(sub) > 1 else 1,
        n_layers_sub=len(sub),
        hidden_dim_node=int(state[f"node_func.{node[0]}.weight"].shape[0]) if len(node) > 1 else 1,
        n_layers_node=len(node),
        embedding_dim=int(state["a"].shape[1]),
        aggr_type=aggr_type,
    )


def load_checkpoint(path: str | Path, aggr_type: str = "mul") -> MetabolismModel:
    """Load a MetabolismGraph (or sysid) checkpoint into a :class:`MetabolismModel` on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise SysidInputError(f"checkpoint {path} does not exist: pass --model PATH of a .pt checkpoint")
    blob = torch_load(path)
    state = blob.get("model_state_dict", blob) if isinstance(blob, dict) else None
    if not isinstance(state, dict) or any(k not in state for k in REQUIRED):
        missing = [k for k in REQUIRED if not isinstance(state, dict) or k not in state]
        raise SysidInputError(f"checkpoint {path} lacks {', '.join(missing)}: save {{'model_state_dict': ...}}")
    n_met = int(state["a"].shape[0])
    n_rxn = int(state["log_k"].shape[0])
    sto = state["sto_all"].detach().float()
    sub_to_all = np.asarray(state["sub_to_all"])
    if sub_to_all.ndim != 1 or (len(sub_to_all) and (sub_to_all.min() < 0 or sub_to_all.max() >= len(sto))):
        raise SysidInputError(f"checkpoint {path}: sub_to_all does not index sto_all ({len(sto)} edges): "
                              "save the buffers of one model")
    sub = (state["met_sub"], state["rxn_sub"], sto[sub_to_all].abs())
    all_ = (state["met_all"], state["rxn_all"], sto)
    network = Network.from_edges(n_met, n_rxn, [np.asarray(t) for t in sub], [np.asarray(t) for t in all_],
                                 source=f"checkpoint {path}")
    model = MetabolismModel(network, architecture_from_state(state, aggr_type))
    # The checkpoint's own edge buffers (and their order) replace the canonical ones.
    own = {k: v for k, v in state.items() if k in model.state_dict()}
    try:
        model.load_state_dict(own, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise SysidInputError(f"checkpoint {path} does not fit the model layout ({first})") from None
    return model


def save_checkpoint(model: MetabolismModel, path: str | Path) -> None:
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    torch.save({"model_state_dict": state}, Path(path))


def check_compatible(model: FrozenModel, network: Network, where: str = "checkpoint") -> None:
    """The checkpoint must describe the dataset's network."""
    if model.n_metabolites != network.n_metabolites or model.n_reactions != network.n_reactions:
        raise SysidInputError(
            f"{where} has {model.n_metabolites} metabolites x {model.n_reactions} reactions but the dataset has "
            f"{network.n_metabolites} x {network.n_reactions}: use a checkpoint trained on this dataset"
        )
    if not np.allclose(model.network().S, network.S):
        raise SysidInputError(
            f"{where} stoichiometry differs from the dataset's: use a checkpoint trained on this dataset"
        )
