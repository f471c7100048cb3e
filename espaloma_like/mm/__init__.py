"""Differentiable molecular-mechanics energies in PyTorch (OpenMM conventions and units)."""

from espaloma_like.mm.energy import (
    COMPONENTS,
    EnergyBreakdown,
    energy,
    energy_and_forces,
    energy_terms,
)

__all__ = ["COMPONENTS", "EnergyBreakdown", "energy", "energy_and_forces", "energy_terms"]
