"""The industry conformer benchmark: OpenFF's metrics, reproduced from their own minima, and the CLI."""

from __future__ import annotations

import csv
import json
import lzma
import math
from pathlib import Path

import numpy as np
import pytest

from espaloma_like.benchmark.conformers_metrics import (
    _legacy_connectivity_invariants,
    _vector_hash,
    best_rmsd,
    internal_coordinate_rmsds,
    internal_coordinates,
    relative_energy_errors,
    score_molecule,
    torsion_fingerprint_deviation,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"
INDUSTRY = SHARED / "qm-reference" / "openff_industry_b3lyp"
needs_industry = pytest.mark.skipif(
    not (INDUSTRY / "openff-metrics-001.csv.xz").is_file(),
    reason=f"OpenFF industry benchmark data not present at {INDUSTRY} (../shared/qm-reference)")


def _molecule(smiles: str, seed: int = 7):
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    assert AllChem.EmbedMolecule(mol, randomSeed=seed) == 0
    AllChem.MMFFOptimizeMolecule(mol)
    return mol, mol.GetConformer().GetPositions()


def _rotation(seed: int = 3) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


# --------------------------------------------------------------------------------------------
# Metric functions (no shared data needed)
# --------------------------------------------------------------------------------------------


def test_dde_by_hand():
    dde = relative_energy_errors([3.0, 1.0, 2.0, 1.0], [10.0, 7.0, 9.5, 6.0])
    # reference: conformer 1, the first of the two lowest QM energies
    assert math.isnan(dde[1])
    np.testing.assert_allclose(dde[[0, 2, 3]], [(10 - 7) - (3 - 1), (9.5 - 7) - (2 - 1), -1.0])
    with pytest.raises(ValueError):
        relative_energy_errors([1.0, 2.0], [1.0])


def test_rmsd_of_a_rigid_motion_is_zero_and_of_a_distortion_is_not():
    mol, xyz = _molecule("CC(=O)Nc1ccc(O)cc1")
    moved = xyz @ _rotation().T + np.array([3.0, -1.0, 2.5])
    assert best_rmsd(mol, xyz, moved) < 1e-6
    distorted = xyz.copy()
    distorted[0] += [0.3, 0.0, 0.0]
    assert best_rmsd(mol, xyz, distorted) > 0.01


def test_rmsd_swapping_equivalent_atoms_costs_nothing():
    from espaloma_like.benchmark.accuracy import kabsch_rmsd

    mol, xyz = _molecule("CC(=O)[O-]")
    hydrogens = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() == 1]
    oxygens = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() == 8]
    swapped = xyz.copy()
    swapped[[hydrogens[0], hydrogens[1]]] = xyz[[hydrogens[1], hydrogens[0]]]
    swapped[[oxygens[0], oxygens[1]]] = xyz[[oxygens[1], oxygens[0]]]
    assert kabsch_rmsd(xyz, swapped) > 0.3  # atom by atom the geometries differ
    assert best_rmsd(mol, xyz, swapped) < 1e-6  # up to symmetry they are the same


def test_internal_coordinates_follow_geometric_rules():
    ethane, xyz = _molecule("CC")
    bonds = [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in ethane.GetBonds()]
    ics = internal_coordinates(bonds, xyz)
    assert (len(ics.bonds), len(ics.angles), len(ics.dihedrals), len(ics.impropers)) == (7, 12, 9, 0)

    # a planar centre: one of its three angles is replaced by an out-of-plane coordinate
    formaldehyde, xyz = _molecule("C=O")
    bonds = [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in formaldehyde.GetBonds()]
    ics = internal_coordinates(bonds, xyz)
    assert (len(ics.bonds), len(ics.angles), len(ics.impropers)) == (3, 2, 1)
    assert ics.impropers[0][0] == 0  # the carbon is the central atom

    # a linear chain: no angle at the sp carbons, dihedrals across the whole line
    butyne, xyz = _molecule("CC#CC")
    bonds = [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in butyne.GetBonds()]
    ics = internal_coordinates(bonds, xyz)
    assert all(a[1] not in (1, 2) for a in ics.angles.tolist())
    assert len(ics.dihedrals) == 9 and {(d[1], d[2]) for d in ics.dihedrals.tolist()} == {(0, 3)}


