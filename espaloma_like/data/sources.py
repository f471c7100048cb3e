"""Molecule sources for QM training data, and the filters that make them usable.

Every source returns a list of :class:`MoleculeSource` records (a SMILES, where it came from, a
name). :func:`filter_molecules` then turns raw records into a clean, deduplicated set and says
why each dropped record was dropped (:class:`Dropped`). A typical pipeline::

    raw = openff_molecule_set("minidrugbank") + capped_dipeptides()
    raw += brics_fragments(openff_molecule_set("minidrugbank"), max_heavy_atoms=20)
    kept, dropped = filter_molecules(raw, max_heavy=20)
    kept, more = filter_molecules(kept + charged_variants(kept), max_heavy=20)

Sources
-------
* the molecule sets shipped with the installed openff-toolkit (:data:`OPENFF_SETS`):
  MiniDrugBank (SDF), FreeSolv (Tripos mol2 in a tarball), AlkEthOH (chain and ring sets,
  Tripos mol2 in a tarball; the "test" subset is a subset of the ring set and is skipped);
* BRICS fragments of drug-like molecules (:func:`brics_fragments`);
* ACE-X-NME capped dipeptides of the 20 standard amino acids at pH 7 (:func:`capped_dipeptides`);
* the first 5000 compounds of the NCI open database, shipped inside RDKit (:func:`rdkit_nci_set`):
  diverse small organics with the heteroatom chemistry (nitro, sulfonyl, phosphoryl, halogens,
  heteroaromatics) that drug fragments alone cover thinly;
* user SMILES files and SDF files (:func:`read_smiles_file`, :func:`read_sdf`,
  :func:`smiles_sources`).

Records read from 3D files keep the stereochemistry the coordinates define. MiniDrugBank stores
nitro groups and a few other groups without formal charges (``N(=O)O`` with a four-valent
neutral N); such records are repaired by charge separation (``[N+](=O)[O-]``) when a partner
oxygen exists, and recorded as unreadable otherwise.
"""

from __future__ import annotations

import contextlib
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from espaloma_like.exceptions import MoleculeFileError, MoleculeInputError
from espaloma_like.molecule import (
    SUPPORTED_ELEMENTS,
    from_smiles,
    generate_conformers,
    undefined_stereo,
)

if TYPE_CHECKING:
    from rdkit import Chem

__all__ = [
    "DIPEPTIDE_SIDE_CHAINS",
    "OPENFF_SETS",
    "Dropped",
    "MoleculeSource",
    "brics_fragments",
    "builtin_sources",
    "capped_dipeptides",
    "charged_variants",
    "filter_molecules",
    "openff_molecule_set",
    "rdkit_nci_set",
    "read_sdf",
    "read_smiles_file",
    "smiles_sources",
]


@dataclass(frozen=True)
class MoleculeSource:
    """One molecule of a training set, before or after filtering.

    Attributes
    ----------
    smiles : str
        Isomeric SMILES. Canonical (RDKit, no explicit hydrogens) after :func:`filter_molecules`;
        as read before it. Empty for a record that could not be read at all (see ``notes``).
    source : str
        Where it came from: ``"minidrugbank"``, ``"freesolv"``, ``"alkethoh"``,
        ``"brics-fragment"``, ``"dipeptide"``, ``"user"``, ...
    name : str
        A label unique within its source (a file's record name, ``"ACE-ALA-NME"``, ...).
    notes : tuple of str
        What was done to the record on the way (counter-ions stripped, stereoisomer picked,
        charges repaired, charged variant of another record).
    """

    smiles: str
    source: str
    name: str
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Dropped:
    """A record :func:`filter_molecules` removed, and why.

    ``reason`` starts with a fixed category (``"unreadable"``, ``"unparsable SMILES"``,
    ``"unsupported element"``, ``"radical"``, ``"disconnected"``, ``"charge out of range"``,
    ``"unusual valence"``, ``"too few heavy atoms"``, ``"too many heavy atoms"``, ``"invalid"``,
    ``"undefined stereo"``,
    ``"duplicate"``), followed by ``": "`` and details.
    """

    smiles: str
    source: str
    reason: str
    name: str = ""


# --------------------------------------------------------------------------------------------
# Reading molecules from files
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _rdkit_quiet() -> Iterator[None]:
    """Silence RDKit's warnings while reading files of many records (reasons are recorded)."""
    from rdkit.rdBase import BlockLogs

    block = BlockLogs()
    try:
        yield
    finally:
        del block


