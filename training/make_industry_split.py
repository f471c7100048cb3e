"""Record the scaffold split of the OpenFF Industry Benchmark (issue 11) beside the data.

    .venv/bin/python training/make_industry_split.py [../shared/qm-reference/openff_industry_b3lyp]

Writes ``data/openff_industry_split.csv``: one row per molecule group (per file, as the reader
groups them) with its split (train / validation / test), Bemis-Murcko scaffold, SMILES and
QCArchive record ids, and ``data/openff_industry_split.json`` with the rule and the counts. The
split is a pure function of the SMILES (:func:`espaloma_like.data.industry.industry_split`), so
every number measured on a part of the set can be traced to the records it covers; the test
part is never used for training or selection.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from collections import Counter
from pathlib import Path

from espaloma_like._io import atomic_write_text
from espaloma_like.data.industry import SPLIT_SALT, industry_split, read_industry_sdf
from espaloma_like.data.split import scaffold_of

DEFAULT_SOURCE = Path("../shared/qm-reference/openff_industry_b3lyp")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", nargs="?", default=str(DEFAULT_SOURCE))
    parser.add_argument("--out", default="data/openff_industry_split")
    args = parser.parse_args()
    skipped: list[str] = []
    rows = []
    molecules: Counter[str] = Counter()
    conformers: Counter[str] = Counter()
    for record in read_industry_sdf(args.source, skipped):
        smiles = record.metadata["smiles"]
        split = industry_split(smiles).value
        ids = json.loads(record.metadata["record_ids"])
        rows.append([record.name, record.metadata["source"], split, len(ids), scaffold_of(smiles),
                     smiles, " ".join(ids)])
        molecules[split] += 1
        conformers[split] += len(ids)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["name", "file", "split", "conformers", "scaffold", "smiles", "record_ids"])
    writer.writerows(rows)
    atomic_write_text(Path(args.out + ".csv"), buffer.getvalue())
    summary = {
        "source": "OpenFF Industry Benchmark Season 1 v1.0 (B3LYP-D3BJ/DZVP), as in ../shared",
        "rule": ("Bemis-Murcko scaffold (acyclic: the SMILES) hashed with sha256 and the salt "
                 f"{SPLIT_SALT!r}: fraction < 0.1 test, < 0.2 validation, else train "
                 "(espaloma_like.data.industry.industry_split)"),
        "molecules": dict(molecules), "conformers": dict(conformers),
        "skipped_records": skipped,
    }
    atomic_write_text(Path(args.out + ".json"), json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "skipped_records"}, indent=2))


if __name__ == "__main__":
    main()
