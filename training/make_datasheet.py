"""Write data/DATASHEET.md: fixed prose plus counts computed from the file by `data info`.

    .venv/bin/python training/make_datasheet.py data/espaloma_like_gfn2xtb.h5
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from espaloma_like._io import atomic_write_text

PROSE = """# Datasheet: espaloma_like GFN2-xTB dataset

**File**: `{file}` (SPICE HDF5 layout: one group per molecule with mapped `smiles`,
`atomic_numbers`, `conformations` in bohr, `dft_total_energy` in hartree, `dft_total_gradient`
in hartree/bohr, `am1bcc_charges` in e, `subset` = source; group attributes `level_of_theory`,
`total_charge` and `provenance`, a JSON dict with the split, the origin of every conformation
and the engine version). Conformations and gradients are stored as float32, as in SPICE; energies
as float64. The `dft_` names follow SPICE although the level of theory is GFN2-xTB.

**Made by**: `espaloma-like data build training/data_build.yaml` (resumable: re-run to
continue), then this datasheet by `python training/make_datasheet.py {file}`. Every count below
is computed from the file by `espaloma-like data info` (the function `dataset_info`), not typed.

## Sources
* MiniDrugBank, FreeSolv and AlkEthOH as shipped inside openff-toolkit (AlkEthOH capped at 350
  molecules so alkanes and ethers do not swamp the set);
* BRICS fragments of MiniDrugBank (4-20 heavy atoms; cut bonds capped with methyl next to
  N/O/P/S, =CH2 across double bonds, H next to carbon);
* capped amino acids ACE-X-NME for the 20 standard residues in their pH-7 states (ASP/GLU -1,
  LYS/ARG/HIP +1, HID and HIE neutral);
* 800 compounds of the NCI open database's first 5000, as shipped inside RDKit
  (`Data/NCI/first_5K.smi`; about 3600 pass the filters, 4250 with their charged variants, and
  800 of those are taken in a fixed hash order):
  diverse small organics with nitro, sulfonyl, phosphoryl, halogen and heteroaromatic chemistry;
* charged variants in their pH-7 states, one site per rule and molecule: carboxylic, sulfonic
  and phosphonic/phosphoric acids deprotonated; aliphatic amines, amidines and guanidines
  protonated.

Filters (each dropped molecule and its reason is listed in `build_parts/molecules.json` and
counted in the build report): elements H C N O F P S Cl Br I; at most 20 heavy atoms; net charge
-2..+2; no radicals; no unusual valences (for example the neutral four-coordinate S of
sulfates written without S=O bonds); one fragment (salts stripped to the largest organic fragment); undefined
stereo resolved to the first RDKit stereoisomer (three bridged bicycles, for which that isomer
cannot exist in 3D, then fail sampling and are counted in the build report; `filters.stereo:
first-embeddable` avoids this in new builds); duplicates by canonical isomeric SMILES removed.

## Sampling (per molecule, seeded by a hash of its SMILES)
Up to 8 ETKDG conformers (pruned at 0.1 A RMSD), their Sage 2.2.1 minima (OpenMM, Gasteiger
charges: sampling needs plausible geometries, not accurate charges), 4 snapshots of 500 K
Langevin MD from each minimum (500 steps of 1 fs apart), and for every third molecule a relaxed
24-point torsion scan of one rotatable bond (15 degree steps, a 5000 kJ/mol/rad^2 dihedral
restraint, the rest minimized). Geometries with atoms closer than 0.07 nm or bonds stretched
beyond 1.5x are rejected and counted.

## Labels
* Energies and gradients: GFN2-xTB (tblite), one OpenMP thread per worker. A failed SCF is
  recorded per conformation (`n_failed`, `first_error` in the provenance) and left out of the
  arrays, never zeroed.
* Charges: AM1-BCC from AmberTools (antechamber + sqm), as a single point (`maxcyc=0`) at the
  first Sage-minimized conformer, symmetrized over equivalent atoms. Against antechamber's
  default (AM1 geometry optimization first) on the same start
  (`benchmarks/results/am1bcc_single_point.md`): 57-120x faster for ibuprofen and paracetamol
  (13.5 s vs 0.11 s), 8x median over ten small molecules; RMS difference 0.009 e median, but
  0.12 e for methanesulfonamide: sulfonyl charges depend on the AM1 geometry, so S(=O)(=O)
  labels are the least faithful. The Sage and GAFF baselines in benchmarks use these same
  labels.

## Split
Scaffold split by Bemis-Murcko scaffold (acyclic molecules are their own cluster): a scaffold is
held out when a salted hash of it falls under 0.1. The split is stored per molecule
(`provenance["split"]`) and never changes with the order of the build. Training also carves a
validation set (10%) from the training split by a stable hash of the SMILES.

## Counts (computed from the file)

{counts}

## Build report

{report}

## Regenerate
```
make setup
.venv/bin/espaloma-like data build training/data_build.yaml
.venv/bin/python training/make_datasheet.py data/espaloma_like_gfn2xtb.h5
```
"""


def main() -> None:
    from espaloma_like.data.build import dataset_info, info_markdown

    path = Path(sys.argv[1] if len(sys.argv) > 1 else "data/espaloma_like_gfn2xtb.h5")
    info = dataset_info(path)
    # the report of the run that did the work (a resume that only merges reports ~0 s of wall time;
    # its seconds_*_total sum every molecule, wall_seconds_this_run only that run's new ones)
    report_path = Path(str(path).removesuffix(".h5") + ".build_report.json")
    if not report_path.is_file():
        report_path = Path(str(path) + ".report.json")
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    report_text = "\n".join(f"* {k.replace('_', ' ')}: {v}" for k, v in report.items()) or "(none)"
    atomic_write_text(
        Path("data/DATASHEET.md"), PROSE.format(file=path, counts=info_markdown(info), report=report_text))
    print(f"wrote data/DATASHEET.md ({info['molecules']} molecules, {info['conformations']} conformations)")


if __name__ == "__main__":
    main()