def test_internal_coordinate_rmsds_are_invariant_and_periodic():
    mol, xyz = _molecule("OCCc1ccccc1")
    bonds = [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()]
    ics = internal_coordinates(bonds, xyz)
    moved = xyz @ _rotation(5).T + 1.0
    rmsds = internal_coordinate_rmsds(ics, xyz, moved)
    assert all(value is not None and value < 1e-8 for value in rmsds.values())
    # a mirror image flips every dihedral's sign: differences wrap at 360, never exceed 180
    mirrored = xyz * np.array([1.0, 1.0, -1.0])
    dihedral = internal_coordinate_rmsds(ics, xyz, mirrored)["dihedral_rmsd"]
    assert dihedral is not None and 0.0 < dihedral <= 180.0


def test_legacy_invariant_hash_is_rdkits():
    """The 32-bit vector hash, fed today's components, gives RDKit's own invariants."""
    from rdkit import Chem
    from rdkit.Chem import rdMolDescriptors

    mol = Chem.AddHs(Chem.MolFromSmiles("[2H]C(Cl)C(=O)[O-].c1cc[nH+]cc1"))
    table = Chem.GetPeriodicTable()
    today = []
    for atom in mol.GetAtoms():
        components = [atom.GetAtomicNum(), atom.GetTotalDegree(),
                      atom.GetTotalNumHs(includeNeighbors=True), atom.GetFormalCharge() & 0xFFFFFFFF,
                      int(atom.GetMass() - table.GetAtomicWeight(atom.GetAtomicNum())) & 0xFFFFFFFF]
        if atom.IsInRing():
            components.append(1)
        today.append(_vector_hash(components))
    assert today == list(rdMolDescriptors.GetConnectivityInvariants(mol))
    legacy = _legacy_connectivity_invariants(mol)
    assert len(legacy) == mol.GetNumAtoms() and legacy != today  # H neighbours no longer counted


def test_tfd_zero_for_same_torsions_positive_for_a_rotated_one():
    from rdkit.Chem import rdMolTransforms

    mol, xyz = _molecule("CCCCOc1ccccc1")
    assert torsion_fingerprint_deviation(mol, xyz, xyz @ _rotation().T) == pytest.approx(0.0, abs=1e-9)
    twisted = type(mol)(mol)
    rdMolTransforms.SetDihedralDeg(twisted.GetConformer(), 0, 1, 2, 3, 60.0)
    tfd = torsion_fingerprint_deviation(mol, xyz, twisted.GetConformer().GetPositions())
    assert tfd is not None and tfd > 0.01
    methane, xyz = _molecule("C")
    assert torsion_fingerprint_deviation(methane, xyz, xyz) is None  # no torsion: OpenFF's NaN


def test_score_molecule_rows():
    mol, xyz = _molecule("CCO")
    qm = np.stack([xyz, xyz])
    mm = np.stack([xyz + 0.01, xyz @ _rotation().T])
    scores = score_molecule(mol, ["a", "b"], qm, np.array([2.0, 1.0]), mm, np.array([5.0, 3.0]))
    assert [s.record_id for s in scores] == ["a", "b"]
    assert scores[1].ddE is None and scores[0].ddE == pytest.approx((5 - 3) - (2 - 1))
    assert scores[1].rmsd < 1e-6 and scores[0].bond_rmsd == pytest.approx(0.0, abs=1e-12)


# --------------------------------------------------------------------------------------------
# OpenFF's published rows, reproduced from OpenFF 2.0.0's own minima
# --------------------------------------------------------------------------------------------

TOLERANCE = {"ddE": 1e-6, "rmsd": 1e-6, "tfd": 1e-6, "bond_rmsd": 1e-6,
             # OpenEye holds coordinates in float32: internal angles agree to ~1e-5 degrees
             "angle_rmsd": 1e-4, "dihedral_rmsd": 1e-4, "improper_rmsd": 1e-4}
COLUMNS = {"ddE": "ddE", "rmsd": "RMSD", "tfd": "TDF", "bond_rmsd": "Bond RMSD",
           "angle_rmsd": "Angle RMSD", "dihedral_rmsd": "Dihedral RMSD",
           "improper_rmsd": "Improper RMSD"}


