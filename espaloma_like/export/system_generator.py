"""``SystemGenerator``: a protein / water force field plus the model's ligands, one call per System.

Modelled on ``openmmforcefields.generators.SystemGenerator``: the same argument names
(``forcefields``, ``small_molecule_forcefield``, ``molecules``, ``forcefield_kwargs``,
``periodic_forcefield_kwargs``, ``nonperiodic_forcefield_kwargs``, ``cache``) and the same
rule for choosing keyword arguments (the periodic ones when the topology has a box). The
model's templates are forced on the ligand residues through ``residueTemplates``, so a force
field's own template for the same molecule (CHARMM ships some) never silently wins.

Models with term kinds that have no ForceField XML form (``form-class2``, ``form-scaled-14``,
``form-torsion-coupling``, ``form-intramolecular-lj``: :attr:`~espaloma_like.termkinds.base.
TermKind.system_only`) work here as with the bare template generator: the ligands' templates
loaded into the ForceField are their *core* ffxml (without those kinds), and a force generator
the template generator registers on the ForceField adds the kinds' forces inside
``createSystem``, remapped to the particles of every ligand residue; one force per kind for all
ligands (:mod:`espaloma_like.export.template_generator`, :mod:`espaloma_like.export.force_remap`).
The ligands' terms are then exactly those of their own ``to_openmm_system()``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import openmm
    import openmm.app

    from espaloma_like.nn.model import ParameterModel

logger = logging.getLogger(__name__)


class SystemGenerator:
    """Build OpenMM Systems of proteins, water and small molecules in one call.

    Parameters
    ----------
    forcefields : sequence of str
        ffxml files for everything but the ligands, as for ``openmm.app.ForceField``:
        ``["amber14-all.xml", "amber14/tip3p.xml"]``, ``["amber19-all.xml",
        "amber19/tip3p.xml"]``, ``["charmm36.xml", "charmm36/water.xml"]``.
    small_molecule_forcefield : str, path or ParameterModel, optional
        The model: a shipped model name (``"default"``), a checkpoint path, or a loaded
        model; the default model when None.
    molecules : molecule input or iterable of them
        Ligands known from the start (SMILES, mapped SMILES, RDKit, OpenFF, files, ...).
    forcefield_kwargs : dict, optional
        Keywords of ``ForceField.createSystem`` for every System (``constraints``,
        ``hydrogenMass``, ``rigidWater``, ...).
    periodic_forcefield_kwargs : dict, optional
        Added for a topology with a periodic box; ``{"nonbondedMethod": PME}`` by default.
    nonperiodic_forcefield_kwargs : dict, optional
        Added for a topology without one; ``{"nonbondedMethod": NoCutoff}`` by default.
    cache : str or path, optional
        JSON template cache (see :class:`~espaloma_like.api.TemplateGenerator`).
    charges : {"model", "keep"}
        The ligands' charges: the model's, or those the inputs carry.

    Attributes
    ----------
    forcefield : openmm.app.ForceField
        The force field, with the template generator registered (its own ``createSystem``
        gives the same System as :meth:`create_system` when passed the same arguments and the
        ligands' ``residueTemplates``).
    template_generator : espaloma_like.api.TemplateGenerator
        The generator of the ligands' templates.
    ligand_templates : dict
        ``{residue: template name}`` of the last :meth:`create_system`: the residues that got
        the model's templates.
    """

    def __init__(
        self, forcefields: list[str] | tuple[str, ...] = (),
        small_molecule_forcefield: str | Path | ParameterModel | None = None,
        molecules: Any = (), forcefield_kwargs: dict[str, Any] | None = None,
        periodic_forcefield_kwargs: dict[str, Any] | None = None,
        nonperiodic_forcefield_kwargs: dict[str, Any] | None = None,
        cache: str | Path | None = None, charges: Literal["model", "keep"] = "model",
    ) -> None:
        import openmm.app as app

        from espaloma_like.api import TemplateGenerator

        self.forcefield_kwargs = dict(forcefield_kwargs or {})
        self.periodic_forcefield_kwargs = dict(
            {"nonbondedMethod": app.PME} if periodic_forcefield_kwargs is None
            else periodic_forcefield_kwargs)
        self.nonperiodic_forcefield_kwargs = dict(
            {"nonbondedMethod": app.NoCutoff} if nonperiodic_forcefield_kwargs is None
            else nonperiodic_forcefield_kwargs)
        if "nonbondedMethod" in self.forcefield_kwargs:
            raise ValueError("give nonbondedMethod in periodic_forcefield_kwargs or "
                             "nonperiodic_forcefield_kwargs, not in forcefield_kwargs")
        self.forcefield = app.ForceField(*forcefields)
        self.template_generator = TemplateGenerator(molecules, small_molecule_forcefield,
                                                    charges, cache)
        self.forcefield.registerTemplateGenerator(self.template_generator.generator)
        self.ligand_templates: dict[Any, str] = {}

    def add_molecules(self, molecules: Any) -> None:
        """Make more ligands known (one input, or an iterable of them)."""
        self.template_generator.add_molecules(molecules)

    def residue_templates(self, topology: openmm.app.Topology) -> dict[Any, str]:
        """``{residue: template name}`` for the ligand residues of ``topology`` (templates
        loaded), e.g. for ``Modeller.addSolvent(..., residueTemplates=...)``."""
        return self.template_generator.residue_templates(self.forcefield, topology)

    def create_system(self, topology: openmm.app.Topology, molecules: Any = None,
                      **kwargs: Any) -> openmm.System:
        """The System of ``topology``; ligands get the model's templates.

        Parameters
        ----------
        topology : openmm.app.Topology
            The whole system; periodic when it has box vectors.
        molecules : molecule input or iterable of them, optional
            More ligands to know before building.
        **kwargs
            Extra ``createSystem`` keywords for this call only (override the stored ones).

        Returns
        -------
        openmm.System
            With a model that has system-only term kinds, their forces (one per kind, all
            ligand residues; the kind's force group).

        Raises
        ------
        ValueError
            From OpenMM: a residue no template and no generator can handle.
        TypeError
            A system-only kind gave a force other than ``CustomBondForce`` or
            ``CustomCompoundBondForce`` (its particles cannot be remapped).
        """
        if molecules is not None:
            self.add_molecules(molecules)
        options = dict(self.forcefield_kwargs)
        periodic = topology.getPeriodicBoxVectors() is not None
        options.update(self.periodic_forcefield_kwargs if periodic
                       else self.nonperiodic_forcefield_kwargs)
        options.update(kwargs)
        templates = dict(options.pop("residueTemplates", {}))
        inner = self.template_generator._inner
        ligands = inner.matches(topology)
        self.ligand_templates = inner.load_templates(self.forcefield, ligands)
        templates.update(self.ligand_templates)
        logger.info("creating a %s System: %d residues, %d of them the model's ligands",
                    "periodic" if periodic else "non-periodic", topology.getNumResidues(),
                    len(self.ligand_templates))
        return self.forcefield.createSystem(topology, residueTemplates=templates, **options)