def _repair_uncharged_valence(mol: Chem.Mol) -> Chem.Mol | None:
    """Charge-separate four-valent neutral N (nitro, N-oxides written without charges).

    Each N with explicit valence 4 and no formal charge becomes N+, and one singly bonded,
    hydrogen-free, terminal O next to it becomes O-. Returns None if some N has no such partner.
    """
    from rdkit import Chem

    rw = Chem.RWMol(mol)
    rw.UpdatePropertyCache(strict=False)
    changed = False
    for atom in rw.GetAtoms():
        if atom.GetAtomicNum() != 7 or atom.GetFormalCharge() != 0:
            continue
        valence = sum(b.GetBondTypeAsDouble() for b in atom.GetBonds()) + atom.GetNumExplicitHs()
        if valence != 4:
            continue
        partner = None
        for bond in atom.GetBonds():
            other = bond.GetOtherAtom(atom)
            # degree 1: no hydrogen atom on it (the files list hydrogens as atoms); RDKit's
            # implicit-H guess for such an O is what made it look like a hydroxyl
            if (other.GetAtomicNum() == 8 and other.GetFormalCharge() == 0
                    and bond.GetBondType() == Chem.BondType.SINGLE and other.GetDegree() == 1
                    and other.GetNumExplicitHs() == 0):
                partner = other
                break
        if partner is None:
            return None
        atom.SetFormalCharge(1)
        partner.SetFormalCharge(-1)
        partner.SetNoImplicit(True)
        changed = True
    return rw.GetMol() if changed else None


def _sanitized(mol: Chem.Mol) -> tuple[Chem.Mol | None, str]:
    """Sanitize ``mol`` (repairing uncharged valences if needed); assign stereo from 3D."""
    from rdkit import Chem

    note = ""
    candidate = Chem.Mol(mol)
    try:
        Chem.SanitizeMol(candidate)
    except Exception as err:  # RDKit raises several types here
        repaired = _repair_uncharged_valence(mol)
        if repaired is None:
            return None, f"RDKit could not sanitize it ({err})"
        candidate = repaired
        try:
            Chem.SanitizeMol(candidate)
        except Exception as err2:
            return None, f"RDKit could not sanitize it ({err2})"
        note = "charges repaired: uncharged 4-valent N charge-separated ([N+][O-])"
    if candidate.GetNumConformers() and candidate.GetConformer().Is3D():
        Chem.AssignStereochemistryFrom3D(candidate)
    return candidate, note


def _record(mol: Chem.Mol | None, name: str, source: str, why: str = "") -> MoleculeSource:
    """A record from a raw RDKit molecule; an empty-SMILES record if it cannot be read."""
    from rdkit import Chem

    if mol is None:
        return MoleculeSource("", source, name, (f"unreadable: {why or 'RDKit returned None'}",))
    clean, note = _sanitized(mol)
    if clean is None:
        return MoleculeSource("", source, name, (f"unreadable: {note}",))
    if any(a.GetAtomicNum() == 1 for a in mol.GetAtoms()):
        # a file that lists its hydrogens never gains atoms: a valence left open means wrong or
        # missing bond orders or charges (benzene with single bonds is not cyclohexane)
        open_valence = [f"{a.GetSymbol()}{a.GetIdx()}" for a in clean.GetAtoms()
                        if a.GetTotalNumHs(includeNeighbors=False) or a.GetNumRadicalElectrons()]
        if open_valence:
            return MoleculeSource("", source, name, (
                f"unreadable: hydrogens are explicit but {', '.join(open_valence[:8])} would need "
                "more: bond orders or formal charges are wrong or missing",))
    smiles = str(Chem.MolToSmiles(Chem.RemoveHs(clean, sanitize=False)))
    return MoleculeSource(smiles, source, name, (note,) if note else ())


