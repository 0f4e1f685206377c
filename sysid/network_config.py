"""The ``network`` config section: ground truth on a real network topology (``sysid simulate --network``).

Kept beside :mod:`sysid.config`, which holds it as ``Config.network``; see docs/genome.md and
docs/reference.md (section 5). Rate constants, types, homeostasis, frames and the time step come from the
``simulation`` section.
"""

from __future__ import annotations

from dataclasses import dataclass

from sysid.errors import SysidInputError


@dataclass(frozen=True)
class NetworkConfig:
    exchanges: str = "drop"  # "drop" boundary reactions, or "keep" them as constant inflow / first-order outflow
    reference_concentration: float = 5.0  # c_ref of the scaled mass action v = k prod (c_s / c_ref)^|s|
    max_concentration: float = 1e4  # a concentration above this stops the simulation (divergence)
    max_order: float = 12.0  # reactions of higher order (sum of |s|; lumped polymerisation steps) are dropped

    def __post_init__(self) -> None:
        for key in ("reference_concentration", "max_concentration", "max_order"):
            if not getattr(self, key) > 0:
                raise SysidInputError(f"config network.{key} is {getattr(self, key)}: use a positive value")
        if self.exchanges not in ("drop", "keep"):
            raise SysidInputError(f"config network.exchanges is {self.exchanges!r}: use 'drop' or 'keep'")
