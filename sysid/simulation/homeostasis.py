"""Homeostatic regulation laws h_t(c) of the simulator, one form for all types with parameters per type.

| form         | h_t(c)                                   | parameters per type                 |
|--------------|------------------------------------------|-------------------------------------|
| ``linear``   | -lambda_t (c - cb_t)                     | lambda, baseline                    |
| ``saturating`` | -lambda_t K_t tanh((c - cb_t) / K_t)   | lambda, baseline, scale (K)         |
| ``hill``     | v_t / (1 + (c / K_t)^n_t) - d_t c        | vmax (v), scale (K), hill (n), decay (d) |

This module imports only numpy and :mod:`sysid.errors`, so the config, the
simulator and the truth can all use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import brentq

from sysid.errors import SysidInputError

FORMS = ("linear", "saturating", "hill")
# the parameters of each form; parameter NAME is the config key simulation.homeostatic_NAME_per_type
FORM_PARAMETERS = {
    "linear": ("lambda", "baseline"),
    "saturating": ("lambda", "baseline", "scale"),
    "hill": ("vmax", "scale", "hill", "decay"),
}
POSITIVE = ("scale", "hill")  # must be > 0; lambda, vmax and decay must be >= 0; baseline is free


def config_key(name: str) -> str:
    return f"simulation.homeostatic_{name}_per_type"


def config_parameters(cfg) -> dict[str, tuple[float, ...]]:
    """The per-type parameters of a SimulationConfig by name (lambda, baseline, scale, vmax, hill, decay)."""
    return {n: getattr(cfg, f"homeostatic_{n}_per_type") for n in ("lambda", "baseline", "scale", "vmax", "hill",
                                                                     "decay")}


def check_parameters(form: str, n_types: int, params: dict[str, tuple[float, ...]]) -> None:
    """Raise a one-line SysidInputError if ``params`` do not define ``form`` for ``n_types`` types."""
    if form not in FORMS:
        raise SysidInputError(f"config simulation.homeostasis_form is {form!r}: use one of {', '.join(FORMS)}")
    for name in FORM_PARAMETERS[form]:
        values = params.get(name, ())
        key = config_key(name)
        if len(values) == 0:
            raise SysidInputError(f"config {key} is missing but homeostasis_form {form!r} needs it: "
                                  f"give one value per type (docs/reference.md lists defaults)")
        if len(values) != n_types:
            raise SysidInputError(f"config {key} has {len(values)} values but n_metabolite_types is {n_types}: "
                                  "give one value per type")
        if name in POSITIVE and any(v <= 0 for v in values):
            raise SysidInputError(f"config {key} has a value <= 0: use positive values")
        if name != "baseline" and any(v < 0 for v in values):
            raise SysidInputError(f"config {key} has a negative value: use values >= 0")


@dataclass(frozen=True, eq=False)
class HomeostasisLaw:
    """The true regulation h_t(c) of every type: a form and its parameters per type (arrays)."""

    form: str
    params: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(next(iter(self.params.values()))) if self.params else 0
        check_parameters(self.form, n, {k: tuple(np.asarray(v, float)) for k, v in self.params.items()})

    @property
    def n_types(self) -> int:
        return len(self.params[FORM_PARAMETERS[self.form][0]])

    def _p(self, name: str, types) -> np.ndarray:
        return np.asarray(self.params[name], np.float64)[types]

    def rates(self, c: np.ndarray, types: np.ndarray) -> np.ndarray:
        """h_{types[i]}(c[..., i]) for concentrations c of shape (..., n_metabolites)."""
        if self.form == "linear":
            lam, cb = self._p("lambda", types), self._p("baseline", types)
            return -lam * (c - cb)
        if self.form == "saturating":
            lam, cb, k = self._p("lambda", types), self._p("baseline", types), self._p("scale", types)
            return -lam * k * np.tanh((c - cb) / k)
        v, k, n, d = (self._p(name, types) for name in ("vmax", "scale", "hill", "decay"))
        return v / (1.0 + (np.maximum(c, 0.0) / k) ** n) - d * c

    def curve(self, t: int, c: np.ndarray) -> np.ndarray:
        """h_t(c) of one type over concentrations c."""
        c = np.asarray(c, np.float64)
        return self.rates(c[..., None], np.array([t]))[..., 0]

    def set_points(self) -> np.ndarray:
        """c* with h_t(c*) = 0 per type (the baseline for linear and saturating laws); nan if there is none."""
        if self.form != "hill":
            return np.asarray(self.params["baseline"], np.float64)
        out = np.full(self.n_types, np.nan)
        for t in range(self.n_types):
            hi = 1.0
            while self.curve(t, np.array(hi)) >= 0 and hi < 1e9:
                hi *= 2.0
            if self.curve(t, np.array(0.0)) > 0 > self.curve(t, np.array(hi)):
                out[t] = brentq(lambda c, t=t: float(self.curve(t, np.array(c))), 0.0, hi, xtol=1e-12)
        return out

    def linearisation(self) -> tuple[np.ndarray, np.ndarray]:
        """(lambda_t, c*_t): minus the slope of h_t at its set point, and the set point.

        Exact for the linear form; for the others the line -lambda (c - c*) is the law's tangent at c*.
        """
        if self.form in ("linear", "saturating"):
            return np.asarray(self.params["lambda"], np.float64), self.set_points()
        c = self.set_points()
        v, k, n, d = (np.asarray(self.params[name], np.float64) for name in ("vmax", "scale", "hill", "decay"))
        u = (c / k) ** n
        slope = -v * n * u / (c * (1.0 + u) ** 2) - d
        return -slope, c

    def to_json(self) -> dict:
        return {"form": self.form, **{k: np.asarray(v, float).tolist() for k, v in self.params.items()}}

    @classmethod
    def from_json(cls, data: dict) -> HomeostasisLaw:
        form = data.get("form")
        if form not in FORMS:
            raise SysidInputError(f"truth.json homeostasis form is {form!r}: use one of {', '.join(FORMS)}")
        return cls(form, {k: np.asarray(data[k], np.float64) for k in FORM_PARAMETERS[form] if k in data})

    @classmethod
    def linear(cls, lambdas: np.ndarray, baselines: np.ndarray) -> HomeostasisLaw:
        return cls("linear", {"lambda": np.asarray(lambdas, np.float64), "baseline": np.asarray(baselines, np.float64)})
