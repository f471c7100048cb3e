"""The public API: ``load_model``, ``parametrize``, ``parametrize_many``, ``TemplateGenerator``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from espaloma_like.molecule import MoleculeGraph, as_molecule_graph
from espaloma_like.nn.model import ParameterModel
from espaloma_like.parametrized import MoleculeFailure, ParametrizationResults, ParametrizedMolecule

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
    molecules: Any, model: ParameterModel | str | Path | None = None,
    batch_size: int = 256, errors: Literal["raise", "skip"] = "raise",
) -> ParametrizationResults:
    """Parametrize several molecules in batches; same results as one by one (to 1e-6).

    Parameters
    ----------
    molecules : iterable or a single input
        Accepted molecule inputs (SMILES, mapped SMILES, RDKit, OpenFF, molecule file path,
        MoleculeGraph). A single input counts as one molecule (``"CCO"`` is ethanol, never
        three atoms); a molecule file, alone or as an item, contributes all its records.
    model : ParameterModel, str or path, optional
        A loaded model, a shipped model name, or a checkpoint path; the default model if None.
    batch_size : int
        Molecules per network call.
    errors : {"raise", "skip"}
        ``"raise"`` (default): the first molecule that cannot be read or parametrized raises
        its error and nothing is returned. ``"skip"``: such molecules are left out and
        reported in ``.failures`` of the result; the others are parametrized.

    Returns
    -------
    ParametrizationResults
        A list of :class:`ParametrizedMolecule` in input order, with ``.indices`` (input
        position of each result) and ``.failures`` (list of :class:`MoleculeFailure`: index,
        name, error; empty with ``errors="raise"``).

    Raises
    ------
    MoleculeInputError
        With ``errors="raise"``: an input cannot be read or is not covered (its subclass).
    ValueError
        ``errors`` is neither "raise" nor "skip".
    """
    from espaloma_like.exceptions import EspalomaLikeError
    from espaloma_like.molecule import iter_molecules

    if errors not in ("raise", "skip"):
        raise ValueError(f"errors must be 'raise' or 'skip', got {errors!r}")
    network = _model(model)
    graphs: list[tuple[int, MoleculeGraph]] = []
    failures: list[MoleculeFailure] = []
    for index, (name, item) in enumerate(iter_molecules(molecules)):
        if isinstance(item, MoleculeGraph):
            graphs.append((index, item))
        elif errors == "raise":
            raise item
        else:
            failures.append(MoleculeFailure(index, name, item))
    results: list[tuple[int, ParametrizedMolecule]] = []
    for start in range(0, len(graphs), batch_size):
        chunk = graphs[start : start + batch_size]
        try:
            results.extend(zip([i for i, _ in chunk],
                               _run_network(network, [g for _, g in chunk]), strict=True))
        except EspalomaLikeError as err:
            if errors == "raise":
                raise
            if len(chunk) == 1:
                failures.append(MoleculeFailure(chunk[0][0], chunk[0][1].name, err))
                continue
            for index, graph in chunk:  # find the molecule(s) that failed, keep the others
                try:
                    results.append((index, _run_network(network, [graph])[0]))
                except EspalomaLikeError as single_err:
                    failures.append(MoleculeFailure(index, graph.name, single_err))
    return ParametrizationResults(results, failures)


def _run_network(network: ParameterModel, graphs: list[MoleculeGraph]) -> list[ParametrizedMolecule]:
    """One network call for ``graphs``: their parametrized molecules, in order."""
    import torch

    from espaloma_like.nn.assemble import split_parameter_sets
    from espaloma_like.nn.batch import collate, prepare_molecule

    config = network.config
    first = next(network.parameters())
    prepared = [prepare_molecule(g, config.atom_features, config.bond_features) for g in graphs]
    batch = collate(prepared).to(first.device, first.dtype)
    with torch.inference_mode():
        predicted = network(batch)
    parameter_sets = split_parameter_sets(batch, predicted, prepared, _provenance(network))
    return [ParametrizedMolecule(g, p) for g, p in zip(graphs, parameter_sets, strict=True)]


def parametrize(molecule: Any, model: ParameterModel | str | Path | None = None) -> ParametrizedMolecule:
    """Assign MM parameters to one molecule with the GNN model.

    Parameters
    ----------
    molecule : str, pathlib.Path, rdkit.Chem.Mol, openff.toolkit.Molecule or MoleculeGraph
        A (mapped) SMILES, a molecule file with one molecule, or a molecule object. For a
        mapped SMILES the atom order of every output is the map order. A file with several
        molecules is refused (use :func:`parametrize_many`).
    model : ParameterModel, str or path, optional
        The default shipped model if None.

    Returns
    -------
    ParametrizedMolecule
        ``.parameters``, ``.charges``, ``.to_openmm_system()``, ``.to_system_xml()``,
        ``.to_forcefield_xml()``.

    Raises
    ------
    MoleculeInputError
        The input cannot be read or is not covered (its specific subclass).
    """
    return _run_network(_model(model), [as_molecule_graph(molecule)])[0]


class TemplateGenerator:
    """Residue-template generator for ``openmm.app.ForceField`` backed by the model.

    Examples
    --------
    >>> generator = TemplateGenerator(["CC(=O)Nc1ccc(O)cc1"])          # doctest: +SKIP
    >>> forcefield = openmm.app.ForceField("amber14-all.xml", "amber14/tip3pfb.xml")  # +SKIP
    >>> forcefield.registerTemplateGenerator(generator.generator)      # doctest: +SKIP
    """

    def __init__(
        self, molecules: Any = (), model: ParameterModel | str | Path | None = None
    ) -> None:
        """Parameters
        ----------
        molecules : iterable or a single input
            Molecules the generator will recognise: any accepted inputs, or one of them (a
            single SMILES string is one molecule); a molecule file contributes all its records.
        model : ParameterModel, str or path, optional
            The default shipped model if None.

        Raises
        ------
        MoleculeInputError
            A molecule cannot be read (its specific subclass).
        """
        from espaloma_like.export.template_generator import MoleculeTemplateGenerator

        network = _model(model)
        self._inner = MoleculeTemplateGenerator(
            molecules, lambda graph: parametrize(graph, model=network)
        )

    def add_molecules(self, molecules: Any) -> None:
        """Make more molecules known to the generator (one input, or an iterable of them)."""
        self._inner.add_molecules(molecules)

    def generator(self, forcefield: Any, residue: Any) -> bool:
        """The hook for ``ForceField.registerTemplateGenerator``."""
        return self._inner.generator(forcefield, residue)
