"""QM datasets for training: SPICE-format HDF5 -> prepared molecules with conformations.

Splits are by molecule, never by conformation: the held-out split recorded in the file
(``metadata["split"] == "held_out"``, a scaffold split made at build time) is kept apart, and a
validation set is carved from the rest by a stable hash of the SMILES.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from espaloma_like.data.split import stable_fraction
from espaloma_like.molecule import MoleculeGraph
from espaloma_like.nn.batch import PreparedMolecule, prepare_molecule
from espaloma_like.nn.model import ModelConfig
from espaloma_like.training.config import DataFile
from espaloma_like.training.geometry_targets import GeometryTarget


@dataclass(frozen=True)
class TrainingMolecule:
    """One molecule with its QM data, in the canonical atom order of ``prepared``.

    Attributes
    ----------
    prepared : PreparedMolecule
    conformations : np.ndarray
        (C, N, 3) nm, canonical atom order.
    energies : np.ndarray
        (C,) kJ/mol.
    forces : np.ndarray
        (C, N, 3) kJ/mol/nm, canonical atom order.
    charges : np.ndarray or None
        (N,) reference (AM1-BCC) charges, canonical order.
    name, subset, split : str
    kinds : tuple of str
        Origin of each conformation ("etkdg", "md500K", "scan:...") when recorded.
    energy_weight, force_weight : float
        Multipliers of the loss's energy and force weights for this molecule (per source file:
        multi-fidelity training).
    sampling_weight : float
        Relative chance of being drawn into a batch.
    """

    prepared: PreparedMolecule
    conformations: np.ndarray
    energies: np.ndarray
    forces: np.ndarray
    charges: np.ndarray | None
    name: str
    subset: str
    split: str
    kinds: tuple[str, ...] = ()
    energy_weight: float = 1.0
    force_weight: float = 1.0
    sampling_weight: float = 1.0
    #: rotatable bonds ``(j, k)`` (T, 2) and the atoms turning with ``k`` (P, 2): rows of
    #: (bond index, atom), canonical order; the loss's torques about these axes
    rotor_axes: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))
    rotor_members: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))
    #: linearized MM minima of this molecule's DFT minima (``loss.geometry_weight``), if any
    geometry: GeometryTarget | None = None

    @property
    def n_conformations(self) -> int:
        return int(self.energies.shape[0])


#: Default limits of :func:`plausible_conformations`: raw ETKDG embeddings occasionally clash
#: (1000+ kcal/mol above the minimum, forces of thousands of kcal/mol/A); such points say nothing
#: about the potential near thermal geometries and would dominate squared-error losses.
MAX_RELATIVE_ENERGY_KCAL = 150.0
MAX_FORCE_KCAL_PER_A = 300.0


def plausible_conformations(
    energies: np.ndarray, forces: np.ndarray,
    max_relative_energy_kcal: float | None = MAX_RELATIVE_ENERGY_KCAL,
    max_force_kcal_per_a: float | None = MAX_FORCE_KCAL_PER_A,
) -> np.ndarray:
    """(C,) bool mask of conformations within the energy and force limits.

    Parameters
    ----------
    energies : np.ndarray
        (C,) kJ/mol; compared with the lowest energy of the molecule.
    forces : np.ndarray
        (C, N, 3) kJ/mol/nm; the largest component is compared with the limit.
    max_relative_energy_kcal, max_force_kcal_per_a : float or None
        Limits in kcal/mol and kcal/mol/A; None switches a limit off.
    """
    from espaloma_like.units import KCAL_TO_KJ, KJ_PER_MOL_NM_TO_KCAL_PER_MOL_A

    keep = np.ones(energies.shape[0], dtype=bool)
    if max_relative_energy_kcal is not None and len(energies):
        keep &= (energies - energies.min()) <= max_relative_energy_kcal * KCAL_TO_KJ
    if max_force_kcal_per_a is not None and len(energies):
        largest = np.abs(forces).reshape(len(energies), -1).max(axis=1)
        keep &= largest * KJ_PER_MOL_NM_TO_KCAL_PER_MOL_A <= max_force_kcal_per_a
    return keep


#: Bond angles above this (degrees) at atoms that are not linear centres mark a broken embedding.
MAX_ANGLE_DEGREES = 175.0


def lennard_jones_clashes(graph: MoleculeGraph, conformations: np.ndarray,
                          max_force_kcal_per_a: float = MAX_FORCE_KCAL_PER_A) -> np.ndarray:
    """(C,) bool: broken geometries that no MM parameters can (or should) fit.

    Two cases, both seen in raw ETKDG embeddings of strained rings and macrocycles:

    * Sage's fixed Lennard-Jones alone exceeds the force limit (two atoms nearly on top of each
      other): LJ is not learned, so no bonded parameters can fit it;
    * a bond angle above 175 degrees at an atom that is not a linear (sp) centre: every torsion
      through it is nearly undefined and its forces diverge as 1/sin(angle).

    Such conformations are left out of training and of the evaluation of every method alike.
    """
    import torch

    from espaloma_like.baselines.sage_lj import sage_lj_fast
    from espaloma_like.mm.energy import lennard_jones_energy
    from espaloma_like.mm.geometry import angles
    from espaloma_like.terms import enumerate_terms, linear_centres
    from espaloma_like.units import KJ_PER_MOL_NM_TO_KCAL_PER_MOL_A

    sigma, epsilon = (torch.as_tensor(a) for a in sage_lj_fast(graph))
    terms = enumerate_terms(graph)
    xyz = torch.tensor(np.asarray(conformations, dtype=np.float64), requires_grad=True)
    total = (lennard_jones_energy(xyz, torch.as_tensor(terms.pairs_full), sigma, epsilon, 1.0).sum()
             + lennard_jones_energy(xyz, torch.as_tensor(terms.pairs_14), sigma, epsilon, 0.5).sum())
    (gradient,) = torch.autograd.grad(total, xyz)
    largest = gradient.abs().reshape(len(conformations), -1).max(dim=1).values.numpy()
    clash = largest * KJ_PER_MOL_NM_TO_KCAL_PER_MOL_A > max_force_kcal_per_a
    bent = ~linear_centres(graph)[terms.angles[:, 1]]
    if bent.any():
        theta = angles(xyz.detach(), torch.as_tensor(terms.angles[bent])).numpy()
        clash |= np.degrees(theta).max(axis=1) > MAX_ANGLE_DEGREES
    return clash


def rotors(prepared: PreparedMolecule, terminal: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Rotatable bonds of a prepared molecule and, for each, the atoms of its smaller side.

    Parameters
    ----------
    prepared : PreparedMolecule
    terminal : bool
        Also the terminal rotors (:func:`terminal_rotor_bonds`: -OH, -NH2, -SH, -CH3, -CF3,
        ...), whose turning side is the terminal atoms alone. Where their hydrogens point is
        part of the geometry a minimization must keep (polar hydrogens carry a fifth of the
        default's all-atom RMSD, ``benchmarks/rmsd_heavy_atoms.py``).

    Returns
    -------
    axes : np.ndarray
        (T, 2) int64 canonical atoms ``(j, k)`` of each rotatable bond
        (:func:`espaloma_like.data.sampling.rotatable_torsions`), ``k`` on the smaller side.
    members : np.ndarray
        (P, 2) int64 rows ``(t, i)``: atom ``i`` turns with ``k`` when bond ``t`` rotates.
    """
    from espaloma_like.data.sampling import rotatable_torsions

    canonical = np.argsort(prepared.to_input)
    n = prepared.n_atoms
    neighbours: list[list[int]] = [[] for _ in range(n)]
    for a, b in prepared.bonds.tolist():
        neighbours[a].append(b)
        neighbours[b].append(a)

    axes: list[tuple[int, int]] = []
    members: list[tuple[int, int]] = []
    bonds = [(j, k) for _, j, k, _ in rotatable_torsions(prepared.graph)]
    if terminal:  # each bond once (both ends of methanol's C-O are terminal rotors)
        taken = {frozenset(b) for b in bonds}
        for bond in terminal_rotor_bonds(prepared.graph):
            if frozenset(bond) not in taken:
                taken.add(frozenset(bond))
                bonds.append(bond)
    for j_in, k_in in bonds:
        j, k = int(canonical[j_in]), int(canonical[k_in])
        seen, stack = {k}, [k]
        while stack:
            atom = stack.pop()
            for other in neighbours[atom]:
                if other not in seen and not (atom == k and other == j):
                    seen.add(other)
                    stack.append(other)
        if j in seen:  # in a ring after all: no rigid rotation
            continue
        if len(seen) > n - len(seen):
            seen = set(range(n)) - seen
            j, k = k, j
        members += [(len(axes), i) for i in sorted(seen)]
        axes.append((j, k))
    return (np.array(axes, dtype=np.int64).reshape(-1, 2),
            np.array(members, dtype=np.int64).reshape(-1, 2))


