"""Build geometry targets (``espaloma_like.training.geometry_targets``) for a fine-tuning.

Minimizes DFT minima of the industry set's train (or validation) split with MODEL (the
conformer benchmark's OpenMM minimization) and stores, per conformer, the MM minimum, its
deviation from the DFT minimum and the softest normal modes of the MM Hessian there. Molecules
are taken in a fixed order (a hash of their name), so ``--molecules`` grows the same set;
re-running resumes (the molecules already in OUT are skipped).

    .venv/bin/python training/geometry_targets.py runs/form_intramolecular_nonbonded/best.pt \\
        --data ../shared/qm-reference/openff_industry_b3lyp --out runs/geometry_targets/targets.h5 \\
        --molecules 1500 --conformations 2 --workers 2
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger("geometry_targets")
_MODEL: Any = None


def _init(model_path: str) -> None:
    import torch

    from espaloma_like.api import load_model

    global _MODEL
    torch.set_num_threads(1)
    _MODEL = load_model(model_path)


def _build(job: tuple[Any, list[int]]) -> Any:
    from espaloma_like.training.geometry_targets import build_target

    record, conformations = job
    try:
        return build_target(_MODEL, record, conformations)
    except Exception as err:  # one molecule's failure is reported, not the run's end
        return f"{record.name}: {type(err).__name__}: {err}"


def _jobs(data: Path, n_molecules: int, n_conformations: int, done: set[str],
          seed: int, split: str) -> Iterator[tuple[Any, list[int]]]:
    from espaloma_like.data.readers import read_qm_records
    from espaloma_like.data.split import stable_fraction

    records = [r for r in read_qm_records(data) if r.metadata.get("split") == split]
    records.sort(key=lambda r: stable_fraction(r.name, "geometry-targets"))
    for record in records[:n_molecules]:
        if record.name in done:
            continue
        rng = np.random.default_rng([seed, int(stable_fraction(record.name) * 2**32)])
        c = record.n_conformations
        chosen = sorted(rng.choice(c, size=min(c, n_conformations), replace=False).tolist())
        yield record, chosen


def main(argv: list[str] | None = None) -> int:
    from tqdm import tqdm

    from espaloma_like.training.geometry_targets import target_names, write_targets

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="shipped model name or checkpoint (the linearization point)")
    parser.add_argument("--data", type=Path, required=True, help="industry SDF directory")
    parser.add_argument("--out", type=Path, required=True, help="HDF5 file (appended to)")
    parser.add_argument("--molecules", type=int, default=1500)
    parser.add_argument("--conformations", type=int, default=2, help="per molecule, at most")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", choices=("train", "validation"), default="train",
                        help="validation targets make the validation loss score geometry too")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    done = target_names(args.out)
    jobs = list(_jobs(args.data, args.molecules, args.conformations, done, args.seed,
                     args.split))
    logger.info("%d molecules in %s already, %d to build", len(done), args.out, len(jobs))
    failures = 0
    attrs = {"model": str(args.model), "data": str(args.data), "seed": args.seed}
    with multiprocessing.get_context("spawn").Pool(args.workers, _init, (str(args.model),)) as pool:
        for result in tqdm(pool.imap_unordered(_build, jobs), total=len(jobs), desc="targets"):
            if isinstance(result, str):
                failures += 1
                logger.warning("skipped %s", result)
                continue
            write_targets(args.out, [result], attrs)
    logger.info("%d molecules in %s (%d failed)", len(target_names(args.out)), args.out, failures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
