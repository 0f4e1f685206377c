"""The learned model (docs/reference.md, the model), MetabolismGraph-compatible.

dc_i/dt = MLP_node([c_i, a_i]) + sum_e sto_all[e] * v[rxn_all[e]]
v_j     = 10**log_k[j] * softplus(agg_j),  agg_j = prod or sum of MLP_sub messages

Every function takes concentrations of shape (..., n_metabolites) so one call
evaluates a whole batch of states; this is the single forward pass used by
training, rollouts, residuals and evaluation alike.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from sysid.config import GraphModelConfig
from sysid.network import Network

EDGE_BUFFERS = (
    "met_sub", "rxn_sub", "met_all", "rxn_all", "sub_to_all",
    "n_sub_per_rxn", "met_prod", "rxn_prod", "prod_indices", "n_prod_per_rxn",
)
LOG_FLOOR = 1e-8


def linear_layers(net: nn.Module) -> list[nn.Linear]:
    """The Linear layers of an MLP, in order."""
    return [layer for layer in net.modules() if isinstance(layer, nn.Linear)]


def mlp(sizes: list[int]) -> nn.Sequential:
    """Alternating Linear and Tanh, no activation after the last Linear."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class MetabolismModel(nn.Module):
    """Frozen-able reaction part (log_k, MLP_sub, sto_all) plus MLP_node and embeddings a."""

    met_sub: torch.Tensor
    rxn_sub: torch.Tensor
    met_all: torch.Tensor
    rxn_all: torch.Tensor
    sub_to_all: torch.Tensor
    n_sub_per_rxn: torch.Tensor
    met_prod: torch.Tensor
    rxn_prod: torch.Tensor
    prod_indices: torch.Tensor
    n_prod_per_rxn: torch.Tensor
    substrate_func: nn.Sequential
    node_func: nn.Sequential

    def __init__(self, network: Network, arch: GraphModelConfig, generator: torch.Generator | None = None):
        super().__init__()
        self.arch = arch
        self.n_metabolites, self.n_reactions = network.S.shape
        e = network.edges
        long = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.int64)  # noqa: E731
        n_sub = np.bincount(e.rxn_sub, minlength=self.n_reactions).clip(min=1)
        n_prod = np.bincount(e.rxn_prod, minlength=self.n_reactions).clip(min=1)
        for name, value in (
            ("met_sub", long(e.met_sub)), ("rxn_sub", long(e.rxn_sub)),
            ("met_all", long(e.met_all)), ("rxn_all", long(e.rxn_all)),
            ("sub_to_all", long(e.sub_to_all)),
            ("n_sub_per_rxn", torch.as_tensor(n_sub, dtype=torch.float32)),
            ("met_prod", long(e.met_prod)), ("rxn_prod", long(e.rxn_prod)),
            ("prod_indices", long(e.prod_indices)),
            ("n_prod_per_rxn", torch.as_tensor(n_prod, dtype=torch.float32)),
        ):
            self.register_buffer(name, value)
        self.sto_all = nn.Parameter(torch.as_tensor(e.sto_all, dtype=torch.float32), requires_grad=False)
        self.log_k = nn.Parameter(torch.zeros(self.n_reactions))
        self.substrate_func = mlp([2] + [arch.hidden_dim_sub] * (arch.n_layers_sub - 1) + [1])
        self.node_func = mlp([1 + arch.embedding_dim] + [arch.hidden_dim_node] * (arch.n_layers_node - 1) + [1])
        self.a = nn.Parameter(torch.zeros(self.n_metabolites, arch.embedding_dim))
        if generator is not None:
            self.reset_parameters(generator)

    def reset_parameters(self, generator: torch.Generator) -> None:
        """Seeded initialisation (PyTorch's default scheme, without global RNG state)."""
        with torch.no_grad():
            for layer in [*self.substrate_func, *self.node_func]:
                if isinstance(layer, nn.Linear):
                    bound = 1.0 / layer.in_features**0.5
                    layer.weight.uniform_(-bound, bound, generator=generator)
                    layer.bias.uniform_(-bound, bound, generator=generator)
            self.a.normal_(0.0, 1.0, generator=generator)

    # --- the forward pass -------------------------------------------------
    def substrate_messages(self, c: torch.Tensor) -> torch.Tensor:
        """MLP_sub([c_{met_sub[e]}, |sto_all[sub_to_all[e]]|]) for every substrate edge: (..., n_sub_edges)."""
        # Edges sharing (metabolite, |s|) get the same message: evaluate MLP_sub once per distinct pair.
        coef = self.sto_all[self.sub_to_all].abs()
        pairs, edge_to_pair = torch.unique(torch.stack([self.met_sub.to(coef.dtype), coef], 1), dim=0,
                                           return_inverse=True)
        conc = c[..., pairs[:, 0].long()]
        inputs = torch.stack([conc, pairs[:, 1].expand_as(conc)], dim=-1)
        return self.substrate_func(inputs).squeeze(-1)[..., edge_to_pair]

    def aggregate(self, c: torch.Tensor) -> torch.Tensor:
        """agg_j: product (aggr 'mul') or sum ('add') of the substrate messages: (..., n_reactions)."""
        return self.combine(self.substrate_messages(c))

    def combine(self, msg: torch.Tensor) -> torch.Tensor:
        """agg_j from the substrate messages (..., n_sub_edges) of :meth:`substrate_messages`."""
        shape = (*msg.shape[:-1], self.n_reactions)
        if self.arch.aggr_type == "mul":
            log_msg = torch.log(msg.abs().clamp_min(LOG_FLOOR))
            return torch.exp(msg.new_zeros(shape).index_add(-1, self.rxn_sub, log_msg))
        return msg.new_zeros(shape).index_add(-1, self.rxn_sub, msg)

    def rate_features(self, c: torch.Tensor, aggregate: torch.Tensor | None = None) -> torch.Tensor:
        """phi_j(c) = softplus(agg_j), the rate of reaction j per unit rate constant: (..., n_reactions).

        ``aggregate``: agg_j already computed by :meth:`aggregate`.
        """
        return F.softplus(self.aggregate(c) if aggregate is None else aggregate)

    def rates(self, c: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """Reaction rates v_j = 10**log_k_j * phi_j(c) (``features``: phi already computed): (..., n_reactions)."""
        return torch.pow(10.0, self.log_k) * (self.rate_features(c) if features is None else features)

    def apply_stoichiometry(self, v: torch.Tensor) -> torch.Tensor:
        """sum_j S_ij v_j from rates v (..., n_reactions): (..., n_metabolites)."""
        flux = self.sto_all * v[..., self.rxn_all]
        return flux.new_zeros((*v.shape[:-1], self.n_metabolites)).index_add(-1, self.met_all, flux)

    def reaction_dcdt(self, c: torch.Tensor) -> torch.Tensor:
        """Reaction part sum_j S_ij v_j(c): (..., n_metabolites)."""
        return self.apply_stoichiometry(self.rates(c))

    def node(self, c: torch.Tensor, a: torch.Tensor | None = None) -> torch.Tensor:
        """MLP_node([c_i, a_i]) for every metabolite: (..., n_metabolites)."""
        a = self.a if a is None else a
        emb = a.expand(*c.shape, a.shape[-1])
        return self.node_func(torch.cat([c.unsqueeze(-1), emb], dim=-1)).squeeze(-1)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        """Full dc/dt = MLP_node + reaction part."""
        return self.node(c) + self.reaction_dcdt(c)

    # --- helpers ----------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.log_k.device

    @property
    def dtype(self) -> torch.dtype:
        return self.log_k.dtype

    @torch.no_grad()
    def log_k_offset(self) -> np.ndarray:
        """n_sub_j * log10(alpha), alpha = |MLP_sub([1, 1])|: removes the k / MLP_sub scale trade-off.

        Only the product of 10**log_k_j and the MLP_sub messages shows in the rates, so log_k is
        compared with true rate constants after this shift (docs/reference.md, rate_constants_R2).
        """
        alpha = self.substrate_func(torch.ones(1, 2, device=self.device, dtype=self.dtype)).abs().item()
        # n_sub_per_rxn is the checkpoint's buffer (substrate edges, at least 1), as the original code uses.
        return self.n_sub_per_rxn.cpu().double().numpy() * np.log10(max(alpha, 1e-30))

    def corrected_log_k(self) -> np.ndarray:
        """log_k_j + n_sub_j * log10(alpha): rate constants on the scale of the true ones."""
        return self.log_k.detach().cpu().double().numpy() + self.log_k_offset()

    def reaction_parameters(self) -> list[nn.Parameter]:
        return [self.log_k, *self.substrate_func.parameters()]

    def homeostasis_parameters(self) -> list[nn.Parameter]:
        return [*self.node_func.parameters(), self.a]

    def freeze_reactions(self) -> MetabolismModel:
        for p in self.reaction_parameters():
            p.requires_grad_(False)
        return self

    def network(self) -> Network:
        """The stoichiometry encoded in this model's edge buffers."""
        sub = (self.met_sub.cpu(), self.rxn_sub.cpu(), self.sto_all[self.sub_to_all].abs().detach().cpu())
        all_ = (self.met_all.cpu(), self.rxn_all.cpu(), self.sto_all.detach().cpu())
        return Network.from_edges(self.n_metabolites, self.n_reactions, sub, all_)


def euler_rollout(model: MetabolismModel, c0: torch.Tensor, n_steps: int, delta_t: float) -> torch.Tensor:
    """Explicit Euler from states c0 (batch, n_met), clamped at 0: (batch, n_steps + 1, n_met)."""
    states = [c0]
    c = c0
    for _ in range(n_steps):
        c = (c + delta_t * model(c)).clamp_min(0.0)
        states.append(c)
    return torch.stack(states, dim=1)


def pick_device(prefer: str | None = None) -> torch.device:
    """cuda when available (or requested), CPU otherwise."""
    if prefer:
        return torch.device(prefer)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