def read_sdf(path: str | Path, source: str = "user") -> list[MoleculeSource]:
    """One record per SDF entry, stereochemistry from the 3D coordinates if present.

    Records RDKit cannot read come back with an empty ``smiles`` and an ``"unreadable: ..."``
    note, so that :func:`filter_molecules` reports them.

    Raises
    ------
    MoleculeFileError
        The file does not exist.
    """
    from rdkit import Chem

    path = Path(path)
    if not path.is_file():
        raise MoleculeFileError(f"no such SDF file: {path}")
    out = []
    with _rdkit_quiet():
        supplier = Chem.SDMolSupplier(str(path), sanitize=False, removeHs=False)
        for index in range(len(supplier)):
            text = supplier.GetItemText(index)
            # sanitized parse first: it applies 2D wedges and 3D chirality the standard way
            mol = Chem.MolFromMolBlock(text, sanitize=True, removeHs=False)
            if mol is None:  # retry unsanitized, to repair or to report why
                mol = Chem.MolFromMolBlock(text, sanitize=False, removeHs=False)
            name = mol.GetProp("_Name").strip() if mol is not None and mol.HasProp("_Name") else ""
            out.append(_record(mol, name or f"{path.stem}:{index}", source))
    return out


def _read_mol2_block(text: str, name: str, source: str) -> MoleculeSource:
    from rdkit import Chem

    mol = Chem.MolFromMol2Block(text, removeHs=False, sanitize=True)
    if mol is None:  # retry unsanitized, to repair or to report why
        mol = Chem.MolFromMol2Block(text, removeHs=False, sanitize=False)
    return _record(mol, name, source)


def _read_mol2_tarball(path: Path, folders: Sequence[str], suffix: str,
                       source: str) -> list[MoleculeSource]:
    texts = {}
    # one sequential pass: random access into a .tar.gz re-decompresses from the start
    with tarfile.open(path, mode="r:*") as archive:
        for member in archive:
            if (member.isfile() and member.name.endswith(suffix) and "/._" not in member.name
                    and any(f"/{folder}/" in member.name for folder in folders)):
                handle = archive.extractfile(member)
                if handle is not None:
                    texts[member.name] = handle.read().decode("utf-8", errors="replace")
    out = []
    with _rdkit_quiet():
        for member_name in sorted(texts):
            name = Path(member_name).name.removesuffix(suffix).removesuffix("_tripos")
            out.append(_read_mol2_block(texts[member_name], name, source))
    return out


#: The molecule sets shipped with openff-toolkit, by source name: (data file, description).
OPENFF_SETS: dict[str, tuple[str, str]] = {
    "minidrugbank": ("molecules/MiniDrugBank.sdf", "371 drug-like molecules (SDF, 3D)"),
    "freesolv": ("molecules/FreeSolv.tar.gz",
                 "643 small neutral molecules, 642 unique (Tripos mol2)"),
    "alkethoh": ("molecules/AlkEthOH_tripos.tar.gz",
                 "alkanes, ethers, alcohols: chain and ring sets (Tripos mol2)"),
}


def openff_molecule_set(
    name: Literal["minidrugbank", "freesolv", "alkethoh"],
) -> list[MoleculeSource]:
    """The records of a molecule set shipped inside the installed openff-toolkit.

    Parameters
    ----------
    name : {"minidrugbank", "freesolv", "alkethoh"}
        Which set (see :data:`OPENFF_SETS`); it also becomes the records' ``source``.

    Raises
    ------
    MoleculeFileError
        The name is unknown or the installed toolkit lacks the file.
    """
    from openff.toolkit.utils import get_data_file_path

    if name not in OPENFF_SETS:
        raise MoleculeFileError(
            f"unknown openff molecule set {name!r}; one of {sorted(OPENFF_SETS)}"
        )
    try:
        path = Path(get_data_file_path(OPENFF_SETS[name][0]))
    except (ValueError, FileNotFoundError) as err:
        raise MoleculeFileError(f"openff-toolkit does not ship {OPENFF_SETS[name][0]}") from err
    if name == "minidrugbank":
        return read_sdf(path, source=name)
    if name == "freesolv":
        return _read_mol2_tarball(path, ["mol2files_sybyl"], ".mol2", name)
    return _read_mol2_tarball(
        path, ["AlkEthOH_chain_filt1", "AlkEthOH_rings_filt1"], "_tripos.mol2", name
    )


def rdkit_nci_set() -> list[MoleculeSource]:
    """The first 5000 compounds of the NCI open database, as shipped inside RDKit.

    Read from ``RDConfig.RDDataDir/NCI/first_5K.smi``; records have source ``"nci"`` and are
    named ``"NCI-<line id>"``. Salts, metals and large molecules are left to
    :func:`filter_molecules`.

    Raises
    ------
    MoleculeFileError
        The installed RDKit lacks the file.
    """
    from rdkit import RDConfig

    path = Path(RDConfig.RDDataDir) / "NCI" / "first_5K.smi"
    if not path.is_file():
        raise MoleculeFileError(f"the installed RDKit does not ship {path}")
    return [replace(r, name=f"NCI-{r.name}") for r in read_smiles_file(path, source="nci")]


