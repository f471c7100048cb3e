"""Helpers for the protein-ligand System tests: a small peptide, energies, MD."""

from __future__ import annotations

from typing import Any

import numpy as np

HEAVY_ATOMS = {0: (0, "N"), 1: (0, "CA"), 2: (0, "CB"), 3: (0, "C"), 4: (0, "O"),
               5: (1, "N"), 6: (1, "CA"), 7: (1, "CB"), 8: (1, "C"), 9: (1, "O"), 10: (1, "OXT")}


def dialanine() -> tuple[Any, np.ndarray]:
    """Zwitterionic ALA-ALA: an OpenMM Topology (two ALA residues, PDB atom names, bonds) and
    (N, 3) positions in nm from an MMFF-relaxed RDKit conformer. Amber matches it as NALA +
    CALA, CHARMM as ALA with its NTER / CTER patches."""
    import openmm.app as app
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles("[NH3+][C@@H](C)C(=O)N[C@@H](C)C(=O)[O-]"))
    AllChem.EmbedMolecule(mol, randomSeed=7)
    AllChem.MMFFOptimizeMolecule(mol)
    labels: dict[int, tuple[int, str]] = {}
    counts: dict[int, int] = {}
    for atom in mol.GetAtoms():
        i = atom.GetIdx()
        if i in HEAVY_ATOMS:
            labels[i] = HEAVY_ATOMS[i]
            continue
        parent = atom.GetNeighbors()[0].GetIdx()
        residue, name = HEAVY_ATOMS[parent]
        counts[parent] = counts.get(parent, 0) + 1
        labels[i] = (residue, f"H{name[1:]}{counts[parent]}")
    order = sorted(labels, key=lambda i: (labels[i][0], i))
    topology = app.Topology()
    chain = topology.addChain()
    residues = [topology.addResidue("ALA", chain), topology.addResidue("ALA", chain)]
    atoms = {}
    for i in order:
        residue, name = labels[i]
        element = app.Element.getByAtomicNumber(mol.GetAtomWithIdx(i).GetAtomicNum())
        atoms[i] = topology.addAtom(name, element, residues[residue])
    for bond in mol.GetBonds():
        topology.addBond(atoms[bond.GetBeginAtomIdx()], atoms[bond.GetEndAtomIdx()])
    return topology, mol.GetConformer().GetPositions()[order] * 0.1


def energy(system: Any, positions: Any, box: Any = None) -> float:
    """Potential energy, kJ/mol, on the Reference platform."""
    import openmm
    from openmm import unit

    context = openmm.Context(system, openmm.VerletIntegrator(0.001),
                             openmm.Platform.getPlatformByName("Reference"))
    if box is not None:
        context.setPeriodicBoxVectors(*box)
    context.setPositions(positions)
    return float(context.getState(getEnergy=True).getPotentialEnergy()
                 .value_in_unit(unit.kilojoule_per_mole))


def run_md(topology: Any, system: Any, positions: Any, steps: int) -> tuple[float, float]:
    """Minimize (100 iterations), then ``steps`` of Langevin MD at 300 K, 2 fs (4 fs with
    hydrogen mass repartitioning is the user's choice): (energy after minimization, after MD),
    kJ/mol."""
    import openmm
    import openmm.app as app
    from openmm import unit

    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond,
                                                 0.002 * unit.picoseconds)
    simulation = app.Simulation(topology, system, integrator,
                                openmm.Platform.getPlatformByName("CPU"), {"Threads": "2"})
    simulation.context.setPositions(positions)
    simulation.minimizeEnergy(maxIterations=100)
    start = simulation.context.getState(getEnergy=True).getPotentialEnergy()
    simulation.step(steps)
    end = simulation.context.getState(getEnergy=True).getPotentialEnergy()
    return (start.value_in_unit(unit.kilojoule_per_mole), end.value_in_unit(unit.kilojoule_per_mole))
