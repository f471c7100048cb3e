#!/usr/bin/env bash
# Ship the functional-form options (issue 13) as named models, form-<name>, after their runs:
#   espaloma-like train training/train_form_<run>.yaml      (one per option, same recipe)
#   bash training/ship_forms.sh [NAME ...]                   (default: every option whose run exists)
# Each is selectable by name: parametrize(smiles, model="form-morse"), --model form-morse.
set -euo pipefail
cd "$(dirname "$0")/.."
PARENTS="training/train_default.yaml training/train_urey_bradley.yaml training/train_dft.yaml training/train_dft_stage2.yaml"
DATA="data/espaloma_like_gfn2xtb.h5 ../shared/qm-reference/openff_industry_b3lyp"
# name | run (training/train_form_<run>.yaml, runs/form_<run>/) | terms
FORMS=(
  "classical|classical|harmonic bonds and angles, cosine torsions, trefoil impropers, AM1-BCC-like equilibrated charges, Sage LJ"
  "urey-bradley|control|the classical terms + Urey-Bradley springs (the default's form)"
  "morse|morse|the classical terms + Urey-Bradley springs + Morse bonds"
  "class2|class2|the classical terms + Urey-Bradley springs + class-II bond-bond / bond-angle cross terms (OpenMM System only)"
  "scaled-14|scaled_14|the classical terms + Urey-Bradley springs + learned 1-4 Coulomb / LJ scales per pair (OpenMM System only)"
  "torsion-coupling|torsion_coupling|the classical terms + Urey-Bradley springs + torsion-torsion coupling of consecutive torsions (OpenMM System only)"
  "learned-lj|learned_lj|the classical terms + Urey-Bradley springs + learned LJ sigma / epsilon per atom (Sage as the prior)"
  "intramolecular-lj|intramolecular_lj|the classical terms + Urey-Bradley springs + learned LJ sigma / epsilon per atom acting within the molecule only (Sage's LJ between molecules; OpenMM System only)"
  "intramolecular-nonbonded|intramolecular_nonbonded|the classical terms + Urey-Bradley springs + learned LJ sigma / epsilon (sigma within exp(+-0.25)) and Coulomb factors per atom, both acting within the molecule only (Sage's LJ and the model's charges between molecules; every OpenMM route, its ForceField XML file read after import espaloma_like; no GROMACS / Amber files). Its weights are the default's"
  "charged|charged|the classical terms + Urey-Bradley springs, trained with charged molecules drawn 4x as often"
)
for entry in "${FORMS[@]}"; do
  IFS="|" read -r name run terms <<<"$entry"
  if [ "$#" -gt 0 ] && [[ ! " $* " =~ " $name " ]]; then continue; fi
  checkpoint="runs/form_$run/best.pt"
  if [ ! -f "$checkpoint" ]; then echo "skip form-$name: no $checkpoint"; continue; fi
  .venv/bin/python training/ship_model.py "$checkpoint" --name "form-$name" \
    --config $PARENTS "training/train_form_$run.yaml" --data $DATA --domain-copy portable \
    --description "Functional-form option '$name' of the design space (issue 13): $terms. The DFT-tuned portable model (the default when the options were trained) with the option's terms switched on or off, fine-tuned 1500 steps with the same recipe and data as every option (training/train_form_$run.yaml)"
done