def read_smiles_file(path: str | Path, source: str = "user") -> list[MoleculeSource]:
    """Records from a text file: one SMILES per line, optionally a name after whitespace.

    Blank lines and lines starting with ``#`` are skipped; unnamed records are called
    ``"<file stem>:<line number>"``.
    """
    path = Path(path)
    if not path.is_file():
        raise MoleculeFileError(f"no such SMILES file: {path}")
    out = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.split(maxsplit=1)
        name = parts[1].strip() if len(parts) > 1 else f"{path.stem}:{number}"
        out.append(MoleculeSource(parts[0], source, name))
    return out


def smiles_sources(smiles: Iterable[str], source: str = "user",
                   names: Iterable[str] | None = None) -> list[MoleculeSource]:
    """Records from SMILES strings (named by their SMILES unless ``names`` are given)."""
    smiles = list(smiles)
    labels = list(names) if names is not None else smiles
    if len(labels) != len(smiles):
        raise ValueError(f"{len(labels)} names for {len(smiles)} SMILES")
    return [MoleculeSource(s, source, n) for s, n in zip(smiles, labels, strict=True)]


# --------------------------------------------------------------------------------------------
# Generated sources: BRICS fragments, capped dipeptides
# --------------------------------------------------------------------------------------------


def _cap_dummies(fragment: Chem.Mol) -> Chem.Mol:
    """Replace BRICS dummy atoms: methyl on heteroatoms, =CH2 on double bonds, H on carbon.

    Why: a cut next to N, O or S removed a carbon substituent, and a methyl keeps an ether an
    ether, an ester an ester and a tertiary amide tertiary (an H would make alcohols, acids and
    secondary amides instead). A cut next to a carbon (aliphatic or aromatic) is capped by H,
    which adds no heavy atoms. BRICS rule 7 cuts C=C bonds; those are capped by =CH2.
    """
    from rdkit import Chem

    rw = Chem.RWMol(fragment)
    for atom in rw.GetAtoms():
        if atom.GetAtomicNum() != 0:
            continue
        atom.SetIsotope(0)
        atom.SetIsAromatic(False)
        atom.SetNoImplicit(False)
        bond = atom.GetBonds()[0]
        neighbour = bond.GetOtherAtom(atom)
        if bond.GetBondType() == Chem.BondType.DOUBLE or neighbour.GetAtomicNum() in (7, 8, 15, 16):
            atom.SetAtomicNum(6)
        else:
            atom.SetAtomicNum(1)
    mol = rw.GetMol()
    Chem.SanitizeMol(mol)
    return Chem.RemoveHs(mol)


def brics_fragments(
    molecules: Iterable[MoleculeSource],
    min_heavy_atoms: int = 4,
    max_heavy_atoms: int = 20,
    include_intermediate: bool = False,
    source: str = "brics-fragment",
) -> list[MoleculeSource]:
    """Capped BRICS fragments of the given molecules, unique by canonical SMILES.

    Parameters
    ----------
    molecules : iterable of MoleculeSource
        Parent molecules (drug-like ones: e.g. ``openff_molecule_set("minidrugbank")``).
        Unreadable parents are skipped.
    min_heavy_atoms, max_heavy_atoms : int
        Keep capped fragments with this many heavy atoms (inclusive).
    include_intermediate : bool
        Also keep non-leaf nodes of the BRICS tree (unions of adjacent leaves): several times
        more fragments, and about five times slower.
    source : str
        The fragments' ``source``.

    Notes
    -----
    Dummy atoms are capped by :func:`_cap_dummies` (methyl on N/O/P/S, =CH2 on double bonds,
    H on carbon). Parents BRICS cannot cut are not fragments and are not returned. Fragment
    ``i`` of parent ``P`` is named ``"P:frag<i>"`` (first parent that produced it).
    """
    from rdkit import Chem
    from rdkit.Chem import BRICS

    seen: set[str] = set()
    out = []
    with _rdkit_quiet():
        for parent in molecules:
            mol = Chem.MolFromSmiles(parent.smiles) if parent.smiles else None
            if mol is None:
                continue
            pieces = sorted(BRICS.BRICSDecompose(mol, keepNonLeafNodes=include_intermediate))
            count = 0
            for piece in pieces:
                if "*" not in piece:
                    continue  # the parent itself: nothing was cut
                fragment = Chem.MolFromSmiles(piece)
                if fragment is None:
                    continue
                try:
                    capped = _cap_dummies(fragment)
                except Exception:  # an unsanitizable cap: skip the fragment
                    continue
                smiles = str(Chem.MolToSmiles(capped))
                heavy = capped.GetNumHeavyAtoms()
                if smiles in seen or not min_heavy_atoms <= heavy <= max_heavy_atoms:
                    continue
                seen.add(smiles)
                out.append(MoleculeSource(
                    smiles, source, f"{parent.name}:frag{count}", (f"BRICS fragment {piece}",)
                ))
                count += 1
    return out