def terminal_rotor_bonds(graph: MoleculeGraph) -> list[tuple[int, int]]:
    """Bonds ``(j, k)`` (input atom order) about which only terminal atoms bonded to ``k`` turn.

    Single, non-ring bonds whose end ``k`` carries one or more terminal atoms (H, halogens) and
    nothing else besides ``j``, while ``j`` has another neighbour: -OH, -SH, -NH2, -NH3+, -CH3,
    -CF3. ``k`` must not be linear (no dihedral there). These are the rotors
    :func:`~espaloma_like.data.sampling.rotatable_torsions` leaves out.
    """
    from rdkit import Chem

    out = []
    for bond in graph.rdkit_mol.GetBonds():
        if bond.GetBondType() != Chem.BondType.SINGLE or bond.IsInRing():
            continue
        for j_atom, k_atom in ((bond.GetBeginAtom(), bond.GetEndAtom()),
                               (bond.GetEndAtom(), bond.GetBeginAtom())):
            j, k = j_atom.GetIdx(), k_atom.GetIdx()
            others = [a for a in k_atom.GetNeighbors() if a.GetIdx() != j]
            if (others and all(a.GetDegree() == 1 for a in others) and j_atom.GetDegree() > 1
                    and k_atom.GetHybridization() != Chem.HybridizationType.SP):
                out.append((j, k))
    return out


