"""Copy a trained checkpoint into the package registry with its provenance.

    .venv/bin/python training/ship_model.py runs/sparse/best.pt --name default \
        --config training/train_default.yaml training/train_sparse.yaml \
        --data data/espaloma_like_gfn2xtb.h5 \
        --report benchmarks/results/evaluation/report.json

Writes ``espaloma_like/models/<name>.pt`` (metadata: training config, dataset SHA-256, summary of
the evaluation report) and ``espaloma_like/models/<name>.json`` with the same information.

``--domain-copy NAME`` copies the domain of shipped model NAME (same training data).
``--domain-from DATA...`` adds the applicability domain (elements, net-charge and heavy-atom
ranges, atom environments) of the training and validation molecules of the QM files (SPICE
``.h5``, OpenFF industry SDF directory; held-out molecules are left out) to the JSON sidecar,
where ``parametrize`` reads it. To add or recompute only the domain of a shipped model, without
touching its checkpoint:

    .venv/bin/python training/ship_model.py --name default --domain-only \
        --domain-from data/espaloma_like_gfn2xtb.h5 ../shared/qm-reference/openff_industry_b3lyp
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from espaloma_like._io import atomic_write_text
from espaloma_like.domain import DOMAIN_KEY


def sha256(path: Path) -> str:
    """SHA-256 of a file; of a directory, over its files' names and hashes in name order."""
    digest = hashlib.sha256()
    if path.is_dir():
        for child in sorted(p for p in path.iterdir() if p.is_file()):
            digest.update(f"{child.name}:{sha256(child)}\n".encode())
        return digest.hexdigest()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _domain(paths: list[str]) -> dict:
    from espaloma_like.domain import domain_from_qm_files

    domain = domain_from_qm_files(paths)
    print(f"applicability domain: {domain.n_molecules} molecules, elements {domain.elements}, "
          f"net charge {domain.net_charge_range}, heavy atoms {domain.heavy_atom_range}, "
          f"{len(domain.environments)} atom environments")
    return domain.to_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", nargs="?")
    parser.add_argument("--name", default="default")
    parser.add_argument("--config", nargs="+",
                        help="the run's config, preceded by the configs of the runs it started from")
    parser.add_argument("--data", nargs="+")
    parser.add_argument("--report", default=None)
    parser.add_argument("--description", default=(
        "GNN force field trained end to end on GFN2-xTB energies and forces (and AM1-BCC "
        "charges) of the espaloma_like dataset; LJ from Sage 2.2.1"))
    parser.add_argument("--domain-from", nargs="+", default=None, metavar="DATA",
                        help="QM training files whose train/validation molecules define the "
                             "model's applicability domain")
    parser.add_argument("--domain-copy", default=None, metavar="NAME",
                        help="copy the applicability domain of the shipped model NAME (a model "
                             "trained on the same data, e.g. a functional-form option)")
    parser.add_argument("--domain-only", action="store_true",
                        help="only (re)compute the domain of the shipped model --name (needs "
                             "--domain-from); its checkpoint is left as it is")
    args = parser.parse_args()

    from espaloma_like.nn.checkpoint import MODELS_DIR, load_checkpoint, save_checkpoint

    if args.domain_only:
        if not args.domain_from:
            parser.error("--domain-only needs --domain-from")
        sidecar = MODELS_DIR / f"{args.name}.json"
        if not sidecar.is_file():
            parser.error(f"no shipped model {args.name!r} ({sidecar} missing)")
        info = json.loads(sidecar.read_text())
        info[DOMAIN_KEY] = _domain(args.domain_from)
        atomic_write_text(sidecar, json.dumps(info, indent=2, default=str) + "\n")
        print(f"wrote the applicability domain of {args.name} to {sidecar}")
        return
    if not args.checkpoint or not args.config or not args.data:
        parser.error("the checkpoint, --config and --data are required (or --domain-only)")

    import yaml

    model, metadata = load_checkpoint(args.checkpoint)
    info = {
        "name": args.name,
        "description": args.description,
        "training_config": yaml.safe_load(Path(args.config[-1]).read_text()),
        # the recipe chain: each run started from the previous one's model (init_from)
        "parent_training_configs": [yaml.safe_load(Path(c).read_text()) for c in args.config[:-1]],
        "training_step": metadata.get("step"),
        "validation": metadata.get("validation"),
        # the configuration of the network in the checkpoint (init_from runs keep their
        # parent's architecture, whatever the training config's model section says)
        "model_config": model.config.model_dump(mode="json"),
        "datasets": {p: sha256(Path(p)) for p in args.data},
        "evaluation_report": args.report,
    }
    if args.report:
        report = json.loads(Path(args.report).read_text())
        info["evaluation_summary"] = report.get("overall", report.get("metrics"))
    save_checkpoint(model, MODELS_DIR / f"{args.name}.pt", metadata=info)
    if args.domain_from:  # in the sidecar only: read without loading the checkpoint
        info[DOMAIN_KEY] = _domain(args.domain_from)
    elif args.domain_copy:
        source = json.loads((MODELS_DIR / f"{args.domain_copy}.json").read_text())
        if DOMAIN_KEY not in source:
            parser.error(f"shipped model {args.domain_copy!r} has no applicability domain")
        info[DOMAIN_KEY] = source[DOMAIN_KEY]
    atomic_write_text(MODELS_DIR / f"{args.name}.json",
                      json.dumps(info, indent=2, default=str) + "\n")
    print(f"shipped {MODELS_DIR / args.name}.pt")


if __name__ == "__main__":
    main()
