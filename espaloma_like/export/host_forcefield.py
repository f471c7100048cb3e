"""Make a ligand template coexist with the host force field's nonbonded conventions.

OpenMM's ``ForceField`` merges every ``<NonbondedForce>`` tag into one force and refuses tags
with different 1-4 scales ("multiple NonbondedForce tags with different 1-4 scales"). Amber
(0.8333 / 0.5) agrees with the model; CHARMM does not (1.0 / 1.0, and its Lennard-Jones terms
live in a ``<LennardJonesForce>``, a ``CustomNonbondedForce`` with its own 1-4 bond force).
openmmforcefields declines this combination for its small-molecule generators (issue #209);
here the ligand's ffxml is rewritten for the host instead, so that the ligand keeps exactly its
own 1-4 interactions:

* the ``<NonbondedForce>`` tag takes the host's 1-4 scales, so the files load together;
* with a host ``<LennardJonesForce>`` (CHARMM), the ligand's LJ types move there (its
  ``<NonbondedForce>`` atoms get sigma 1, epsilon 0, as CHARMM's own types do), with per-type
  ``epsilon14 = epsilon * lj14 / host lj14``, which makes the host's 1-4 LJ term equal the
  ligand's scaled one;
* the 1-4 Coulomb (and, without a ``LennardJonesForce``, 1-4 LJ) exceptions that the host's
  scales got wrong are reset by a ``<Script>``, which OpenMM runs at the end of
  ``createSystem``: a one-line call of :func:`restore_14_scales` for this molecule's atom types.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from espaloma_like.exceptions import ParametrizationError

if TYPE_CHECKING:
    import openmm
    import openmm.app

#: OpenMM's tolerance for equal 1-4 scales (``NonbondedGenerator.SCALETOL``).
SCALE_TOLERANCE = 1e-5


@dataclass(frozen=True)
class HostNonbonded:
    """The nonbonded conventions of a loaded ``ForceField``.

    Attributes
    ----------
    coulomb14scale, lj14scale : float or None
        Scales of its ``<NonbondedForce>``; None when it has none yet.
    lennard_jones_14scale : float or None
        ``lj14scale`` of its ``<LennardJonesForce>`` (CHARMM); None when it has none.
    """

    coulomb14scale: float | None = None
    lj14scale: float | None = None
    lennard_jones_14scale: float | None = None

    @classmethod
    def of(cls, forcefield: openmm.app.ForceField) -> HostNonbonded:
        """Read the conventions from the generators ``forcefield`` has registered."""
        coulomb = lj = lennard_jones = None
        for generator in getattr(forcefield, "_forces", []):
            name = type(generator).__name__
            if name == "NonbondedGenerator":
                coulomb, lj = float(generator.coulomb14scale), float(generator.lj14scale)
            elif name == "LennardJonesGenerator":
                lennard_jones = float(generator.lj14scale)
        return cls(coulomb, lj, lennard_jones)


def _differs(a: float | None, b: float) -> bool:
    return a is not None and abs(a - b) > SCALE_TOLERANCE


def adapt_to_host(ffxml: str, host: HostNonbonded) -> str:
    """The ligand ``ffxml`` (as :func:`~espaloma_like.export.ffxml.to_forcefield_xml` writes
    it) rewritten to load into a force field with the ``host`` conventions, with the ligand's
    energy unchanged. Unchanged when the host agrees (Amber) or has no nonbonded force yet.

    Raises
    ------
    ParametrizationError
        The host's ``LennardJonesForce`` turns 1-4 LJ off (``lj14scale`` 0), so the ligand's
        scaled 1-4 LJ cannot be expressed.
    """
    root = ET.fromstring(ffxml)
    nonbonded = root.find("NonbondedForce")
    if nonbonded is None:
        return ffxml
    coulomb14 = float(nonbonded.get("coulomb14scale", "1"))
    lj14 = float(nonbonded.get("lj14scale", "1"))
    coulomb_wrong = _differs(host.coulomb14scale, coulomb14)
    lj_wrong = _differs(host.lj14scale, lj14) and host.lennard_jones_14scale is None
    if not (coulomb_wrong or lj_wrong or host.lennard_jones_14scale is not None):
        return ffxml
    if host.coulomb14scale is not None and host.lj14scale is not None:
        nonbonded.set("coulomb14scale", repr(host.coulomb14scale))
        nonbonded.set("lj14scale", repr(host.lj14scale))
    types = [atom.get("type", "") for atom in nonbonded.findall("Atom")]
    prefix = types[0].rsplit("-", 1)[0] if types else ""
    if host.lennard_jones_14scale is not None:
        if host.lennard_jones_14scale == 0.0:
            raise ParametrizationError("the force field's LennardJonesForce has lj14scale 0; "
                                       "the ligand's scaled 1-4 Lennard-Jones cannot be kept")
        factor = lj14 / host.lennard_jones_14scale
        lennard_jones = ET.Element("LennardJonesForce",
                                   {"lj14scale": repr(host.lennard_jones_14scale)})
        for atom in nonbonded.findall("Atom"):
            sigma, epsilon = atom.get("sigma", "1"), float(atom.get("epsilon", "0"))
            ET.SubElement(lennard_jones, "Atom", {
                "type": atom.get("type", ""), "sigma": sigma, "epsilon": repr(epsilon),
                "sigma14": sigma, "epsilon14": repr(epsilon * factor)})
            atom.set("sigma", "1.0")
            atom.set("epsilon", "0.0")
        root.insert(list(root).index(nonbonded) + 1, lennard_jones)
    if coulomb_wrong or lj_wrong:
        script = ET.SubElement(root, "Script")
        script.text = (
            "from espaloma_like.export.host_forcefield import restore_14_scales\n"
            f"restore_14_scales(sys, data, {prefix!r}, {coulomb14!r}, {lj14!r}, {lj_wrong!r})\n")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def restore_14_scales(system: openmm.System, data: Any, prefix: str, coulomb14scale: float,
                      lj14scale: float, lennard_jones: bool) -> int:
    """Reset the 1-4 exceptions between atoms typed ``<prefix>-*`` to the ligand's scales.

    Called by the ``<Script>`` of an adapted ffxml at the end of ``ForceField.createSystem``
    (``data`` is its internal ``_SystemData``: ``atoms``, ``atomType``, ``bondedToAtom``).

    Parameters
    ----------
    system : openmm.System
        The System being created.
    data : ForceField's system data
        Atom types and bonded neighbours of every atom.
    prefix : str
        The molecule's type prefix (``ESPL-<hash>``).
    coulomb14scale, lj14scale : float
        The ligand's own 1-4 scales.
    lennard_jones : bool
        Also reset sigma and epsilon (the LJ lives in the NonbondedForce); False leaves them
        to a ``LennardJonesForce``.

    Returns
    -------
    int
        Number of exceptions reset.
    """
    import math

    import openmm
    from openmm import unit

    ours = {index for index, atom in enumerate(data.atoms)
            if str(data.atomType[atom]).startswith(prefix + "-")}
    if not ours:
        return 0
    bonded = data.bondedToAtom
    changed = 0
    for force in system.getForces():
        if not isinstance(force, openmm.NonbondedForce):
            continue
        for n in range(force.getNumExceptions()):
            i, j, _qq, _sigma, _epsilon = force.getExceptionParameters(n)
            if i not in ours or j not in ours or j in bonded[i]:
                continue
            if set(bonded[i]) & set(bonded[j]):
                continue  # 1-3: excluded
            qi, si, ei = force.getParticleParameters(i)
            qj, sj, ej = force.getParticleParameters(j)
            charge_product = coulomb14scale * qi * qj
            if lennard_jones:
                sigma = 0.5 * (si + sj)
                kj = unit.kilojoule_per_mole
                epsilon = lj14scale * math.sqrt(ei.value_in_unit(kj) * ej.value_in_unit(kj))
                force.setExceptionParameters(n, i, j, charge_product, sigma, epsilon)
            else:
                force.setExceptionParameters(n, i, j, charge_product, _sigma, _epsilon)
            changed += 1
    return changed
