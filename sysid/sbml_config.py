"""The ``sbml`` config section: ground truth from an SBML model (``sysid simulate --sbml``).

Kept beside :mod:`sysid.config`, which holds it as ``Config.sbml``; see docs/sbml.md and docs/reference.md.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass

from sysid.errors import SysidInputError


@dataclass(frozen=True)
class SbmlConfig:
    """Ground truth from an SBML model (``sysid simulate --sbml``); see docs/sbml.md.

    Times are in the model's own time unit. Empty ``lambda_per_type`` and
    ``delta_t`` 0 are scaled to the model: lambda_t * tau and delta_t / tau take
    fixed values, tau the median turnover time of the species at the initial state.
    """

    lambda_per_type: tuple[float, ...] = ()  # empty: auto from the turnover time
    n_metabolite_types: int = 2
    n_experiments: int = 4
    initial_perturbation_sd: float = 0.3  # sd of log(c0 / model's c0)
    n_frames: int = 2000
    delta_t: float = 0.0  # 0: auto from the turnover time
    measurement_noise_level: float = 0.0  # relative: c * (1 + level * N(0, 1))
    seed: int = 42

    def __post_init__(self) -> None:
        for key in ("n_metabolite_types", "n_experiments", "n_frames"):
            if getattr(self, key) <= 0:
                _bad(key, f"is {getattr(self, key)}", "use a positive value")
        if self.lambda_per_type and len(self.lambda_per_type) != self.n_metabolite_types:
            _bad("lambda_per_type", f"has {len(self.lambda_per_type)} values but n_metabolite_types is "
                 f"{self.n_metabolite_types}", "give one value per type or leave it empty for the automatic scale")
        if any(v < 0 for v in self.lambda_per_type):
            _bad("lambda_per_type", "has a negative value", "use rates >= 0")
        for key in ("initial_perturbation_sd", "delta_t", "measurement_noise_level"):
            if getattr(self, key) < 0:
                _bad(key, "is negative", "use a value >= 0")


def _bad(key: str, problem: str, fix: str) -> typing.NoReturn:
    raise SysidInputError(f"config sbml.{key} {problem}: {fix}")
