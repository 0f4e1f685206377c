"""Ground-truth simulators: networks, kinetics and homeostasis, integrated to datasets."""

from sysid.simulation.euler import simulate

__all__ = ["simulate"]
