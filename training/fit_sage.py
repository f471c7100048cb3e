"""Recipe: fit the GNN to OpenFF Sage 2.2.1 from random weights (issue: model can express a FF).

Molecules: openff-toolkit's MiniDrugBank.sdf (records RDKit cannot read, or Sage cannot type,
are skipped and listed). Split by molecule: a stable hash of the canonical SMILES puts 20% in a
held-out set. Targets: Sage bonded parameters and MMFF94 charges (fast stand-in for AM1-BCC in
this fit only). Held-out check: valence energies and forces of model vs Sage on strained ETKDG
conformers.

    .venv/bin/python training/fit_sage.py --seconds 240 \
        --checkpoint espaloma_like/models/sage-fit.pt --report benchmarks/fit_to_sage.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import time
from pathlib import Path

import torch

from espaloma_like._io import atomic_write_text


def held_out(smiles: str, fraction: float = 0.2) -> bool:
    digest = hashlib.sha256(smiles.encode()).digest()
    return int.from_bytes(digest[:4], "little") / 2**32 < fraction


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=240.0, help="training wall-time budget")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", default="espaloma_like/models/sage-fit.pt")
    parser.add_argument("--report", default="benchmarks/fit_to_sage.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from openff.toolkit.utils import get_data_file_path

    from espaloma_like.molecule import iter_molecule_file
    from espaloma_like.nn.checkpoint import save_checkpoint
    from espaloma_like.nn.model import ModelConfig
    from espaloma_like.training.reference_fit import (
        fit_to_reference,
        prepare_all,
        valence_energy_comparison,
    )

    start = time.perf_counter()
    graphs, unreadable = [], []
    for name, item in iter_molecule_file(get_data_file_path("molecules/MiniDrugBank.sdf")):
        if isinstance(item, Exception):
            unreadable.append(f"{name}: {item}")
        else:
            graphs.append(item)
    config = ModelConfig()
    prepared, targets, skipped = prepare_all(graphs, config)
    train = [(p, t) for p, t in zip(prepared, targets, strict=True) if not held_out(p.graph.smiles)]
    test = [p for p in prepared if held_out(p.graph.smiles)]
    prep_seconds = time.perf_counter() - start
    print(f"{len(train)} training, {len(test)} held-out molecules; {len(unreadable) + len(skipped)} skipped")

    def progress(record: dict[str, float]) -> None:
        if int(record["epoch"]) % 5 == 0:
            print(f"epoch {int(record['epoch'])} loss {record['loss']:.4f} ({record['seconds']:.0f} s)")

    result = fit_to_reference(
        [p for p, _ in train], [t for _, t in train], config, seconds=args.seconds,
        seed=args.seed, progress=progress,
    )
    save_checkpoint(result.model, args.checkpoint, metadata={
        "name": Path(args.checkpoint).stem,
        "description": "fitted to OpenFF Sage 2.2.1 parameters (MMFF94 charges); not QM-trained",
        "training": f"python training/fit_sage.py --seconds {args.seconds:g}",
    })
    untrained = fit_to_reference([p for p, _ in train[:1]], [t for _, t in train[:1]], config,
                                 seconds=0.0, max_epochs=0, seed=args.seed).model
    graphs_test = [p.graph for p in test]
    report = {
        "description": "GNN fitted to Sage 2.2.1 bonded parameters (+MMFF94 charges) from random "
                       "weights; held-out molecules compared by valence energy and forces",
        "command": f"python training/fit_sage.py --seconds {args.seconds:g}",
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
        "n_train": len(train), "n_held_out": len(test),
        "skipped": unreadable + skipped,
        "preparation_seconds": prep_seconds,
        "training_seconds": result.seconds, "epochs": len(result.history),
        "final_train_loss": result.history[-1]["loss"] if result.history else None,
        "held_out_fitted": valence_energy_comparison(result.model, graphs_test, seed=1),
        "held_out_untrained": valence_energy_comparison(untrained, graphs_test, seed=1),
    }
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(args.report), json.dumps(report, indent=2) + "\n")
    save_checkpoint(result.model, args.checkpoint, metadata={
        "name": Path(args.checkpoint).stem,
        "description": "fitted to OpenFF Sage 2.2.1 parameters (MMFF94 charges); not QM-trained",
        "training": report["command"], "held_out": report["held_out_fitted"],
    })
    print(json.dumps(report["held_out_fitted"], indent=2))


if __name__ == "__main__":
    main()
