"""The public API: ``load_model``, ``available_models``, ``parametrize``, ``parametrize_many``,
``TemplateGenerator``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from espaloma_like.molecule import MoleculeGraph, as_molecule_graph
from espaloma_like.nn.model import ParameterModel
from espaloma_like.parametrized import MoleculeFailure, ParametrizationResults, ParametrizedMolecule

_LOADED: dict[str, ParameterModel] = {}


def available_models() -> list[str]:
    """Names of the models shipped with the package, for ``load_model`` / ``parametrize(model=)``:
    ``default``, the functional-form options ``form-*`` and ``sage-fit``."""
    from espaloma_like.nn.checkpoint import available_models as shipped

    return shipped()


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
        # inference in float32, the training precision: twice as fast as float64. Parameters
        # leave the network as float64, charges are equilibrated in float64 (exact net charge)
        # and derived Urey-Bradley lengths recomputed from the float64 bonds and angles
        model = model.float()
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
    provenance = {
        "method": "espaloma_like",
        "model": str(metadata.get("name", "in-memory")),
        "package_version": __version__,
        "lj": "openff-2.2.1 (Sage)",
        "charges": "charge equilibration (model)",
    }
    if model.config.extra_terms:  # the functional form, where it goes beyond the classical one
        provenance["extra_terms"] = ",".join(model.config.extra_terms)
    if "learned_lj" in model.config.extra_terms:  # the nonbonded block holds the learned values
        provenance["lj"] = "learned per atom (model), prior openff-2.2.1 (Sage)"
    if "intramolecular_lj" in model.config.extra_terms:
        provenance["lj"] = ("openff-2.2.1 (Sage); within the molecule learned per atom (model), "
                            "a CustomBondForce correction")
    if "intramolecular_coulomb" in model.config.extra_terms:
        provenance["charges"] += ("; within the molecule Coulomb scaled by learned per-atom "
                                  "factors (a CustomBondForce correction)")
    return provenance


def parametrize_many(
    molecules: Any, model: ParameterModel | str | Path | None = None,
    batch_size: int = 256, errors: Literal["raise", "skip"] = "raise",
    charges: Literal["model", "keep"] = "model",
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
    charges : {"model", "keep"}
        ``"model"`` (default): the model's charges. ``"keep"``: the partial charges the input
        carries (see :func:`parametrize`); a molecule without usable ones is an error.

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
    from espaloma_like.charges import apply_charge_mode, check_charge_mode, user_charges
    from espaloma_like.exceptions import EspalomaLikeError
    from espaloma_like.molecule import iter_molecules

    if errors not in ("raise", "skip"):
        raise ValueError(f"errors must be 'raise' or 'skip', got {errors!r}")
    check_charge_mode(charges)
    network = _model(model)
    graphs: list[tuple[int, MoleculeGraph]] = []
    failures: list[MoleculeFailure] = []
    for index, (name, item) in enumerate(iter_molecules(molecules)):
        if isinstance(item, MoleculeGraph) and charges == "keep":
            try:  # refuse missing or inconsistent charges before any network call
                user_charges(item)
            except EspalomaLikeError as err:
                item = err  # type: ignore[assignment]
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
    if charges == "keep":
        results = [(index, apply_charge_mode(result, charges)) for index, result in results]
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
    return [_in_domain(network, g, p) for g, p in zip(graphs, parameter_sets, strict=True)]


def _in_domain(network: ParameterModel, graph: MoleculeGraph, parameters: Any) -> ParametrizedMolecule:
    """The result, with an :class:`~espaloma_like.domain.OutOfDomainWarning` and the reasons
    in ``domain_warnings`` and the provenance when ``graph`` lies outside the model's domain."""
    from espaloma_like.domain import check_domain

    reasons = check_domain(network, graph)
    if not reasons:
        return ParametrizedMolecule(graph, parameters)
    import dataclasses

    provenance = {**parameters.provenance, "applicability_domain": "outside: " + "; ".join(reasons)}
    return ParametrizedMolecule(graph, dataclasses.replace(parameters, provenance=provenance),
                                domain_warnings=reasons)


def parametrize(molecule: Any, model: ParameterModel | str | Path | None = None,
                charges: Literal["model", "keep"] = "model") -> ParametrizedMolecule:
    """Assign MM parameters to one molecule with the GNN model.

    Parameters
    ----------
    molecule : str, pathlib.Path, rdkit.Chem.Mol, openff.toolkit.Molecule or MoleculeGraph
        A (mapped) SMILES, a molecule file with one molecule, or a molecule object. For a
        mapped SMILES the atom order of every output is the map order. A file with several
        molecules is refused (use :func:`parametrize_many`).
    model : ParameterModel, str or path, optional
        The default shipped model if None.
    charges : {"model", "keep"}
        ``"model"`` (default): the model's charge equilibration. ``"keep"``: the partial
        charges the input carries (an OpenFF Molecule's ``partial_charges``, RDKit atom
        properties ``PartialCharge`` / ``_GasteigerCharge``, mol2 or SDF charges), kept when
        every atom has one and they sum to the formal charge within 1e-3 e.

    Returns
    -------
    ParametrizedMolecule
        ``.parameters``, ``.charges``, ``.to_openmm_system()``, ``.to_system_xml()``,
        ``.to_forcefield_xml()``.

    Raises
    ------
    MoleculeInputError
        The input cannot be read or is not covered (its specific subclass); with
        ``charges="keep"``, it carries no usable partial charges.
    """
    from espaloma_like.charges import apply_charge_mode, check_charge_mode, user_charges

    graph = as_molecule_graph(molecule)
    if check_charge_mode(charges) == "keep":
        user_charges(graph)  # refuse before the network runs
    return apply_charge_mode(_run_network(_model(model), [graph])[0], charges)


