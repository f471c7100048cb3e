"""Copy a trained checkpoint into the package registry with its provenance.

    .venv/bin/python training/ship_model.py runs/sparse/best.pt --name default \
        --config training/train_default.yaml training/train_sparse.yaml \
        --data data/espaloma_like_gfn2xtb.h5 \
        --report benchmarks/results/evaluation/report.json

Writes ``espaloma_like/models/<name>.pt`` (metadata: training config, dataset SHA-256, summary of
the evaluation report) and ``espaloma_like/models/<name>.json`` with the same information.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from espaloma_like._io import atomic_write_text


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--name", default="default")
    parser.add_argument("--config", required=True, nargs="+",
                        help="the run's config, preceded by the configs of the runs it started from")
    parser.add_argument("--data", nargs="+", required=True)
    parser.add_argument("--report", default=None)
    args = parser.parse_args()

    import yaml

    from espaloma_like.nn.checkpoint import MODELS_DIR, load_checkpoint, save_checkpoint

    model, metadata = load_checkpoint(args.checkpoint)
    info = {
        "name": args.name,
        "description": "GNN force field trained end to end on GFN2-xTB energies and forces "
                       "(and AM1-BCC charges) of the espaloma_like dataset; LJ from Sage 2.2.1",
        "training_config": yaml.safe_load(Path(args.config[-1]).read_text()),
        # the recipe chain: each run started from the previous one's model (init_from)
        "parent_training_configs": [yaml.safe_load(Path(c).read_text()) for c in args.config[:-1]],
        "training_step": metadata.get("step"),
        "validation": metadata.get("validation"),
        "datasets": {p: sha256(Path(p)) for p in args.data},
        "evaluation_report": args.report,
    }
    if args.report:
        report = json.loads(Path(args.report).read_text())
        info["evaluation_summary"] = report.get("overall", report.get("metrics"))
    save_checkpoint(model, MODELS_DIR / f"{args.name}.pt", metadata=info)
    atomic_write_text(MODELS_DIR / f"{args.name}.json",
                      json.dumps(info, indent=2, default=str) + "\n")
    print(f"shipped {MODELS_DIR / args.name}.pt")


if __name__ == "__main__":
    main()
