"""Test helper: a small real GFN2-xTB dataset with AM1-BCC labels, built by the package."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def build_tiny_qm_file(root: Path, smiles: Sequence[str], n_md_per_conformer: int) -> Path:
    """Build ``root/tiny.h5``: 3 ETKDG conformers per molecule plus short MD, no scans, no split."""
    from espaloma_like.data.build import BuildConfig, build_dataset

    config = BuildConfig.model_validate({
        "output": str(root / "tiny.h5"),
        "sources": {"builtin": False, "smiles": list(smiles), "charged_variants": False},
        "sampling": {"n_etkdg": 3, "n_md_per_conformer": n_md_per_conformer,
                     "md_interval_steps": 50, "torsion_scan": False},
        "scan_every": 0, "am1bcc": True, "split": {"held_out_fraction": 0.0}, "workers": 1,
    })
    build_dataset(config, progress=False)
    return Path(config.output)