#: Side chains at pH 7 as SMILES branches on the alpha carbon; stereo written for L residues.
#: ``None`` marks residues whose backbone differs (GLY has no side chain, PRO is a ring).
DIPEPTIDE_SIDE_CHAINS: dict[str, str | None] = {
    "ALA": "C",
    "ARG": "CCCNC(=[NH2+])N",
    "ASN": "CC(N)=O",
    "ASP": "CC(=O)[O-]",
    "CYS": "CS",
    "GLN": "CCC(N)=O",
    "GLU": "CCC(=O)[O-]",
    "GLY": None,
    "HID": "Cc1cnc[nH]1",  # H on ND1
    "HIE": "Cc1c[nH]cn1",  # H on NE2
    "HIP": "Cc1c[nH]c[nH+]1",  # both
    "ILE": "[C@@H](C)CC",  # (2S,3S)
    "LEU": "CC(C)C",
    "LYS": "CCCC[NH3+]",
    "MET": "CCSC",
    "PHE": "Cc1ccccc1",
    "PRO": None,
    "SER": "CO",
    "THR": "[C@@H](C)O",  # (2S,3R)
    "TRP": "Cc1c[nH]c2ccccc12",
    "TYR": "Cc1ccc(O)cc1",
    "VAL": "C(C)C",
}


def capped_dipeptides() -> list[MoleculeSource]:
    """ACE-X-NME for the 20 standard L-amino acids, pH-7 protonation states.

    ASP and GLU are anions, LYS and ARG cations; histidine comes as the neutral tautomers HID
    (H on ND1) and HIE (H on NE2) and as the cation HIP, so 22 records, named ``"ACE-ALA-NME"``.
    """
    from rdkit import Chem

    out = []
    for residue, side_chain in DIPEPTIDE_SIDE_CHAINS.items():
        if residue == "GLY":
            smiles = "CC(=O)NCC(=O)NC"
        elif residue == "PRO":
            smiles = "CC(=O)N1CCC[C@H]1C(=O)NC"
        else:
            smiles = f"CC(=O)N[C@@H]({side_chain})C(=O)NC"
        mol = Chem.MolFromSmiles(smiles)
        out.append(MoleculeSource(str(Chem.MolToSmiles(mol)), "dipeptide", f"ACE-{residue}-NME"))
    return out


# --------------------------------------------------------------------------------------------
# Charged variants
# --------------------------------------------------------------------------------------------

#: SMARTS rules of :func:`charged_variants`: name -> (SMARTS of the site atom, proton change).
CHARGE_RULES: dict[str, tuple[str, int]] = {
    # O-H of a carboxylic acid -> carboxylate
    "deprotonated-acid": ("[OX2H1;+0][CX3]=O", -1),
    # O-H of a sulfonic acid (pKa < 0) or of a phosphonic/phosphoric acid (first pKa ~1-2)
    "deprotonated-sulfonic-acid": ("[OX2H1;+0][SX4](=O)=O", -1),
    "deprotonated-phosphonic-acid": ("[OX2H1;+0][PX4]=O", -1),
    # neutral sp3 amine N bonded only to H and sp3 carbons (not amides, anilines, enamines,
    # amidines, sulfonamides, hydrazines, hydroxylamines) -> ammonium
    "protonated-amine": ("[NX3;+0;!$(N[!#6;!#1]);!$(N[#6]=,#,:[*]);!$(Na)]", +1),
    # imine N of a non-aromatic amidine or guanidine (pKa ~12-13.6) -> amidinium, guanidinium
    "protonated-amidine": ("[NX2;+0;!$(N[!#6;!#1])]=[CX3;!a][NX3;!$(N[!#6;!#1])]", +1),
}


