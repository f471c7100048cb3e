"""Geometry targets: where a model's minimization of each DFT minimum ends, linearized.

The conformer benchmark minimizes every DFT minimum with the model and measures how far the
MM minimum ``x*`` lands from it (RMSD). A zero-force target at the DFT geometry weighs every
gradient component alike, while what moves ``x*`` is the gradient along the soft coordinates
(a torsion of a long linker, a ring pucker): ``x*`` moves by ``-H^-1 g``. These targets carry
that metric. For one model (the starting model of a fine-tuning) they store, per conformer,
the MM minimum ``x*0``, its deviation from the (symmetry-matched, superposed) DFT minimum and
the softest normal modes of the MM Hessian ``H0`` there. During training the minimum of the
current parameters is predicted to first order,

    x*(theta) - x_DFT ~= (x*0 - x_DFT) - H0^-1 (g(x*0, theta) - g(x*0, theta0)),

whose gradient with respect to the parameters at ``theta0`` is the exact implicit derivative of
the minimization (``dx*/dtheta = -H^-1 dg/dtheta``). Rebuild the targets from a new model to
move the linearization point.

Files are HDF5 (no pickles): one group per molecule, named by the record's name, with the
mapped SMILES as an attribute and the arrays of :class:`GeometryTarget`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from espaloma_like.exceptions import DataFormatError

if TYPE_CHECKING:
    from espaloma_like.data.records import QMRecord
    from espaloma_like.nn.model import ParameterModel

#: curvature floor of the kept modes, kJ/mol/nm^2 (at a minimum all are positive; the softest
#: torsional modes of drug-size molecules sit at 1-20): only guards against dividing by ~0
CURVATURE_FLOOR = 5.0
#: softest modes kept per conformer: the stiffer (angle, bond) modes move the minimum little for
#: the gradient changes a fine-tuning makes, and an exploratory check (not committed) found 24
#: modes predicting as well as all of them
MAX_MODES = 32
FORMAT_VERSION = 1


@dataclass(frozen=True)
class GeometryTarget:
    """One molecule's linearized MM minima, canonical atom order (see module docstring).

    Attributes
    ----------
    name : str
        The QM record's name (matched with the training molecule of that name).
    mapped_smiles : str
        Checked against the training molecule's, so a target never lands on another molecule.
    minima : np.ndarray
        (C, N, 3) nm, ``x*0``: the starting model's MM minima.
    offsets : np.ndarray
        (C, N, 3) nm, ``(x*0 - x_DFT) + H0^-1 g(x*0, theta0)``: the predicted deviation is
        ``offsets - H0^-1 g(x*0, theta)``, equal to ``x*0 - x_DFT`` at the starting parameters
        (the minimizer stops at a small nonzero gradient).
    modes : np.ndarray
        (C, K, 3N) float32, orthonormal soft normal modes of ``H0`` (rigid-body motions
        removed), flattened over (atom, xyz).
    inverse_curvatures : np.ndarray
        (C, K) nm^2 mol/kJ, ``1 / max(eigenvalue, CURVATURE_FLOOR)``.
    rmsd : np.ndarray
        (C,) nm, all-atom RMSD of ``x*0`` from the DFT minimum (symmetry-aware, superposed).
    split : str
        The record's split (``train`` or ``validation``).
    """

    name: str
    mapped_smiles: str
    minima: np.ndarray
    offsets: np.ndarray
    modes: np.ndarray
    inverse_curvatures: np.ndarray
    rmsd: np.ndarray
    split: str = "train"

    @property
    def n_conformations(self) -> int:
        return int(self.minima.shape[0])


def rigid_body_basis(xyz: np.ndarray) -> np.ndarray:
    """(3N, r) orthonormal basis of infinitesimal translations and rotations of ``xyz`` (N, 3)."""
    centred = xyz - xyz.mean(axis=0)
    vectors = []
    for axis in np.eye(3):
        vectors.append(np.tile(axis, (len(xyz), 1)).ravel())
        vectors.append(np.cross(axis, centred).ravel())
    q, r = np.linalg.qr(np.stack(vectors, axis=1))
    return q[:, np.abs(np.diag(r)) > 1e-8 * np.abs(r).max()]


def soft_modes(hessian: np.ndarray, xyz: np.ndarray, max_modes: int = MAX_MODES,
               curvature_floor: float = CURVATURE_FLOOR) -> tuple[np.ndarray, np.ndarray]:
    """Softest internal normal modes of ``hessian`` at ``xyz``.

    Parameters
    ----------
    hessian : np.ndarray
        (3N, 3N) kJ/mol/nm^2.
    xyz : np.ndarray
        (N, 3) nm, where it was computed (for the rigid-body motions, projected out).
    max_modes : int
    curvature_floor : float
        kJ/mol/nm^2; softer (or negative) curvatures count as this.

    Returns
    -------
    modes : np.ndarray
        (K, 3N) orthonormal, K <= min(max_modes, 3N - 6).
    inverse_curvatures : np.ndarray
        (K,) nm^2 mol/kJ.
    """
    rigid = rigid_body_basis(xyz)
    projector = np.eye(len(hessian)) - rigid @ rigid.T
    projected = projector @ (0.5 * (hessian + hessian.T)) @ projector
    values, vectors = np.linalg.eigh(projected)
    internal = (rigid.T @ vectors) ** 2
    keep = internal.sum(axis=0) < 0.5  # the rigid-body null space sits among the soft values
    values, vectors = values[keep], vectors[:, keep]
    k = min(max_modes, len(values))
    return vectors[:, :k].T.copy(), 1.0 / np.maximum(values[:k], curvature_floor)


def superposed_deviation(mol: Any, reference_xyz: np.ndarray, xyz: np.ndarray
                         ) -> tuple[np.ndarray, float]:
    """``xyz`` minus the reference, symmetry-matched and superposed onto ``xyz``.

    Parameters
    ----------
    mol : rdkit.Chem.Mol
        Explicit hydrogens, atoms in the coordinates' order.
    reference_xyz, xyz : np.ndarray
        (N, 3) nm.

    Returns
    -------
    deviation : np.ndarray
        (N, 3) nm, per atom of ``xyz``.
    rmsd : float
        nm; RDKit's best RMSD over the molecule's symmetries, as the conformer benchmark
        measures it (``GetBestRMS``).
    """
    from rdkit.Chem import rdMolAlign

    from espaloma_like.benchmark.conformers_metrics import _with_coordinates

    rmsd, _transform, atom_map = rdMolAlign.GetBestAlignmentTransform(
        _with_coordinates(mol, xyz * 10.0), _with_coordinates(mol, reference_xyz * 10.0))
    matched = np.empty_like(reference_xyz)
    for probe, ref in atom_map:
        matched[probe] = reference_xyz[ref]
    # Kabsch: rotate the matched reference onto xyz
    a = matched - matched.mean(axis=0)
    b = xyz - xyz.mean(axis=0)
    u, _s, vt = np.linalg.svd(a.T @ b)
    u[:, 2] *= np.sign(np.linalg.det(u @ vt))
    return b - a @ (u @ vt), float(rmsd) / 10.0


def hessian_by_differences(gradient: Any, x: np.ndarray, step: float = 1.0e-5) -> np.ndarray:
    """(3N, 3N) Hessian of an energy by central differences of its analytic gradient.

    ``gradient`` maps (K, N, 3) float64 nm to (K, N, 3) kJ/mol/nm; all 6N displaced copies
    of ``x`` (N, 3) go through it as one batch, which is much faster than 3N backward passes.
    """
    n3 = x.size
    displaced = np.repeat(x.reshape(1, -1), 2 * n3, axis=0)
    displaced[np.arange(n3), np.arange(n3)] += step
    displaced[n3 + np.arange(n3), np.arange(n3)] -= step
    g = gradient(displaced.reshape(2 * n3, -1, 3)).reshape(2 * n3, n3)
    hessian = (g[:n3] - g[n3:]) / (2 * step)
    return 0.5 * (hessian + hessian.T)


def _gradient_function(model: ParameterModel, prepared: Any) -> Any:
    """(K, N, 3) float64 nm, canonical order -> (K, N, 3) MM gradient, kJ/mol/nm."""
    import torch

    from espaloma_like.mm.energy import energy_terms
    from espaloma_like.nn.assemble import batch_parameter_set
    from espaloma_like.nn.batch import collate

    graph = collate([prepared])
    with torch.no_grad():
        parameters = batch_parameter_set(graph, model(graph)).to(dtype=torch.float64)

    def gradient(xyz: np.ndarray) -> np.ndarray:
        x = torch.tensor(xyz, dtype=torch.float64, requires_grad=True)
        energy = energy_terms(parameters, x, graph.atom_molecule, 1).total.sum()
        (g,) = torch.autograd.grad(energy, x)
        return g.numpy()

    return gradient


def build_target(model: ParameterModel, record: QMRecord, conformations: Iterable[int],
                 max_modes: int = MAX_MODES) -> GeometryTarget:
    """Minimize the chosen conformations of ``record`` with ``model``; linearize there.

    Minimization is the conformer benchmark's (OpenMM L-BFGS of the exported System, OpenFF's
    settings), so the targets describe exactly what the benchmark measures.
    """
    from espaloma_like.benchmark.conformers import minimize
    from espaloma_like.data.records import record_graph
    from espaloma_like.export.openmm_system import to_openmm_system
    from espaloma_like.methods import get_method
    from espaloma_like.nn.batch import prepare_molecule

    graph = record_graph(record)
    prepared = prepare_molecule(graph, model.config.atom_features, model.config.bond_features)
    order = prepared.to_input  # canonical i -> input atom order[i]
    system = to_openmm_system(get_method("model").parameters(graph, model=model),
                              masses=graph.masses)
    gradient = _gradient_function(model, prepared)
    minima, offsets, modes, inverse, rmsds = [], [], [], [], []
    for c in conformations:
        dft = np.asarray(record.conformations[c], dtype=np.float64)
        x_min, _ = minimize(system, dft)
        deviation, rmsd = superposed_deviation(graph.rdkit_mol, dft, x_min)
        x = x_min[order]
        g0 = gradient(x[None])[0].ravel()
        v, inv = soft_modes(hessian_by_differences(gradient, x), x, max_modes)
        step = v.T @ (inv * (v @ g0))  # H0^-1 g0 on the kept modes
        minima.append(x_min[order])
        offsets.append(deviation[order] + step.reshape(-1, 3))
        modes.append(v.astype(np.float32))
        inverse.append(inv)
        rmsds.append(rmsd)
    k = min(m.shape[0] for m in modes)
    return GeometryTarget(
        name=record.name, mapped_smiles=graph.mapped_smiles,
        minima=np.stack(minima), offsets=np.stack(offsets),
        modes=np.stack([m[:k] for m in modes]), inverse_curvatures=np.stack([i[:k] for i in inverse]),
        rmsd=np.asarray(rmsds), split=record.metadata.get("split", "train"))


def write_targets(path: str | Path, targets: Iterable[GeometryTarget],
                  attrs: dict[str, Any] | None = None) -> int:
    """Append ``targets`` to the HDF5 file ``path`` (created if missing); returns the count.

    Each molecule's group is written whole or not at all (flushed per molecule), so an
    interrupted build resumes where it stopped (:func:`target_names`).
    """
    import h5py

    count = 0
    with h5py.File(path, "a") as h5:
        h5.attrs.setdefault("format_version", FORMAT_VERSION)
        for key, value in (attrs or {}).items():
            h5.attrs[key] = value
        for t in targets:
            tmp = f"_partial_{t.name}"
            if tmp in h5:
                del h5[tmp]
            group = h5.create_group(tmp)
            group.attrs["mapped_smiles"] = t.mapped_smiles
            group.attrs["split"] = t.split
            for field in ("minima", "offsets", "modes", "inverse_curvatures", "rmsd"):
                group.create_dataset(field, data=getattr(t, field))
            h5.move(tmp, t.name)
            h5.flush()
            count += 1
    return count


def target_names(path: str | Path) -> set[str]:
    """Names of the complete molecules in a targets file (empty if there is none)."""
    import h5py

    if not Path(path).is_file():
        return set()
    with h5py.File(path, "r") as h5:
        return {name for name in h5 if not name.startswith("_partial_")}


def read_targets(path: str | Path) -> Iterator[GeometryTarget]:
    """The targets of an HDF5 file written by :func:`write_targets`, checked for shape.

    Raises
    ------
    DataFormatError
        Not such a file, or arrays of inconsistent shapes.
    """
    import h5py

    try:
        h5 = h5py.File(path, "r")
    except OSError as err:
        raise DataFormatError(f"{path}: not a geometry-targets HDF5 file ({err})") from None
    with h5:
        if h5.attrs.get("format_version") != FORMAT_VERSION:
            raise DataFormatError(f"{path}: not a geometry-targets file of format {FORMAT_VERSION}")
        for name in h5:
            if name.startswith("_partial_"):
                continue
            group = h5[name]
            try:
                target = GeometryTarget(
                    name=name, mapped_smiles=str(group.attrs["mapped_smiles"]),
                    minima=group["minima"][()], offsets=group["offsets"][()],
                    modes=group["modes"][()], inverse_curvatures=group["inverse_curvatures"][()],
                    rmsd=group["rmsd"][()], split=str(group.attrs.get("split", "train")))
            except KeyError as err:
                raise DataFormatError(f"{path}: molecule {name} lacks {err}") from None
            c, n, _ = target.minima.shape
            k = target.inverse_curvatures.shape[-1]
            if (target.offsets.shape != (c, n, 3) or target.modes.shape != (c, k, 3 * n)
                    or target.inverse_curvatures.shape != (c, k) or target.rmsd.shape != (c,)):
                raise DataFormatError(f"{path}: molecule {name} has arrays of inconsistent shapes")
            yield target


def predicted_rmsds(model: ParameterModel, targets: Iterable[GeometryTarget]) -> np.ndarray:
    """Predicted RMSD (A) of every target conformation's MM minimum under ``model``.

    Equal to the stored RMSDs for the model the targets were built with; for a fine-tuned model,
    the first-order estimate of where the benchmark's minimization would end (a training
    diagnostic: it needs no minimization).

    Returns
    -------
    np.ndarray
        (total conformations,) A, targets in the order given.
    """
    import torch

    from espaloma_like.molecule import from_smiles
    from espaloma_like.nn.batch import prepare_molecule
    from espaloma_like.training.loss import GeometryItem, predicted_minimum_rmsd

    out = []
    for target in targets:
        prepared = prepare_molecule(from_smiles(target.mapped_smiles), model.config.atom_features,
                                    model.config.bond_features)
        gradients = _gradient_function(model, prepared)(target.minima)
        items = [GeometryItem(0, torch.as_tensor(target.offsets[c]),
                              torch.as_tensor(target.modes[c], dtype=torch.float64),
                              torch.as_tensor(target.inverse_curvatures[c]))
                 for c in range(target.n_conformations)]
        out += [float(predicted_minimum_rmsd(torch.as_tensor(g), [item])[0])
                for g, item in zip(gradients, items, strict=True)]
    return np.asarray(out)