def _reproduce(chunk: str) -> tuple[dict[str, object], dict[str, dict[str, str]]]:
    from rdkit import Chem

    from espaloma_like.data.industry import read_industry_sdf
    from espaloma_like.data.records import record_graph
    from espaloma_like.units import KJ_TO_KCAL, NM_TO_ANGSTROM

    minima = {}
    with lzma.open(INDUSTRY / f"openff-2.0.0-minima-{chunk}.sdf.xz", "rb") as handle:
        for mol in Chem.ForwardSDMolSupplier(handle, removeHs=False, sanitize=False):
            minima[mol.GetProp("Record QCArchive")] = (mol.GetConformer().GetPositions(),
                                                       float(mol.GetProp("Energy FFXML")))
    published = {}
    with lzma.open(INDUSTRY / f"openff-metrics-{chunk}.csv.xz", "rt", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["Force Field"] == "OpenFF 2.0.0":
                published[row["Record ID"]] = row
    ours: dict[str, object] = {}
    skipped: list[str] = []
    for record in read_industry_sdf(INDUSTRY / f"qm-{chunk}.sdf.xz", skipped):
        ids = json.loads(record.metadata["record_ids"])
        scores = score_molecule(
            record_graph(record).rdkit_mol, ids, record.conformations * NM_TO_ANGSTROM,
            record.energies * KJ_TO_KCAL, np.stack([minima[i][0] for i in ids]),
            np.array([minima[i][1] for i in ids]))
        ours.update({s.record_id: s for s in scores})
    assert skipped == []
    return ours, published


def _check_chunk(chunk: str) -> tuple[float, float]:
    ours, published = _reproduce(chunk)
    assert set(ours) == set(published) and len(published) == 294
    for record_id, row in published.items():
        for attribute, column in COLUMNS.items():
            expected = float(row[column]) if row[column] not in ("", "nan") else None
            found = getattr(ours[record_id], attribute)
            if expected is None:
                assert found is None, (record_id, column)
            else:
                assert found == pytest.approx(expected, abs=TOLERANCE[attribute]), (record_id, column)
    mean_abs_dde = float(np.mean([abs(s.ddE) for s in ours.values() if s.ddE is not None]))
    median_rmsd = float(np.median([s.rmsd for s in ours.values()]))
    return mean_abs_dde, median_rmsd


@needs_industry
def test_reproduces_openff_200_rows_chunk_1():
    """Every metric of every record of chunk 1, from OpenFF 2.0.0's own minima."""
    mean_abs_dde, median_rmsd = _check_chunk("001")
    assert round(mean_abs_dde, 2) == 1.98 and round(median_rmsd, 3) == 0.415


@pytest.mark.slow
@needs_industry
@pytest.mark.parametrize("chunk", ["002", "003"])
def test_reproduces_openff_200_rows_chunks_2_3(chunk):
    _check_chunk(chunk)


# --------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------


def _cli(out: Path, *extra: str) -> None:
    from espaloma_like.cli.main import main

    assert main(["benchmark", "conformers", "--quick", "--workers", "1", "--no-progress",
                 "--industry", str(INDUSTRY), "--out", str(out), *extra]) == 0


@needs_industry
def test_cli_quick_end_to_end_and_resume(tmp_path, capsys):
    out = tmp_path / "conformers"
    _cli(out)
    document = json.loads((out / "conformers.json").read_text())
    assert document["settings"]["quick"] and document["settings"]["split"] == "test"
    assert document["n_molecules"] == 3 and not document["failures"]
    rows = document["records"]
    assert rows and all(r["source"].startswith("qm-") for r in rows)
    methods = ["model", "openff-2.0.0 (published)", "gaff-2.11 (published)"]
    assert all(set(r["methods"]) == set(methods) for r in rows)
    for row in rows:  # one reference conformer per molecule, the rest with finite metrics
        model = row["methods"]["model"]
        assert model["rmsd"] >= 0 and math.isfinite(model["mm_energy"])
    refs = [r for r in rows if r["methods"]["model"]["ddE"] is None]
    assert len(refs) == 3 and {r["molecule"] for r in refs} == {r["molecule"] for r in rows}
    published = document["comparisons"]["published"]["overall"]
    assert published["n_records"] == len(rows)
    assert published["methods"]["model"]["mean_abs_ddE"] > 0
    for name in ("conformers_all.png", "conformers_published.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (out / "conformers.md").read_text()
    assert "| openff-2.0.0 (published) |" in text and "By net charge" in text
    lines = (out / "conformers_results.jsonl").read_text().splitlines()
    assert len(lines) == 3

    # second run: nothing to minimize, same numbers
    _cli(out)
    assert (out / "conformers_results.jsonl").read_text().splitlines() == lines
    again = json.loads((out / "conformers.json").read_text())
    assert again["records"] == rows

    # a run killed after two molecules: only the third is minimized again
    (out / "conformers_results.jsonl").write_text("\n".join(lines[:2]) + "\n")
    _cli(out)
    resumed = (out / "conformers_results.jsonl").read_text().splitlines()
    assert resumed[:2] == lines[:2] and len(resumed) == 3
    assert json.loads(resumed[2])["molecule"] == json.loads(lines[2])["molecule"]
    assert json.loads((out / "conformers.json").read_text())["records"] == rows
    capsys.readouterr()


@needs_industry
@pytest.mark.parametrize("charge", ["charged", "neutral"])
def test_charge_filter_keeps_only_that_kind_and_counts_after_it(tmp_path, charge):
    from espaloma_like.benchmark.conformers import ConformerBenchmarkConfig, _select_records

    config = ConformerBenchmarkConfig(out=tmp_path, industry=INDUSTRY, split="validation",
                                      max_molecules=4, charge=charge)
    records, _ = _select_records(config)
    assert len(records) == 4
    assert all((r.total_charge != 0) == (charge == "charged") for r in records)
    assert all(r.metadata["split"] == "validation" for r in records)


def test_unknown_charge_filter_is_an_error(tmp_path):
    from espaloma_like.benchmark.conformers import ConformerBenchmarkConfig, run_conformer_benchmark

    with pytest.raises(ValueError, match="charge filter 'cations'"):
        run_conformer_benchmark(ConformerBenchmarkConfig(out=tmp_path / "out", charge="cations"))
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@needs_industry
def test_process_pool_gives_the_same_results(tmp_path):
    _cli(tmp_path / "serial")
    from espaloma_like.cli.main import main

    assert main(["benchmark", "conformers", "--quick", "--workers", "2", "--no-progress",
                 "--industry", str(INDUSTRY), "--out", str(tmp_path / "pool")]) == 0
    serial = json.loads((tmp_path / "serial" / "conformers.json").read_text())["records"]
    pool = json.loads((tmp_path / "pool" / "conformers.json").read_text())["records"]
    # the network runs in float32, whose sums depend on the torch thread count (the workers run
    # one thread each): equal to float32 precision, carried through the minimizations (which
    # amplify it a little where the surface is flat: 4e-4 relative in one RMSD)
    assert [r["record_id"] for r in pool] == [r["record_id"] for r in serial]
    for p, s in zip(pool, serial, strict=True):
        assert p["methods"].keys() == s["methods"].keys()
        assert {k: v for k, v in p.items() if k != "methods"} == \
            {k: v for k, v in s.items() if k != "methods"}
        for method, metrics in s["methods"].items():
            pooled = p["methods"][method]
            assert pooled.keys() == metrics.keys()
            for key, value in metrics.items():
                if value is None:
                    assert pooled[key] is None, (method, key)
                else:
                    assert pooled[key] == pytest.approx(value, rel=1e-3, abs=1e-6), (method, key)


@pytest.mark.parametrize(("smiles", "groups"), [
    ("CC[NH3+]", ("ammonium",)),
    ("NC(=[NH2+])N", ("amidinium / guanidinium",)),
    ("c1cc[nH+]cc1", ("aromatic N+",)),
    ("[NH3+]CC(=O)[O-]", ("ammonium", "carboxylate")),
    ("CS(=O)(=O)[O-]", ("sulfonate / sulfate",)),
    ("COP(=O)([O-])O", ("phosphate / phosphonate",)),
    ("c1nn[n-]n1", ("anionic N",)),
    ("C[N+](=O)[O-]", ()),  # nitro: formal charges, no charged group
    ("CCO", ()),
])
def test_charged_groups_of_the_breakdown(smiles: str, groups: tuple[str, ...]) -> None:
    from espaloma_like.benchmark.conformers_report import charged_groups

    assert charged_groups(smiles) == groups