def charged_variants(molecules: Iterable[MoleculeSource],
                     max_sites_per_rule: int = 1) -> list[MoleculeSource]:
    """Anions and cations made from neutral groups, so a training set has both charge signs.

    SMARTS rules (:data:`CHARGE_RULES`): carboxylic, sulfonic and phosphonic acids lose the
    proton (pKa below 5) and aliphatic amines, amidines and guanidines gain one (pKa ~9-13.6),
    the dominant states at pH 7. Each rule is applied to
    one site at a time, at most ``max_sites_per_rule`` symmetry-distinct sites per molecule
    (lowest atom index first), giving one single-site variant per site. Variants keep the
    parent's ``source``, are named ``"<parent>|<rule><k>"`` and should be passed through
    :func:`filter_molecules` (charge range, deduplication) like any other record.
    """
    from rdkit import Chem

    patterns = {rule: (Chem.MolFromSmarts(smarts), delta)
                for rule, (smarts, delta) in CHARGE_RULES.items()}
    out = []
    for record in molecules:
        mol = Chem.MolFromSmiles(record.smiles) if record.smiles else None
        if mol is None:
            continue
        ranks = list(Chem.CanonicalRankAtoms(mol, breakTies=False))
        for rule, (pattern, delta) in patterns.items():
            done: set[int] = set()
            count = 0
            for match in sorted(mol.GetSubstructMatches(pattern)):
                site = match[0]
                if ranks[site] in done or count >= max_sites_per_rule:
                    continue
                done.add(ranks[site])
                rw = Chem.RWMol(mol)
                atom = rw.GetAtomWithIdx(site)
                hydrogens = atom.GetTotalNumHs() + delta
                if hydrogens < 0:
                    continue
                atom.SetFormalCharge(atom.GetFormalCharge() + delta)
                atom.SetNumExplicitHs(hydrogens)
                atom.SetNoImplicit(True)
                try:
                    variant = rw.GetMol()
                    Chem.SanitizeMol(variant)
                except Exception:
                    continue
                out.append(MoleculeSource(
                    str(Chem.MolToSmiles(variant)), record.source, f"{record.name}|{rule}{count}",
                    (f"charged variant ({rule}) of {record.smiles}",),
                ))
                count += 1
    return out


# --------------------------------------------------------------------------------------------
# Filtering
# --------------------------------------------------------------------------------------------


def _strip_counter_ions(mol: Chem.Mol) -> tuple[Chem.Mol, str]:
    """Keep the largest carbon-containing fragment (heavy atoms, then SMILES, decide)."""
    from rdkit import Chem

    fragments = Chem.GetMolFrags(mol, asMols=True, sanitizeFrags=True)
    organic = [f for f in fragments if any(a.GetAtomicNum() == 6 for a in f.GetAtoms())]
    if not organic:
        return mol, ""  # nothing organic to keep: the whole record fails later checks
    keep = min(organic, key=lambda f: (-f.GetNumHeavyAtoms(), Chem.MolToSmiles(f)))
    kept = Chem.MolToSmiles(keep)
    removed = sorted(Chem.MolToSmiles(f) for f in fragments if f is not keep)
    return keep, f"stripped {'.'.join(removed)}, kept largest fragment {kept}"


def _resolve_stereo(smiles: str, policy: str, max_isomers: int) -> list[tuple[str, str]]:
    """Stereoisomers for a SMILES with undefined stereo: [(smiles, note)], empty if unresolved."""
    from rdkit import Chem
    from rdkit.Chem.EnumerateStereoisomers import (
        EnumerateStereoisomers,
        StereoEnumerationOptions,
    )

    mol = Chem.MolFromSmiles(smiles)
    options = StereoEnumerationOptions(onlyUnassigned=True, unique=True, maxIsomers=max_isomers)
    isomers = sorted({str(Chem.MolToSmiles(m)) for m in EnumerateStereoisomers(mol, options)})
    isomers = [s for s in isomers if not undefined_stereo(from_smiles(s))]
    if not isomers:
        return []
    if policy == "first":
        return [(isomers[0], f"undefined stereo: picked {isomers[0]} of {len(isomers)} isomers")]
    if policy == "first-embeddable":
        for k, isomer in enumerate(isomers):
            if _embeds(isomer):
                return [(isomer, f"undefined stereo: picked {isomer}, isomer {k + 1} of "
                                 f"{len(isomers)} and the first that embeds in 3D")]
        return []
    return [(s, f"undefined stereo: isomer {k + 1} of {len(isomers)}")
            for k, s in enumerate(isomers)]


