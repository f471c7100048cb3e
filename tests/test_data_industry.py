"""The OpenFF industry-benchmark reader, its scaffold split, and multi-fidelity training data."""

from __future__ import annotations

import csv
import json
import lzma
from pathlib import Path

import numpy as np
import pytest

from espaloma_like.data.industry import (
    INDUSTRY_SUBSET,
    IndustrySplit,
    industry_split,
    read_industry_sdf,
)
from espaloma_like.data.readers import read_qm_records
from espaloma_like.exceptions import DataFormatError
from espaloma_like.units import KCAL_TO_KJ

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "qm-reference" / "openff_industry_b3lyp"
SPLIT_FILE = REPO / "data" / "openff_industry_split.csv"


def _sd_record(smiles: str, energy: float, record_id: int, seed: int, block_smiles: str | None = None,
               ) -> str:
    """One SD record as the industry files write it: 3D block with H, and the three tags."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles(block_smiles or smiles))
    AllChem.EmbedMolecule(mol, randomSeed=seed)
    tag_mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    tag = Chem.MolToSmiles(tag_mol, allHsExplicit=True)
    return (Chem.MolToMolBlock(mol) + f"> <SMILES QCArchive>\n{tag}\n\n"
            f"> <Energy QCArchive>\n{energy!r}\n\n> <Record QCArchive>\n{record_id}\n\n$$$$\n")


@pytest.fixture
def industry_dir(tmp_path: Path) -> Path:
    text = (_sd_record("CCO", -97000.0, 11, 1) + _sd_record("CCO", -96998.5, 12, 2)
            + _sd_record("CC(=O)[O-]", -143000.0, 21, 3)
            # tagged acetate, but the block is acetic acid: one atom more, skipped
            + _sd_record("CC(=O)[O-]", -143001.0, 22, 4, block_smiles="CC(=O)O")
            + _sd_record("CC(=O)[O-]", -142999.0, 23, 5)
            # tagged propanol, but the block is methyl ethyl ether: same atoms, other bonds
            + _sd_record("CCCO", -120000.0, 31, 6, block_smiles="CCOC")
            + _sd_record("C[Si](C)(C)C", -300000.0, 41, 7))
    folder = tmp_path / "industry"
    folder.mkdir()
    with lzma.open(folder / "qm-001.sdf.xz", "wt") as handle:
        handle.write(text)
    return folder


def test_reader_groups_records_converts_units_and_reports_bad_records(industry_dir: Path) -> None:
    skipped: list[str] = []
    records = list(read_industry_sdf(industry_dir, skipped))
    assert [r.name for r in records] == ["industry-11", "industry-21"]
    ethanol, acetate = records
    assert ethanol.n_conformations == 2 and ethanol.n_atoms == 9
    np.testing.assert_allclose(ethanol.energies, np.array([-97000.0, -96998.5]) * KCAL_TO_KJ)
    assert np.all(ethanol.forces == 0.0)
    assert ethanol.metadata["force_label"] == "zero_at_minimum"
    assert json.loads(ethanol.metadata["record_ids"]) == ["11", "12"]
    assert ethanol.subset == INDUSTRY_SUBSET and ethanol.level_of_theory == "B3LYP-D3BJ/DZVP"
    # coordinates in nm: C-C bond of ~1.5 A
    assert 0.14 < np.linalg.norm(ethanol.conformations[0, 0] - ethanol.conformations[0, 1]) < 0.16
    assert acetate.total_charge == -1
    assert json.loads(acetate.metadata["record_ids"]) == ["21", "23"]
    reasons = "\n".join(skipped)
    assert "record 22" in reasons and "atoms in the block" in reasons
    assert "record 31" in reasons and "connectivity" in reasons
    assert "unsupported elements Si" in reasons
    assert ethanol.metadata["split"] == industry_split(ethanol.metadata["smiles"]).record_split


def test_reader_keeps_the_atom_order_of_the_block(industry_dir: Path) -> None:
    from espaloma_like.data.records import record_graph

    record = next(read_industry_sdf(industry_dir))
    graph = record_graph(record)
    np.testing.assert_array_equal(graph.atomic_numbers, record.atomic_numbers)
    assert list(record.atomic_numbers[:3]) == [6, 6, 8]  # RDKit writes heavy atoms first


def test_read_qm_records_dispatches_by_path(industry_dir: Path, tmp_path: Path) -> None:
    assert len(list(read_qm_records(industry_dir))) == 2
    with pytest.raises(DataFormatError, match="unknown QM data format"):
        (tmp_path / "x.csv").write_text("a,b\n")
        list(read_qm_records(tmp_path / "x.csv"))
    with pytest.raises(FileNotFoundError):
        list(read_qm_records(tmp_path / "missing.h5"))


def test_scaffold_split_is_deterministic_and_keeps_scaffolds_together() -> None:
    # same scaffold (benzene ring) -> same split, whatever the substituents
    assert industry_split("Cc1ccccc1") == industry_split("OCCc1ccccc1")
    assert industry_split("CCO") == industry_split("CCO")
    assert isinstance(industry_split("c1ccncc1"), IndustrySplit)
    assert IndustrySplit.TEST.record_split == "held_out"


@pytest.mark.skipif(not SPLIT_FILE.is_file(), reason="data/openff_industry_split.csv not in the tree")
def test_recorded_split_file_matches_the_split_rule() -> None:
    with SPLIT_FILE.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) > 9000
    counts = {s: sum(r["split"] == s for r in rows) for s in ("train", "validation", "test")}
    assert counts["test"] > 800 and counts["validation"] > 800 and counts["train"] > 7000
    for row in rows[::97]:  # recompute a sample from the SMILES
        assert industry_split(row["smiles"]).value == row["split"], row["name"]


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/qm-reference/openff_industry_b3lyp is absent")
def test_real_industry_file_reads_without_skips_and_matches_the_split_file() -> None:
    skipped: list[str] = []
    records = list(read_industry_sdf(SHARED / "qm-001.sdf.xz", skipped))
    assert skipped == []
    assert sum(r.n_conformations for r in records) > 250
    with SPLIT_FILE.open() as handle:
        recorded = {r["name"]: r for r in csv.DictReader(handle)}
    for record in records:
        row = recorded[record.name]
        assert row["record_ids"].split() == json.loads(record.metadata["record_ids"])
        assert IndustrySplit(row["split"]).record_split == record.metadata["split"]


def test_minima_enter_training_with_their_file_weights(industry_dir: Path) -> None:
    from espaloma_like.nn.model import ModelConfig
    from espaloma_like.training.config import DataFile
    from espaloma_like.training.dataset import load_training_molecules

    molecules = load_training_molecules(
        [DataFile(path=str(industry_dir), energy_weight=3.0, force_weight=2.0)],
        ModelConfig(hidden=16, n_layers=1, readout_hidden=16))
    assert [m.name for m in molecules] == ["industry-11", "industry-21"]
    assert all(m.energy_weight == 3.0 and m.force_weight == 2.0 for m in molecules)
    assert molecules[0].n_conformations == 2


def test_loss_weights_scale_each_molecule_term(industry_dir: Path) -> None:
    import torch

    from espaloma_like.nn.model import ModelConfig, ParameterModel
    from espaloma_like.training.config import DataFile, LossConfig
    from espaloma_like.training.dataset import load_training_molecules
    from espaloma_like.training.loss import compute_loss, make_batch

    config = ModelConfig(hidden=16, n_layers=1, readout_hidden=16)
    torch.manual_seed(0)
    model = ParameterModel(config)
    quiet = dict(charge_weight=0.0, torsion_l2=0.0, torsion_l1=0.0)

    def loss_of(energy_weight: float, force_weight: float, loss: LossConfig) -> float:
        molecules = load_training_molecules(
            [DataFile(path=str(industry_dir), energy_weight=energy_weight,
                      force_weight=force_weight)], config)
        batch = make_batch(molecules, 4, np.random.default_rng(0))
        value, _ = compute_loss(model, batch, loss, create_graph=False)
        return float(value)

    energy_only = LossConfig(energy_weight=1.0, force_weight=0.0, **quiet)
    force_only = LossConfig(energy_weight=0.0, force_weight=1.0, **quiet)
    assert loss_of(3.0, 1.0, energy_only) == pytest.approx(3.0 * loss_of(1.0, 1.0, energy_only))
    assert loss_of(1.0, 2.5, force_only) == pytest.approx(2.5 * loss_of(1.0, 1.0, force_only))
    assert loss_of(1.0, 1.0, force_only) > 0.0  # zero-force target: residual MM forces count


def test_data_info_reads_industry_files(industry_dir: Path) -> None:
    from espaloma_like.data.build import dataset_info, info_markdown

    info = dataset_info(industry_dir)
    assert info["molecules"] == 2 and info["conformations"] == 4
    assert info["skipped_records"] == 3
    assert info["molecules_by_element"] == {"C": 2, "H": 2, "O": 2}
    assert info["level_of_theory"] == {"B3LYP-D3BJ/DZVP": 2}
    assert "skipped" in info_markdown(info)
