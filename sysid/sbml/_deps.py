"""Lazy imports of the optional SBML libraries (the ``sysid[sbml]`` extra)."""

from __future__ import annotations

from types import ModuleType

from sysid.errors import SysidInputError

INSTALL_HINT = 'pip install "sysid[sbml]"'


def _import(name: str, package: str) -> ModuleType:
    try:
        return __import__(name)
    except ImportError:
        raise SysidInputError(f"SBML support needs {package}, which is not installed: {INSTALL_HINT}") from None


def libsbml() -> ModuleType:
    return _import("libsbml", "python-libsbml")


def roadrunner() -> ModuleType:
    module = _import("roadrunner", "libroadrunner")
    module.Logger.setLevel(module.Logger.LOG_ERROR)  # roadrunner prints integrator warnings by default
    return module