def load_training_molecules(
    paths: Sequence[str | Path | DataFile], config: ModelConfig, max_conformations: int | None = None,
    seed: int = 0, skipped: list[str] | None = None,
    max_relative_energy_kcal: float | None = MAX_RELATIVE_ENERGY_KCAL,
    max_force_kcal_per_a: float | None = MAX_FORCE_KCAL_PER_A,
    terminal_rotors: bool = False,
) -> list[TrainingMolecule]:
    """Read QM files (any format of :func:`~espaloma_like.data.readers.read_qm_records`).

    Records the model cannot use (unsupported elements, several fragments, no mapped SMILES) are
    skipped and, if ``skipped`` is given, listed there with the reason. Conformations outside
    the limits of :func:`plausible_conformations` are left out (and counted in ``skipped``).
    Optimized minima (``force_label == "zero_at_minimum"``) have no forces to check and keep
    every conformation; a single minimum is kept too (its zero-force target still teaches).
    A :class:`DataFile` entry's weights are carried by each of its molecules.
    ``terminal_rotors`` adds the terminal rotors to each molecule's torque axes (:func:`rotors`).
    """
    import json

    from espaloma_like.data.readers import read_qm_records
    from espaloma_like.data.records import record_graph

    rng = np.random.default_rng(seed)
    out = []
    for entry in paths:
        source = entry if isinstance(entry, DataFile) else DataFile(path=str(entry))
        for record in read_qm_records(source.path, skipped):
            try:
                graph = record_graph(record)
                prepared = prepare_molecule(graph, config.atom_features, config.bond_features)
            except Exception as err:  # skipped, and said so
                if skipped is not None:
                    skipped.append(f"{record.name}: {type(err).__name__}: {err}")
                continue
            minima = record.metadata.get("force_label") == "zero_at_minimum"
            if minima:
                plausible = np.ones(record.n_conformations, dtype=bool)
            else:
                plausible = plausible_conformations(record.energies, record.forces,
                                                    max_relative_energy_kcal, max_force_kcal_per_a)
                if max_force_kcal_per_a is not None:
                    plausible &= ~lennard_jones_clashes(graph, record.conformations,
                                                        max_force_kcal_per_a)
            if skipped is not None and not plausible.all():
                skipped.append(f"{record.name}: {int((~plausible).sum())} of "
                               f"{record.n_conformations} conformations outside the energy/force limits")
            keep = np.flatnonzero(plausible)
            if len(keep) < (1 if minima else 2):
                if skipped is not None:
                    skipped.append(f"{record.name}: fewer than 2 plausible conformations")
                continue
            if max_conformations is not None and len(keep) > max_conformations:
                keep = np.sort(rng.choice(keep, size=max_conformations, replace=False))
            order = prepared.to_input
            axes, members = rotors(prepared, terminal=terminal_rotors)
            kinds = tuple(json.loads(record.metadata.get("kinds", "[]")))
            out.append(TrainingMolecule(
                prepared=prepared,
                conformations=np.asarray(record.conformations[keep][:, order]),
                energies=np.asarray(record.energies[keep]),
                forces=np.asarray(record.forces[keep][:, order]),
                charges=None if record.charges is None else np.asarray(record.charges)[order],
                name=record.name,
                subset=record.subset,
                split=record.metadata.get("split", "train"),
                kinds=tuple(kinds[i] for i in keep) if len(kinds) == record.n_conformations else (),
                energy_weight=source.energy_weight,
                rotor_axes=axes, rotor_members=members,
                force_weight=source.force_weight,
                sampling_weight=source.sampling_weight * (
                    source.charged_sampling_weight if graph.total_charge != 0 else 1.0),
            ))
    return out


