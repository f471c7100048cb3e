"""Dataset builds: resumable (same file as an uninterrupted run), failures recorded, info."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from espaloma_like.data.build import BuildConfig, BuildInterrupted, build_dataset, dataset_info
from espaloma_like.data.spice import read_spice_hdf5

SMILES = ["CCO", "CC(=O)[O-]", "C[NH3+]", "c1ccccc1O", "OCCN", "C[Si](C)(C)C"]


def _config(root: Path, name: str) -> BuildConfig:
    return BuildConfig.model_validate({
        "output": str(root / f"{name}.h5"),
        "sources": {"builtin": False, "smiles": SMILES, "charged_variants": False},
        "sampling": {"n_etkdg": 2, "n_md_per_conformer": 1, "md_interval_steps": 50,
                     "torsion_scan": True, "n_scan_points": 4},
        "scan_every": 2, "am1bcc": False, "split": {"held_out_fraction": 0.3}, "workers": 1,
    })


def _contents(path: Path) -> list[tuple]:  # type: ignore[type-arg]
    return [(r.name, r.mapped_smiles, r.conformations.tobytes(), r.energies.tobytes(),
             r.forces.tobytes(), r.metadata.get("split")) for r in read_spice_hdf5(path)]


def test_interrupted_build_resumes_to_the_same_file(tmp_path: Path) -> None:
    straight = _config(tmp_path, "straight")
    report = build_dataset(straight, progress=False)
    assert report["molecules_done"] == 5  # the Si molecule is dropped by the filter, with a reason
    assert report["molecules_dropped_by_reason"] == {"unsupported element": 1}

    resumed = _config(tmp_path, "resumed")
    with pytest.raises(BuildInterrupted):
        build_dataset(resumed, progress=False, stop_after=2)
    assert not Path(resumed.output).exists()  # nothing half-written
    done = {p.name: p.stat().st_mtime_ns for p in (resumed.work_path / "status").iterdir()}
    assert len(done) == 2
    build_dataset(resumed, progress=False)
    after = {p.name: p.stat().st_mtime_ns for p in (resumed.work_path / "status").iterdir()}
    assert len(after) == 5
    assert all(after[name] == stamp for name, stamp in done.items())  # not computed twice
    assert _contents(Path(straight.output)) == _contents(Path(resumed.output))


def test_info_counts_come_from_the_file(tmp_path: Path) -> None:
    config = _config(tmp_path, "info")
    build_dataset(config, progress=False)
    info = dataset_info(config.output)
    records = list(read_spice_hdf5(config.output))
    assert info["molecules"] == len(records) == 5
    assert info["conformations"] == sum(r.n_conformations for r in records)
    assert info["molecules_by_net_charge"] == {"-1": 1, "0": 3, "1": 1}
    assert set(info["molecules_by_split"]) <= {"train", "held_out"}
    out = subprocess.run([sys.executable, "-m", "espaloma_like.cli.main", "data", "info",
                          config.output, "--json"], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["conformations"] == info["conformations"]
    missing = subprocess.run([sys.executable, "-m", "espaloma_like.cli.main", "data", "info",
                              str(tmp_path / "nope.h5")], capture_output=True, text=True)
    assert missing.returncode == 1 and "no such dataset file" in missing.stderr


def test_engine_failures_are_recorded_not_dropped(tmp_path: Path) -> None:
    from espaloma_like.data.engines import XTBEngine
    from espaloma_like.molecule import from_smiles

    graph = from_smiles("CCO")
    xyz = np.zeros((2, graph.n_atoms, 3))
    xyz[0] = np.random.default_rng(0).normal(0, 0.15, (graph.n_atoms, 3))
    result = XTBEngine(n_threads=1).compute(graph.atomic_numbers, xyz, total_charge=0)
    assert result.errors[1] is not None and np.isnan(result.energies[1])
    record = result.to_record(XTBEngine(), name="x", mapped_smiles=graph.mapped_smiles,
                              atomic_numbers=graph.atomic_numbers, conformations=xyz)
    assert record.metadata["n_failed"] == "1" and record.n_conformations == 1


def test_scaffold_split_keeps_scaffolds_together() -> None:
    from espaloma_like.data.build import SplitConfig, scaffold_split

    smiles = ["c1ccccc1O", "c1ccccc1N", "c1ccccc1C", "CCO", "CCCO", "C1CCNCC1", "C1CCNCC1C"]
    splits = scaffold_split(smiles, SplitConfig(held_out_fraction=0.5))
    assert splits[0] == splits[1] == splits[2]  # benzene scaffold
    assert splits[5] == splits[6]  # piperidine
    assert splits == scaffold_split(smiles, SplitConfig(held_out_fraction=0.5))  # fixed


@pytest.mark.slow
def test_dask_local_cluster_gives_the_same_file_as_serial(tmp_path: Path) -> None:
    pytest.importorskip("dask.distributed")
    serial = _config(tmp_path, "serial")
    build_dataset(serial, progress=False)
    parallel = _config(tmp_path, "parallel").model_copy(update={"workers": 2})
    build_dataset(parallel, progress=False)
    assert _contents(Path(serial.output)) == _contents(Path(parallel.output))


def test_nci_source_is_selected_and_capped() -> None:
    from espaloma_like.data.build import select_molecules

    config = BuildConfig.model_validate({
        "output": "unused.h5",
        "sources": {"builtin": False, "nci": True, "charged_variants": False,
                    "max_per_source": {"nci": 5}},
    })
    kept, dropped = select_molecules(config)
    assert len(kept) == 5 and {m.source for m in kept} == {"nci"}
    assert all(m.name.startswith("NCI-") for m in kept)
    reasons = {row["reason"].split(":")[0] for row in dropped}
    assert {"over max_per_source", "too many heavy atoms", "unsupported element"} <= reasons


def test_resumed_build_removes_stale_temporaries_and_refuses_a_busy_work_dir(
        tmp_path: Path) -> None:
    from espaloma_like._io import DirectoryLock
    from espaloma_like.exceptions import OutputLockedError

    config = BuildConfig.model_validate({
        "output": str(tmp_path / "two.h5"),
        "sources": {"builtin": False, "smiles": ["CCO", "CC#N"], "charged_variants": False},
        "sampling": {"n_etkdg": 2, "n_md_per_conformer": 1, "md_interval_steps": 50,
                     "torsion_scan": False},
        "scan_every": 0, "am1bcc": False, "split": {"held_out_fraction": 0.0}, "workers": 1,
    })
    with pytest.raises(BuildInterrupted):
        build_dataset(config, progress=False, stop_after=1)
    # what a build killed while writing a shard and a status file leaves behind
    stale = [config.work_path / "shards" / ".0123abcd.h5.k3j4x9.tmp",
             config.work_path / "status" / ".0123abcd.json.q1w2e3.tmp"]
    for path in stale:
        path.write_bytes(b"partial")
    with DirectoryLock(config.work_path, "dataset build"):  # a build still running
        with pytest.raises(OutputLockedError, match="in use by another dataset build"):
            build_dataset(config, progress=False)
        assert all(path.exists() for path in stale)  # a live build's files are not touched
    report = build_dataset(config, progress=False)
    assert report["molecules_done"] == 2
    assert not any(path.exists() for path in stale)
    assert not list(config.work_path.rglob("*.tmp"))
    assert len(list(read_spice_hdf5(config.output))) == 2


def test_scan_only_build_of_a_molecule_without_a_scannable_bond_says_why(tmp_path: Path) -> None:
    """Ethanesulfonate: its only rotors are a methyl and a symmetric -SO3 group."""
    from espaloma_like.data.build import label_molecule
    from espaloma_like.data.sources import MoleculeSource

    config = BuildConfig.model_validate({
        "output": str(tmp_path / "scans.h5"),
        "sources": {"builtin": False, "smiles": ["CCS(=O)(=O)[O-]"], "charged_variants": False},
        "sampling": {"n_etkdg": 1, "include_etkdg": False, "include_minimized": False,
                     "n_md_per_conformer": 0, "torsion_scan": True, "n_scan_points": 4},
        "scan_every": 1, "am1bcc": False, "workers": 1,
    })
    result = label_molecule(0, MoleculeSource("CCS(=O)(=O)[O-]", "user", "esa"), config, "held_out")
    assert result.record is None
    assert result.error is not None and "no bond the torsion scan accepts" in result.error


def test_engine_and_device_are_checked_before_any_molecule_is_labelled(tmp_path: Path) -> None:
    from pydantic import ValidationError

    base = {"output": str(tmp_path / "gpu.h5"),
            "sources": {"builtin": False, "smiles": ["CCO"], "charged_variants": False},
            "am1bcc": False}
    with pytest.raises(ValidationError, match="CPU only"):
        BuildConfig.model_validate({**base, "engine": "gfn2-xtb", "engine_device": "gpu"})
    with pytest.raises(ValidationError, match="unknown engine"):
        BuildConfig.model_validate({**base, "engine": "mp2"})
    gpu = BuildConfig.model_validate({**base, "engine": "b3lyp-d3bj/dzvp", "engine_device": "gpu"})
    try:
        import cupy

        usable = int(cupy.cuda.runtime.getDeviceCount()) > 0
    except Exception:
        usable = False
    if usable and importlib.util.find_spec("gpu4pyscf") is not None:
        pytest.skip("gpu4pyscf and a CUDA device are present: nothing fails here")
    # without a GPU the build stops before labelling: no molecule is marked done as 'failed'
    with pytest.raises((ImportError, RuntimeError), match="device='gpu'"):
        build_dataset(gpu, progress=False)
    assert not (gpu.work_path / "status").exists() or not any((gpu.work_path / "status").iterdir())
    # the command line's override is validated like the file
    config_file = tmp_path / "build.yaml"
    config_file.write_text(json.dumps({**base, "engine": "gfn2-xtb"}))
    refused = subprocess.run([sys.executable, "-m", "espaloma_like.cli.main", "data", "build",
                              str(config_file), "--engine-device", "gpu"],
                             capture_output=True, text=True)
    assert refused.returncode != 0 and "CPU only" in refused.stderr
    assert not Path(base["output"]).exists()  # type: ignore[arg-type]
