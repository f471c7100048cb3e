"""Two methods of one industry conformer benchmark run, paired by molecule, with bootstrap CIs.

Is a candidate's lower mean |ddE| or median RMSD on the validation molecules more than the noise
of which molecules the split happens to hold? Both methods are read from the resumable results
file that ``espaloma-like benchmark conformers`` writes (``conformers_results.jsonl``), on the
molecules both scored; the statistics are the benchmark's own (mean |ddE| over every
non-reference conformer in kcal/mol, median RMSD in Å and median TFD over every conformer),
and each difference A - B gets a 95 % interval from resampling the molecules with replacement
(paired: the same draw for both methods, a molecule's conformers kept together).

    python benchmarks/conformers_paired.py \\
        benchmarks/results/conformers_validation_xtbforces/conformers_results.jsonl \\
        model:runs/form_intramolecular_nonbonded_geometry_cycle5/best.pt \\
        model:runs/form_intramolecular_nonbonded_geometry_retargeted/best.pt \\
        --out benchmarks/results/conformers_paired_cycle5_vs_retargeted

A label that the file holds under several identities (the same ``--model default`` before and
after a new default shipped) is read at the identity of its last entry, the newest run; the
older entries are counted and left out.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from espaloma_like._io import atomic_write_text
from espaloma_like.benchmark.conformers import iter_results

#: statistic -> (record metric, how it pools the conformers, heading)
STATISTICS = {
    "mean_abs_ddE": ("ddE", "mean_abs", "mean abs ddE (kcal/mol)"),
    "median_rmsd": ("rmsd", "median", "median RMSD (Å)"),
    "median_tfd": ("tfd", "median", "median TFD"),
}


def read_method(path: Path, label: str) -> tuple[dict[str, list[dict[str, Any]]], int]:
    """molecule -> its conformer records for ``label`` at its newest identity; older entries left out.

    Raises
    ------
    ValueError
        If the file holds no entry for ``label``.
    """
    entries = [e for e in iter_results(path) if e.get("method") == label]
    if not entries:
        raise ValueError(f"{path} holds no results for {label!r}")
    identity = entries[-1].get("identity")
    current = [e for e in entries if e.get("identity") == identity]
    return {e["molecule"]: e["records"] for e in current}, len(entries) - len(current)


def _values(records: Sequence[dict[str, Any]], metric: str) -> list[float]:
    return [float(r[metric]) for r in records if r.get(metric) is not None]


def statistic(molecules: Sequence[Sequence[dict[str, Any]]], name: str) -> float:
    """One of :data:`STATISTICS` over the conformers of ``molecules`` pooled (nan if none)."""
    metric, kind, _ = STATISTICS[name]
    values = np.asarray([v for records in molecules for v in _values(records, metric)])
    if values.size == 0:
        return float("nan")
    return float(np.mean(np.abs(values)) if kind == "mean_abs" else np.median(values))


def paired_difference(a: Sequence[Sequence[dict[str, Any]]], b: Sequence[Sequence[dict[str, Any]]],
                      name: str, draws: int = 2000, seed: int = 0) -> dict[str, float]:
    """Statistic ``name`` of A, of B, A - B and the bootstrap 2.5 / 97.5 % quantiles of A - B.

    ``a[i]`` and ``b[i]`` are the same molecule's conformer records under the two methods.
    """
    if len(a) != len(b) or not a:
        raise ValueError("the two methods need the same, non-empty list of molecules")
    rng = np.random.default_rng(seed)
    n = len(a)
    differences = []
    for _ in range(draws):
        pick = rng.integers(n, size=n)
        differences.append(statistic([a[i] for i in pick], name) - statistic([b[i] for i in pick], name))
    low, high = np.nanpercentile(differences, [2.5, 97.5])
    value_a, value_b = statistic(a, name), statistic(b, name)
    return {"a": value_a, "b": value_b, "difference": value_a - value_b,
            "low": float(low), "high": float(high)}


def molecules_lower(a: Sequence[Sequence[dict[str, Any]]], b: Sequence[Sequence[dict[str, Any]]],
                    name: str) -> dict[str, int]:
    """How many molecules have the statistic lower, equal, higher under A than under B."""
    counts = {"lower": 0, "equal": 0, "higher": 0}
    for records_a, records_b in zip(a, b, strict=True):
        value_a, value_b = statistic([records_a], name), statistic([records_b], name)
        if np.isnan(value_a) or np.isnan(value_b):
            continue
        key = "lower" if value_a < value_b else ("higher" if value_a > value_b else "equal")
        counts[key] += 1
    return counts


def compare(path: Path, label_a: str, label_b: str, draws: int = 2000) -> dict[str, Any]:
    """Paired comparison of ``label_a`` against ``label_b`` on the molecules both scored."""
    by_a, stale_a = read_method(path, label_a)
    by_b, stale_b = read_method(path, label_b)
    common = sorted(set(by_a) & set(by_b))
    if not common:
        raise ValueError(f"{label_a!r} and {label_b!r} scored no molecule in common in {path}")
    a = [by_a[m] for m in common]
    b = [by_b[m] for m in common]
    return {"results": str(path), "a": label_a, "b": label_b, "n_molecules": len(common),
            "n_conformers": sum(len(r) for r in a), "older_entries_left_out": stale_a + stale_b,
            "bootstrap_draws": draws,
            "statistics": {name: {**paired_difference(a, b, name, draws=draws),
                                  "molecules": molecules_lower(a, b, name)}
                           for name in STATISTICS}}


def markdown(result: dict[str, Any]) -> str:
    """The comparison as a markdown table."""
    lines = [f"# Paired by molecule: A = `{result['a']}`, B = `{result['b']}`", "",
             f"`{result['results']}`: {result['n_molecules']} molecules both scored "
             f"({result['n_conformers']} conformers); 95 % intervals of A - B from "
             f"{result['bootstrap_draws']} bootstrap draws of the molecules. Molecules lower / higher: "
             "the statistic over each molecule's own conformers.", "",
             "| statistic | A | B | A - B | 95 % interval | molecules lower / equal / higher under A |",
             "|---|---|---|---|---|---|"]
    for name, row in result["statistics"].items():
        counts = row["molecules"]
        lines.append(f"| {STATISTICS[name][2]} | {row['a']:.4f} | {row['b']:.4f} | "
                     f"{row['difference']:+.4f} | {row['low']:+.4f} to {row['high']:+.4f} | "
                     f"{counts['lower']} / {counts['equal']} / {counts['higher']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="a conformers_results.jsonl")
    parser.add_argument("a", help="method label A (as in the report, e.g. model:runs/x/best.pt)")
    parser.add_argument("b", help="method label B")
    parser.add_argument("--out", type=Path, required=True, help="writes OUT.json and OUT.md")
    parser.add_argument("--draws", type=int, default=2000)
    args = parser.parse_args(argv)
    if args.draws < 1:
        parser.error(f"--draws must be at least 1, not {args.draws}")
    if not args.results.is_file():
        parser.error(f"no results file {args.results}")
    try:
        result = compare(args.results, args.a, args.b, draws=args.draws)
    except ValueError as error:
        parser.error(str(error))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    text = markdown(result)
    atomic_write_text(args.out.with_suffix(".json"), json.dumps(result, indent=1) + "\n")
    atomic_write_text(args.out.with_suffix(".md"), text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
