"""How far a learned-LJ model moves Lennard-Jones from Sage's values, per element.

    .venv/bin/python benchmarks/learned_lj_factors.py [--model form-learned-lj] [--n 100]

Parametrizes the first ``n`` readable MiniDrugBank molecules (the set of
``speed_parametrize.py``) with the model and reads sigma / epsilon against Sage 2.2.1's (the
values the model starts from, ``sage_lj_fast``). Writes
``benchmarks/results/learned_lj_factors.{json,md}``: per element, the median and range of
sigma_model / sigma_Sage and epsilon_model / epsilon_Sage over its atoms.
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
    for entry in molecules:
        molecule = parametrize(entry["smiles"], model=args.model)
        sage_sigma, sage_epsilon = sage_lj_fast(molecule.molecule)
        nonbonded = molecule.parameters.nonbonded
        for z, s, s0, e, e0 in zip(molecule.molecule.atomic_numbers.tolist(),
                                   nonbonded.sigma.double().numpy(), sage_sigma,
                                   nonbonded.epsilon.double().numpy(), sage_epsilon, strict=True):
            symbol = SUPPORTED_ELEMENTS[z]
            sigma.setdefault(symbol, []).append(float(s / s0))
            if e0 > 0:
                epsilon.setdefault(symbol, []).append(float(e / e0))

    def stats(values: list[float]) -> dict[str, float]:
        a = np.asarray(values)
        return {"n": len(a), "median": float(np.median(a)), "min": float(a.min()), "max": float(a.max())}

    result = {"model": args.model, "molecules": len(molecules),
              "source": "first readable MiniDrugBank molecules (speed_parametrize.drug_set)",
              "sigma_over_sage": {k: stats(v) for k, v in sorted(sigma.items())},
              "epsilon_over_sage": {k: stats(v) for k, v in sorted(epsilon.items())}}
    out = Path(args.out)
    atomic_write_text(out / "learned_lj_factors.json", json.dumps(result, indent=1) + "\n")
    lines = [f"# Learned LJ against Sage 2.2.1: `{args.model}`", "",
             f"{len(molecules)} MiniDrugBank molecules (`python benchmarks/learned_lj_factors.py`). "
             "Per element, model / Sage over its atoms: median [min, max].", "",
             "| element | atoms | sigma | epsilon |", "|---|---|---|---|"]
    for k, s in result["sigma_over_sage"].items():
        e = result["epsilon_over_sage"].get(k)
        e_text = "-" if e is None else f"{e['median']:.3f} [{e['min']:.3f}, {e['max']:.3f}]"
        lines.append(f"| {k} | {s['n']} | {s['median']:.3f} [{s['min']:.3f}, {s['max']:.3f}] | {e_text} |")
    atomic_write_text(out / "learned_lj_factors.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