def split_molecules(
    molecules: Iterable[TrainingMolecule], validation_fraction: float, salt: str = "validation"
) -> tuple[list[TrainingMolecule], list[TrainingMolecule], list[TrainingMolecule]]:
    """(train, validation, held_out) by molecule: the file's recorded split, then a hash split.

    A molecule whose record says ``held_out`` or ``validation`` (a scaffold split recorded with
    the data, e.g. the industry set's) stays there; the rest are split by a hash of the SMILES.
    """
    train, validation, held_out = [], [], []
    for m in molecules:
        if m.split == "held_out":
            held_out.append(m)
        elif m.split == "validation":
            validation.append(m)
        elif stable_fraction(m.prepared.graph.smiles, salt) < validation_fraction:
            validation.append(m)
        else:
            train.append(m)
    return train, validation, held_out


def attach_geometry_targets(molecules: Sequence[TrainingMolecule], targets: Iterable[GeometryTarget]
                            ) -> list[TrainingMolecule]:
    """``molecules`` with each :class:`GeometryTarget` attached to the molecule of its name.

    Raises
    ------
    TrainingSetupError
        A target whose molecule is not among ``molecules``, or whose mapped SMILES or atom
        count differs from that molecule's (a target must never land on another molecule).
    """
    from dataclasses import replace

    from espaloma_like.exceptions import TrainingSetupError

    by_name = {m.name: i for i, m in enumerate(molecules)}
    out = list(molecules)
    for target in targets:
        index = by_name.get(target.name)
        if index is None:
            raise TrainingSetupError(
                f"geometry target {target.name} has no molecule of that name among the training "
                "and validation molecules (built from other data, or from a held-out molecule?)")
        molecule = out[index]
        if (target.mapped_smiles != molecule.prepared.graph.mapped_smiles
                or target.minima.shape[1] != molecule.prepared.n_atoms):
            raise TrainingSetupError(f"geometry target {target.name} does not match the training "
                                     "molecule of that name (SMILES or atom count differ)")
        out[index] = replace(molecule, geometry=target)
    return out