class TemplateGenerator:
    """Residue-template generator for ``openmm.app.ForceField`` backed by the model.

    Works with Amber (amber14, amber19) and CHARMM (charmm36) force fields: the ligand's
    template is adapted to the host's 1-4 conventions so that the ligand keeps its own
    energy. Which residues it matched and declined is logged (logger
    ``espaloma_like.export.template_generator``, INFO). A model with term kinds that have no
    ForceField XML form (the default's LJ and Coulomb within the molecule, ``form-class2``,
    ``form-scaled-14``, ``form-torsion-coupling``) works too: the first time such a molecule's
    template is loaded into a force field, the generator registers a force generator on it that
    adds those kinds' forces in every ``createSystem`` (:class:`~espaloma_like.export.
    system_only.SystemOnlyForces`).

    Examples
    --------
    >>> generator = TemplateGenerator(["CC(=O)Nc1ccc(O)cc1"], cache="templates.json")  # +SKIP
    >>> forcefield = openmm.app.ForceField("amber14-all.xml", "amber14/tip3pfb.xml")  # +SKIP
    >>> forcefield.registerTemplateGenerator(generator.generator)      # doctest: +SKIP
    >>> system = forcefield.createSystem(                               # doctest: +SKIP
    ...     topology, residueTemplates=generator.residue_templates(forcefield, topology))
    """

    def __init__(
        self, molecules: Any = (), model: ParameterModel | str | Path | None = None,
        charges: Literal["model", "keep"] = "model", cache: str | Path | None = None,
    ) -> None:
        """Parameters
        ----------
        molecules : iterable or a single input
            Molecules the generator will recognise: any accepted inputs (SMILES, mapped
            SMILES, RDKit, OpenFF, molecule file path, MoleculeGraph), or one of them (a single
            SMILES string is one molecule); a molecule file contributes all its records.
        model : ParameterModel, str or path, optional
            The default shipped model if None.
        charges : {"model", "keep"}
            The model's charges (default) or the partial charges each input carries (see
            :func:`parametrize`).
        cache : str or path, optional
            A JSON file of templates keyed by molecule, model name and version and charge
            mode: read before parametrizing, written (atomically) after.

        Raises
        ------
        MoleculeInputError
            A molecule cannot be read (its specific subclass), or with ``charges="keep"`` it
            has no usable partial charges.
        """
        from espaloma_like.charges import check_charge_mode
        from espaloma_like.export.template_cache import TemplateCache, model_identity
        from espaloma_like.export.template_generator import MoleculeTemplateGenerator

        network = _model(model)
        self.charges = check_charge_mode(charges)
        self._identity = model_identity(network)
        self._inner = MoleculeTemplateGenerator(
            (), lambda graph: parametrize(graph, model=network, charges=self.charges),
            cache=None if cache is None else TemplateCache(cache), cache_key=self._cache_key,
        )
        self.add_molecules(molecules)

    @property
    def model_name(self) -> str:
        """Name of the model (shipped name or checkpoint stem)."""
        return self._identity.name

    @property
    def model_version(self) -> str:
        """Version of the model: its checkpoint's ``version`` or ``sha256:<file hash>``."""
        return self._identity.version

    def _cache_key(self, graph: MoleculeGraph) -> str:
        from espaloma_like.charges import user_charges
        from espaloma_like.export.template_cache import template_key

        kept = user_charges(graph) if self.charges == "keep" else None
        return template_key(self._identity, self.charges, graph.mapped_smiles, kept)

    def add_molecules(self, molecules: Any) -> None:
        """Make more molecules known to the generator (one input, or an iterable of them).

        Raises
        ------
        MoleculeInputError
            As for the constructor; none of ``molecules`` is added then.
        """
        from espaloma_like.charges import user_charges
        from espaloma_like.molecule import iter_molecules

        graphs = []
        for _name, item in iter_molecules(molecules):
            if isinstance(item, Exception):
                raise item
            if self.charges == "keep":
                user_charges(item)
            graphs.append(item)
        self._inner.add_molecules(graphs)

    def generator(self, forcefield: Any, residue: Any) -> bool:
        """The hook for ``ForceField.registerTemplateGenerator``."""
        return self._inner.generator(forcefield, residue)

    def residue_templates(self, forcefield: Any, topology: Any) -> dict[Any, str]:
        """``{residue: template name}`` for the residues of ``topology`` that are known
        molecules, templates loaded into ``forcefield``. Pass it as
        ``createSystem(..., residueTemplates=...)`` so the model's templates are used even where
        the force field has its own (CHARMM ships some drug molecules, paracetamol among
        them, whose templates would otherwise match first and the model never be asked)."""
        return self._inner.residue_templates(forcefield, topology)