def _embeds(smiles: str) -> bool:
    """Whether sampling's ETKDG embedding succeeds (bridged rings admit only some isomers)."""
    try:
        generate_conformers(from_smiles(smiles), n_conformers=1)
    except MoleculeInputError:
        return False
    return True


def _check(record: MoleculeSource, min_heavy: int, max_heavy: int, charges: tuple[int, int],
           strip_salts: bool) -> tuple[str, tuple[str, ...]] | str:
    """(canonical SMILES, notes) of a record that passes the checks, else the drop reason."""
    from rdkit import Chem

    if not record.smiles:
        details = "; ".join(n.removeprefix("unreadable: ") for n in record.notes) or "no SMILES"
        return f"unreadable: {details}"
    with _rdkit_quiet():
        mol = Chem.MolFromSmiles(record.smiles)
    if mol is None:
        return f"unparsable SMILES: RDKit could not parse {record.smiles!r}"
    notes = record.notes
    if strip_salts and len(Chem.GetMolFrags(mol)) > 1:
        mol, note = _strip_counter_ions(mol)
        notes = (*notes, note) if note else notes
    bad = sorted({a.GetSymbol() for a in mol.GetAtoms()
                  if a.GetAtomicNum() not in SUPPORTED_ELEMENTS})
    if bad:
        return f"unsupported element: {', '.join(bad)}"
    radicals = sum(a.GetNumRadicalElectrons() for a in mol.GetAtoms())
    if radicals:
        return f"radical: {radicals} unpaired electron(s)"
    n_fragments = len(Chem.GetMolFrags(mol))
    if n_fragments > 1:
        return f"disconnected: {n_fragments} fragments"
    charge = Chem.GetFormalCharge(mol)
    if not charges[0] <= charge <= charges[1]:
        return f"charge out of range: {charge:+d} outside [{charges[0]}, {charges[1]}]"
    unusual = _unusual_valence(mol)
    if unusual:
        return f"unusual valence: {unusual}"
    heavy = mol.GetNumHeavyAtoms()
    if heavy < min_heavy:
        return f"too few heavy atoms: {heavy} < {min_heavy}"
    if heavy > max_heavy:
        return f"too many heavy atoms: {heavy} > {max_heavy}"
    return str(Chem.MolToSmiles(mol)), notes


def _unusual_valence(mol: Any) -> str:
    """Why ``mol`` holds a hypervalent S or P with only single bonds, or "" if it does not.

    Neutral S with four single bonds (a sulfurane such as ``CS(N)(O)O``) or P with five are not
    stable organic species; they come from records whose S=O / P=O double bonds were lost
    (seen in MiniDrugBank), and MM parameters trained on them are meaningless.
    """
    from rdkit import Chem

    for atom in mol.GetAtoms():
        singles = all(b.GetBondType() == Chem.BondType.SINGLE for b in atom.GetBonds())
        if atom.GetFormalCharge() == 0 and singles and (
            (atom.GetAtomicNum() == 16 and atom.GetDegree() + atom.GetTotalNumHs() == 4)
            or (atom.GetAtomicNum() == 15 and atom.GetDegree() + atom.GetTotalNumHs() == 5)
        ):
            return f"{atom.GetSymbol()}{atom.GetIdx()} has only single bonds to {atom.GetDegree()} neighbours"
    return ""


