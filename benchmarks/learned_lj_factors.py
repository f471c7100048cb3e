"""How far a learned-LJ model moves Lennard-Jones from Sage's values, per element.

    .venv/bin/python benchmarks/learned_lj_factors.py [--model form-learned-lj] [--n 100]

Parametrizes the first ``n`` readable MiniDrugBank molecules (the set of
``speed_parametrize.py``) with the model and reads its learned sigma / epsilon (kind
``learned_lj`` or ``intramolecular_lj``) against Sage 2.2.1's (the values the model starts
from, ``sage_lj_fast``), and, with kind ``intramolecular_coulomb``, its Coulomb factors. Writes
``benchmarks/results/learned_lj_factors.{json,md}`` (``learned_lj_factors_<model>.*`` for
another model than ``form-learned-lj``): per element, the median and range of
sigma_model / sigma_Sage, epsilon_model / epsilon_Sage (and the Coulomb factor) over its atoms.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="form-learned-lj")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()

    from speed_parametrize import drug_set

    from espaloma_like._io import atomic_write_text
    from espaloma_like.api import parametrize
    from espaloma_like.baselines.sage_lj import sage_lj_fast
    from espaloma_like.molecule import SUPPORTED_ELEMENTS

    molecules = drug_set(args.n)["molecules"]
    sigma: dict[str, list[float]] = {}
    epsilon: dict[str, list[float]] = {}
    coulomb: dict[str, list[float]] = {}
    for entry in molecules:
        molecule = parametrize(entry["smiles"], model=args.model)
        sage_sigma, sage_epsilon = sage_lj_fast(molecule.molecule)
        extra = molecule.parameters.extra_terms
        learned = extra.get("intramolecular_lj", extra.get("learned_lj"))
        if learned is None:
            parser.error(f"model {args.model} learns no LJ (kind learned_lj or intramolecular_lj)")
        factors = extra.get("intramolecular_coulomb")
        for n, (z, s, s0, e, e0) in enumerate(zip(
                molecule.molecule.atomic_numbers.tolist(), learned.sigma.double().numpy(),
                sage_sigma, learned.epsilon.double().numpy(), sage_epsilon, strict=True)):
            symbol = SUPPORTED_ELEMENTS[z]
            sigma.setdefault(symbol, []).append(float(s / s0))
            if e0 > 0:
                epsilon.setdefault(symbol, []).append(float(e / e0))
            if factors is not None:
                coulomb.setdefault(symbol, []).append(float(factors.factor[n]))

    def stats(values: list[float]) -> dict[str, float]:
        a = np.asarray(values)
        return {"n": len(a), "median": float(np.median(a)), "min": float(a.min()), "max": float(a.max())}

    result = {"model": args.model, "molecules": len(molecules),
              "source": "first readable MiniDrugBank molecules (speed_parametrize.drug_set)",
              "sigma_over_sage": {k: stats(v) for k, v in sorted(sigma.items())},
              "epsilon_over_sage": {k: stats(v) for k, v in sorted(epsilon.items())}}
    if coulomb:
        result["coulomb_factor"] = {k: stats(v) for k, v in sorted(coulomb.items())}
    out = Path(args.out)
    stem = "learned_lj_factors"
    if args.model != "form-learned-lj":
        stem += "_" + "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(args.model).stem)
    atomic_write_text(out / f"{stem}.json", json.dumps(result, indent=1) + "\n")

    def cell(values: dict[str, float] | None) -> str:
        if values is None:
            return "-"
        return f"{values['median']:.3f} [{values['min']:.3f}, {values['max']:.3f}]"

    columns = ["sigma", "epsilon"] + (["Coulomb factor"] if coulomb else [])
    lines = [f"# Learned LJ against Sage 2.2.1: `{args.model}`", "",
             f"{len(molecules)} MiniDrugBank molecules (`python benchmarks/learned_lj_factors.py"
             f" --model {args.model}`). Per element, model / Sage over its atoms: median [min, max].",
             "", "| element | atoms | " + " | ".join(columns) + " |",
             "|---|---|" + "---|" * len(columns)]
    for k, s in result["sigma_over_sage"].items():
        row = [cell(s), cell(result["epsilon_over_sage"].get(k))]
        if coulomb:
            row.append(cell(result["coulomb_factor"].get(k)))
        lines.append(f"| {k} | {s['n']} | " + " | ".join(row) + " |")
    atomic_write_text(out / f"{stem}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
