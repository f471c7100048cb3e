"""Regenerate the notebooks (outputs stripped): `python notebooks/build_notebooks.py`."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).parent

QUICKSTART = [
    new_markdown_cell(
        "# Quickstart: SMILES -> parameters -> OpenMM simulation -> torsion profile\n\n"
        "The shipped model assigns every bonded parameter and the partial charges of a molecule "
        "in milliseconds; Lennard-Jones comes from OpenFF Sage 2.2.1."),
    new_code_cell(
        "import time\n\nimport numpy as np\nimport openmm\nfrom openmm import unit\n\n"
        "import espaloma_like\n\n"
        "model = espaloma_like.load_model()  # the default shipped model\n"
        "start = time.perf_counter()\n"
        "mol = espaloma_like.parametrize('CC(=O)Nc1ccc(O)cc1', model=model)  # paracetamol\n"
        "print(f'parametrized in {1000 * (time.perf_counter() - start):.1f} ms')\n"
        "print('net charge', mol.charges.sum())"),
    new_markdown_cell("## Run a short simulation with the exported `openmm.System`"),
    new_code_cell(
        "from espaloma_like.molecule import generate_conformers\n\n"
        "system = mol.to_openmm_system()\n"
        "integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond,\n"
        "                                             1 * unit.femtoseconds)\n"
        "simulation = openmm.app.Simulation(mol.to_openmm_topology(), system, integrator,\n"
        "                                   openmm.Platform.getPlatformByName('CPU'))\n"
        "simulation.context.setPositions(generate_conformers(mol.molecule, 1, seed=0)[0])\n"
        "simulation.minimizeEnergy()\n"
        "simulation.step(2000)  # 2 ps\n"
        "state = simulation.context.getState(getEnergy=True)\n"
        "print('potential energy after 2 ps:', state.getPotentialEnergy())"),
    new_markdown_cell(
        "## A torsion profile: model vs Sage\n\n"
        "A rigid scan of the amide C-N torsion. For a fair and fast comparison Sage gets the "
        "model's charges here (Sage's own AM1-BCC takes ~20 s per molecule)."),
    new_code_cell(
        "import torch\n\n"
        "from espaloma_like import baselines\n"
        "from espaloma_like.mm import energy\n\n"
        "sage = baselines.sage(mol.molecule, charges=mol.charges)\n"
        "xyz = generate_conformers(mol.molecule, 1, seed=0)[0]\n"
        "j, k = 1, 3  # rotate about the amide C(=O)-N bond\n\n"
        "def rotate(xyz, j, k, angle):\n"
        "    \"\"\"Rotate the atoms on k's side of bond j-k about the bond axis.\"\"\"\n"
        "    import networkx as nx\n"
        "    g = nx.Graph([tuple(b) for b in mol.molecule.bonds.tolist()])\n"
        "    g.remove_edge(j, k)\n"
        "    side = list(nx.node_connected_component(g, k))\n"
        "    axis = (xyz[k] - xyz[j]) / np.linalg.norm(xyz[k] - xyz[j])\n"
        "    c, s = np.cos(angle), np.sin(angle)\n"
        "    out = xyz.copy()\n"
        "    v = xyz[side] - xyz[k]\n"
        "    out[side] = (xyz[k] + v * c + np.cross(axis, v) * s\n"
        "                 + axis * (v @ axis)[:, None] * (1 - c))\n"
        "    return out\n\n"
        "angles = np.linspace(-np.pi, np.pi, 37)\n"
        "scan = np.stack([rotate(xyz, j, k, a) for a in angles])\n"
        "e_model = energy(mol.parameters, torch.tensor(scan)).numpy()\n"
        "e_sage = energy(sage.parameters, torch.tensor(scan)).numpy()\n"
        "e_model -= e_model.min()\n"
        "e_sage -= e_sage.min()\n"
        "print(f'barrier (kJ/mol): model {e_model.max():.1f}, Sage {e_sage.max():.1f}')"),
    new_code_cell(
        "import matplotlib.pyplot as plt\n\n"
        "fig, ax = plt.subplots(figsize=(5, 3.5))\n"
        "ax.plot(np.degrees(angles), e_model, label='espaloma_like')\n"
        "ax.plot(np.degrees(angles), e_sage, '--', label='Sage 2.2.1')\n"
        "ax.set_xlabel('rotation of the amide C-N bond (degrees)')\n"
        "ax.set_ylabel('relative energy (kJ/mol)')\nax.legend()\nfig.tight_layout()"),
    new_markdown_cell("## OpenMM XML\n\n`to_system_xml()` and `to_forcefield_xml()` write the "
                      "serialized System and a ForceField template."),
    new_code_cell("print(mol.to_forcefield_xml()[:600])"),
]

TRAINING = [
    new_markdown_cell(
        "# Training and fine-tuning on a small dataset\n\n"
        "Make a tiny GFN2-xTB dataset with the package's own pipeline, train a small model from "
        "scratch for a few steps, then fine-tune the shipped model with frozen charges."),
    new_code_cell(
        "import tempfile\nfrom pathlib import Path\n\n"
        "from espaloma_like.data.build import BuildConfig, build_dataset, dataset_info\n\n"
        "work = Path(tempfile.mkdtemp())\n"
        "config = BuildConfig.model_validate({\n"
        "    'output': str(work / 'tiny.h5'),\n"
        "    'sources': {'builtin': False, 'smiles': ['CCO', 'CC(=O)[O-]', 'C[NH3+]', 'CC(=O)NC'],\n"
        "                'charged_variants': False},\n"
        "    'sampling': {'n_etkdg': 3, 'n_md_per_conformer': 2, 'md_interval_steps': 50,\n"
        "                 'torsion_scan': False},\n"
        "    'scan_every': 0, 'am1bcc': True, 'split': {'held_out_fraction': 0.0},\n"
        "})\n"
        "build_dataset(config, progress=False)\n"
        "dataset_info(config.output)"),
    new_code_cell(
        "from espaloma_like.nn.model import ModelConfig\n"
        "from espaloma_like.training.config import DataConfig, TrainConfig\n"
        "from espaloma_like.training.trainer import Trainer\n\n"
        "train_config = TrainConfig(\n"
        "    data=DataConfig(train_files=(config.output,), validation_fraction=0.0,\n"
        "                    conformations_per_molecule=4, batch_molecules=4),\n"
        "    model=ModelConfig(hidden=32, n_layers=2, readout_hidden=32),\n"
        "    max_steps=30, eval_every=10, output_dir=str(work / 'scratch'), tensorboard=False)\n"
        "result = Trainer(train_config, progress=False).fit()\n"
        "[(h['step'], round(h['energy_rmse'], 2), round(h['force_rmse'], 2))\n"
        " for h in result.history if h['split'] == 'validation']"),
    new_markdown_cell("## Fine-tune the shipped model (charges frozen)"),
    new_code_cell(
        "from espaloma_like.nn.checkpoint import resolve_model_path\n\n"
        "fine_config = train_config.model_copy(update={\n"
        "    'init_from': str(resolve_model_path('default')), 'freeze': ('charges',),\n"
        "    'max_steps': 10, 'output_dir': str(work / 'fine')})\n"
        "fine = Trainer(fine_config, progress=False).fit()\n"
        "print(fine.best_checkpoint)"),
    new_code_cell(
        "import espaloma_like\n\n"
        "tuned = espaloma_like.load_model(fine.best_checkpoint)\n"
        "espaloma_like.parametrize('CCO', model=tuned).charges"),
    new_markdown_cell("## Evaluate against the QM data, with the Sage and GAFF baselines"),
    new_code_cell(
        "from espaloma_like.training.evaluate import evaluate\n\n"
        "report = evaluate(fine.best_checkpoint, [config.output], split='all')\n"
        "print(report.to_markdown())"),
]

INSPECT = [
    new_markdown_cell(
        "# Inspecting parameters: which atoms got which charges and torsion barriers"),
    new_code_cell(
        "import numpy as np\n\nimport espaloma_like\nfrom espaloma_like.export.ffxml import atom_names\n\n"
        "mol = espaloma_like.parametrize('CC(=O)Nc1ccc(O)cc1')\n"
        "names = atom_names(mol.molecule.atomic_numbers)\n"
        "for name, q in zip(names, mol.charges, strict=True):\n"
        "    print(f'{name:4s} {q:+.3f}')"),
    new_markdown_cell(
        "Equivalent atoms get identical charges (the charge model equilibrates electronegativity "
        "over resonance-aware symmetry classes), and the net charge is exact:"),
    new_code_cell(
        "acetate = espaloma_like.parametrize('CC(=O)[O-]')\n"
        "print(acetate.charges, acetate.charges.sum())"),
    new_markdown_cell(
        "## Torsion barriers\n\nFor each proper torsion, the force constants of periodicities "
        "1-6 (kJ/mol); the largest barrier per central bond:"),
    new_code_cell(
        "p = mol.parameters.propers\n"
        "barrier = {}\n"
        "for (_, j, k, _), ks in zip(p.indices.tolist(), p.k.numpy(), strict=True):\n"
        "    bond = tuple(sorted((j, k)))\n"
        "    barrier[bond] = barrier.get(bond, 0.0) + 2 * np.abs(ks).sum()\n"
        "for (j, k), b in sorted(barrier.items(), key=lambda x: -x[1])[:6]:\n"
        "    print(f'{names[j]}-{names[k]}: up to {b:.1f} kJ/mol summed over its torsions')"),
    new_markdown_cell(
        "Most of those constants are exactly zero: the model's torsion head has a soft threshold, "
        "so the exported System carries about as many torsion terms as GAFF's. Each angle also "
        "has a Urey-Bradley spring between its outer atoms (bond-angle coupling), resting at the "
        "distance its equilibrium bonds and angle imply:"),
    new_code_cell(
        "print(f'{int((p.k != 0).sum())} non-zero proper terms for {len(p.k)} torsions x 6 "
        "periodicities')\n"
        "a = mol.parameters.angles\n"
        "ub = zip(a.indices.tolist(), a.urey_bradley_k.numpy(), a.urey_bradley_length.numpy(),\n"
        "         strict=True)\n"
        "for (i, j, k), kub, r13 in list(ub)[:6]:\n"
        "    print(f'{names[i]}-{names[j]}-{names[k]}: k = {kub:.0f} kJ/mol/nm^2 at {r13:.4f} nm')"),
    new_code_cell(
        "b = mol.parameters.bonds\n"
        "rows = zip(b.indices.tolist(), b.k.numpy(), b.length.numpy(), strict=True)\n"
        "for (i, j), k, r in list(rows)[:8]:\n"
        "    print(f'{names[i]}-{names[j]}: r0 = {r:.4f} nm, k = {k:.0f} kJ/mol/nm^2')"),
]


def write(name: str, cells: list) -> None:  # type: ignore[type-arg]
    notebook = new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    nbformat.write(notebook, HERE / name)


if __name__ == "__main__":
    write("01_quickstart.ipynb", QUICKSTART)
    write("02_training_and_fine_tuning.ipynb", TRAINING)
    write("03_inspecting_parameters.ipynb", INSPECT)