def filter_molecules(
    sources: Iterable[MoleculeSource],
    min_heavy: int = 1,
    max_heavy: int = 30,
    charges: tuple[int, int] = (-2, 2),
    strip_salts: bool = True,
    stereo: Literal["first", "first-embeddable", "enumerate", "drop"] = "first",
    max_stereoisomers: int = 8,
) -> tuple[list[MoleculeSource], list[Dropped]]:
    """Clean a list of records: the kept ones (canonical SMILES) and the dropped ones, with why.

    Checks, in order: readable; parsable SMILES; counter-ions stripped (``strip_salts``: the
    largest carbon-containing fragment is kept and a note records what went; a record without
    carbon is left whole, so ``[Na+].[Cl-]`` fails on its elements); elements H C N O F P S Cl
    Br I only; no radicals; one fragment; net charge within ``charges`` (inclusive); heavy
    atoms within ``[min_heavy, max_heavy]``; a valid :class:`~espaloma_like.molecule.MoleculeGraph`;
    stereochemistry defined (``stereo``: ``"first"`` keeps the first stereoisomer from RDKit's
    ``EnumerateStereoisomers`` in SMILES order, ``"first-embeddable"`` the first one ETKDG can
    embed in 3D (the first can be impossible in bridged rings, which then fail sampling),
    ``"enumerate"`` keeps up to ``max_stereoisomers`` of them, ``"drop"`` drops the record; a
    note records the choice); and not a duplicate of an
    earlier record by canonical isomeric SMILES (the first one wins).

    Parameters
    ----------
    sources : iterable of MoleculeSource
    min_heavy, max_heavy : int
        Inclusive limits on the number of heavy (non-hydrogen) atoms.
    charges : (int, int)
        Inclusive range of net charge, e.
    strip_salts : bool
        Strip counter-ions; if False, salts are dropped as disconnected.
    stereo : {"first", "first-embeddable", "enumerate", "drop"}
        What to do with undefined stereocentres / stereo bonds.
    max_stereoisomers : int
        Cap on enumerated stereoisomers per record.

    Returns
    -------
    kept : list of MoleculeSource
        In input order, with canonical SMILES and notes.
    dropped : list of Dropped
        One entry per record removed (``reason`` starts with a fixed category).
    """
    if stereo not in ("first", "first-embeddable", "enumerate", "drop"):
        raise ValueError("stereo must be 'first', 'first-embeddable', 'enumerate' or 'drop', "
                         f"got {stereo!r}")
    kept: list[MoleculeSource] = []
    dropped: list[Dropped] = []
    first_seen: dict[str, MoleculeSource] = {}
    for record in sources:
        result = _check(record, min_heavy, max_heavy, charges, strip_salts)
        if isinstance(result, str):
            dropped.append(Dropped(record.smiles, record.source, result, record.name))
            continue
        smiles, notes = result
        try:
            graph = from_smiles(smiles)
        except MoleculeInputError as err:
            dropped.append(Dropped(record.smiles, record.source, f"invalid: {err}", record.name))
            continue
        candidates = [(smiles, record.name, notes)]
        if undefined_stereo(graph):
            resolved = [] if stereo == "drop" else _resolve_stereo(
                smiles, stereo, max_stereoisomers)
            if not resolved:
                what = ", ".join(undefined_stereo(graph))
                dropped.append(Dropped(record.smiles, record.source,
                                       f"undefined stereo: {what}", record.name))
                continue
            candidates = [
                (s, record.name if len(resolved) == 1 else f"{record.name}#stereo{k}",
                 (*notes, note))
                for k, (s, note) in enumerate(resolved)
            ]
        for smiles_k, name_k, notes_k in candidates:
            earlier = first_seen.get(smiles_k)
            if earlier is not None:
                dropped.append(Dropped(
                    record.smiles, record.source,
                    f"duplicate: of {earlier.name!r} ({earlier.source})", name_k,
                ))
                continue
            clean = replace(record, smiles=smiles_k, name=name_k, notes=notes_k)
            first_seen[smiles_k] = clean
            kept.append(clean)
    return kept, dropped


def builtin_sources(max_heavy_atoms: int = 20, include_intermediate_brics: bool = False
                    ) -> list[MoleculeSource]:
    """Every built-in source, unfiltered: the openff sets, BRICS fragments, dipeptides.

    BRICS fragments are cut from MiniDrugBank and kept up to ``max_heavy_atoms`` heavy atoms.
    Pass the result (plus :func:`charged_variants` of it, if wanted) to
    :func:`filter_molecules`.
    """
    drugbank = openff_molecule_set("minidrugbank")
    return [
        *drugbank,
        *openff_molecule_set("freesolv"),
        *openff_molecule_set("alkethoh"),
        *brics_fragments(drugbank, max_heavy_atoms=max_heavy_atoms,
                         include_intermediate=include_intermediate_brics),
        *capped_dipeptides(),
    ]
