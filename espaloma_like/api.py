"""The public API: ``load_model``, ``parametrize``, ``parametrize_many``, ``TemplateGenerator``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from espaloma_like.molecule import MoleculeGraph, as_molecule_graph
from espaloma_like.nn.model import ParameterModel
from espaloma_like.parametrized import ParametrizedMolecule

_LOADED: dict[str, ParameterModel] = {}


def load_model(name_or_path: str | Path | None = None) -> ParameterModel:
    """Load a shipped model by name (the default when ``None``) or a checkpoint file.

    Models are cached per name/path, so repeated calls are free. Raises
    :class:`~espaloma_like.exceptions.CheckpointError` for unknown names, missing files or
    unknown checkpoint format versions.
    """
    from espaloma_like.nn.checkpoint import load_checkpoint, resolve_model_path

    key = str(resolve_model_path(name_or_path).resolve())
    if key not in _LOADED:
        model, metadata = load_checkpoint(key)
        # inference in float64: results independent of batch composition to ~1e-12
        model = model.double()
        model.metadata = metadata  # type: ignore[assignment]
        _LOADED[key] = model
    return _LOADED[key]


def _model(model: ParameterModel | str | Path | None) -> ParameterModel:
    if isinstance(model, ParameterModel):
        return model
    return load_model(model)


def _provenance(model: ParameterModel) -> dict[str, str]:
    from espaloma_like import __version__

    metadata = getattr(model, "metadata", {}) or {}
    return {
        "method": "espaloma_like",
        "model": str(metadata.get("name", "in-memory")),
        "package_version": __version__,
        "lj": "openff-2.2.1 (Sage)",
        "charges": "charge equilibration (model)",
    }


def parametrize_many(
    molecules: Iterable[Any], model: ParameterModel | str | Path | None = None,
    batch_size: int = 256,
) -> list[ParametrizedMolecule]:
    """Parametrize several molecules in batches; same results as one by one (to 1e-6).

    Parameters
    ----------
    molecules : iterable
        Any accepted molecule inputs (SMILES, mapped SMILES, RDKit, OpenFF, SDF path, graph).
    model : ParameterModel, str or path, optional
        A loaded model, a shipped model name, or a checkpoint path; the default model if None.
    batch_size : int
        Molecules per network call.
    """
    import torch

    from espaloma_like.nn.assemble import split_parameter_sets
    from espaloma_like.nn.batch import collate, prepare_molecule

    network = _model(model)
    config = network.config
    graphs: list[MoleculeGraph] = [as_molecule_graph(m) for m in molecules]
    provenance = _provenance(network)
    first = next(network.parameters())
    device, dtype = first.device, first.dtype
    results: list[ParametrizedMolecule] = []
    for start in range(0, len(graphs), batch_size):
        chunk = graphs[start : start + batch_size]
        prepared = [prepare_molecule(g, config.atom_features, config.bond_features) for g in chunk]
        batch = collate(prepared).to(device, dtype)
        with torch.inference_mode():
            predicted = network(batch)
        for graph, parameters in zip(
            chunk, split_parameter_sets(batch, predicted, prepared, provenance), strict=True
        ):
            results.append(ParametrizedMolecule(graph, parameters))
    return results


def parametrize(molecule: Any, model: ParameterModel | str | Path | None = None) -> ParametrizedMolecule:
    """Assign MM parameters to one molecule with the GNN model.

    Parameters
    ----------
    molecule : str, pathlib.Path, rdkit.Chem.Mol, openff.toolkit.Molecule or MoleculeGraph
        A (mapped) SMILES, a molecule file with one molecule, or a molecule object. For a
        mapped SMILES the atom order of every output is the map order.
    model : ParameterModel, str or path, optional
        The default shipped model if None.

    Returns
    -------
    ParametrizedMolecule
        ``.parameters``, ``.charges``, ``.to_openmm_system()``, ``.to_system_xml()``,
        ``.to_forcefield_xml()``.
    """
    return parametrize_many([molecule], model)[0]


class TemplateGenerator:
    """Residue-template generator for ``openmm.app.ForceField`` backed by the model.

    Examples
    --------
    >>> generator = TemplateGenerator(["CC(=O)Nc1ccc(O)cc1"])          # doctest: +SKIP
    >>> forcefield = openmm.app.ForceField("amber14-all.xml", "amber14/tip3pfb.xml")  # +SKIP
    >>> forcefield.registerTemplateGenerator(generator.generator)      # doctest: +SKIP
    """

    def __init__(
        self, molecules: Sequence[Any] = (), model: ParameterModel | str | Path | None = None
    ) -> None:
        from espaloma_like.export.template_generator import MoleculeTemplateGenerator

        network = _model(model)
        self._inner = MoleculeTemplateGenerator(
            molecules, lambda graph: parametrize(graph, model=network)
        )

    def add_molecules(self, molecules: Iterable[Any]) -> None:
        """Make more molecules known to the generator."""
        self._inner.add_molecules(molecules)

    def generator(self, forcefield: Any, residue: Any) -> bool:
        """The hook for ``ForceField.registerTemplateGenerator``."""
        return self._inner.generator(forcefield, residue)
