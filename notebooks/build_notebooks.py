"""Write the notebooks from the cells below and execute them, so they are stored with outputs.

    python notebooks/build_notebooks.py                  # write and execute all four (a few minutes)
    python notebooks/build_notebooks.py 01_quickstart    # only the notebooks named (file stems)
    python notebooks/build_notebooks.py --no-execute     # write the sources only (outputs empty)

The notebooks are committed executed, so that a reader on a web page sees the numbers and plots;
edit them here, never in the ``.ipynb`` files, and run this script before committing. Each
notebook runs in a fresh kernel of this Python (``nbclient``), in a temporary directory, and is
written only if no cell fails. Timing metadata is left out, so that a re-run changes only the
outputs that really change. ``tests/test_notebooks.py`` executes the notebooks again from
scratch (ignoring the stored outputs) and checks that no cell fails.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).parent

HOW_TO_REFRESH = ("*Stored with its outputs; the cells are written and executed by "
                  "`python notebooks/build_notebooks.py` (edit them there).*")

QUICKSTART = [
    new_markdown_cell(
        "# Quickstart: SMILES -> parameters -> OpenMM simulation -> torsion profiles vs DFT\n\n"
        "The shipped model assigns every bonded parameter and the partial charges of a molecule "
        "in milliseconds; Lennard-Jones comes from OpenFF Sage 2.2.1.\n\n" + HOW_TO_REFRESH),
    new_code_cell(
        "import time\n\nimport numpy as np\nimport openmm\nimport openmm.app\nfrom openmm import unit\n\n"
        "import espaloma_like\n\n"
        "model = espaloma_like.load_model()  # the default shipped model\n"
        "start = time.perf_counter()\n"
        "mol = espaloma_like.parametrize('CC(=O)Nc1ccc(O)cc1', model=model)  # paracetamol\n"
        "print(f'parametrized in {1000 * (time.perf_counter() - start):.1f} ms')\n"
        "print(f'net charge {mol.charges.sum():+.6f} e')"),
    new_markdown_cell("## Run a short simulation with the exported `openmm.System`"),
    new_code_cell(
        "from espaloma_like.molecule import generate_conformers\n\n"
        "system = mol.to_openmm_system()  # vacuum; see to_openmm_system's options for PME etc.\n"
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
        "## Relaxed torsion scans against DFT\n\n"
        "`data/espaloma_like_b3lyp_scans.h5` holds torsion scans the package computed itself "
        "(`data/DATASHEET_DFT.md`): ten small molecules around charged groups, one rotatable "
        "bond each, 12 points 30 degrees apart, B3LYP-D3BJ/DZVP energies. No molecule of it was "
        "trained on.\n\n"
        "A *relaxed* scan sets the dihedral and lets everything else relax: at each point the "
        "moving side of the bond is rotated onto the target, a harmonic restraint "
        "`0.5 k (theta - theta0)^2` on the dihedral is added (an OpenMM `CustomTorsionForce`, "
        "k = 5000 kJ/mol/rad^2), the whole molecule is minimized, and the energy is taken "
        "without the restraint. `espaloma_like.data.sampling.torsion_scan` does exactly this, "
        "sweeping both ways round and keeping the lower energy per point. (A rigid scan, which "
        "only rotates, is dominated by steric clashes and says little about the torsion.)\n\n"
        "Each force field relaxes its own scan, as an MM user would. The DFT energies were "
        "computed at the geometries of a Sage relaxed scan; Sage gets the dataset's AM1-BCC "
        "charges (computing them takes seconds per molecule)."),
    new_code_cell(
        "import json\nfrom pathlib import Path\n\nimport torch\n\n"
        "from espaloma_like import baselines\n"
        "from espaloma_like.data.records import record_graph\n"
        "from espaloma_like.data.sampling import torsion_scan\n"
        "from espaloma_like.data.spice import read_spice_hdf5\n"
        "from espaloma_like.mm import energy\n"
        "from espaloma_like.units import KJ_TO_KCAL\n\n"
        "# the package's own data files live in the repository, beside the package\n"
        "scans = Path(espaloma_like.__file__).resolve().parents[1] / 'data' / "
        "'espaloma_like_b3lyp_scans.h5'\n\n\n"
        "def relaxed_scan(graph, start, parameters, dihedral):\n"
        "    \"\"\"Dihedral targets (degrees) and MM energies (kcal/mol) of a 12-point relaxed "
        "scan.\"\"\"\n"
        "    xyz, targets = torsion_scan(graph, start, parameters, dihedral, n_points=12)\n"
        "    return np.degrees(targets), energy(parameters, torch.tensor(xyz)).numpy() * "
        "KJ_TO_KCAL\n\n\n"
        "profiles = []\n"
        "for record in read_spice_hdf5(scans):\n"
        "    graph = record_graph(record)\n"
        "    kinds = json.loads(record.metadata['kinds'])  # 'scan:i-j-k-l:<target>' per point\n"
        "    dihedral = tuple(int(a) for a in kinds[0].split(':')[1].split('-'))\n"
        "    order = np.argsort([float(kind.rsplit(':', 1)[1]) for kind in kinds])\n"
        "    start = record.conformations[order[0]]  # relaxed geometry at -180 degrees\n"
        "    methods = {'espaloma_like': espaloma_like.parametrize(graph, model=model),\n"
        "               'Sage 2.2.1': baselines.sage(graph, charges=record.charges)}\n"
        "    profile = {'smiles': record.metadata['smiles'], 'dihedral': dihedral,\n"
        "               'DFT': record.energies[order] * KJ_TO_KCAL}\n"
        "    for name, result in methods.items():\n"
        "        angles, profile[name] = relaxed_scan(graph, start, result.parameters, dihedral)\n"
        "    profile['angles'] = angles\n"
        "    profiles.append(profile)\n\n\n"
        "def rmse(a, b):\n"
        "    \"\"\"RMSE of mean-aligned profiles, as `espaloma-like benchmark torsions` scores "
        "them.\"\"\"\n"
        "    return np.sqrt(np.mean(((a - a.mean()) - (b - b.mean())) ** 2))\n\n\n"
        "print(f\"{'molecule':24s} {'model':>7s} {'Sage':>7s}   (RMSE vs DFT, kcal/mol)\")\n"
        "for p in profiles:\n"
        "    print(f\"{p['smiles']:24s} {rmse(p['espaloma_like'], p['DFT']):7.2f} \"\n"
        "          f\"{rmse(p['Sage 2.2.1'], p['DFT']):7.2f}\")"),
    new_code_cell(
        "import matplotlib.pyplot as plt\n\n"
        "columns = (len(profiles) + 1) // 2  # two rows, however many scans the file holds\n"
        "fig, axes = plt.subplots(2, columns, figsize=(3 * columns, 5), dpi=80, sharex=True,\n"
        "                         squeeze=False)\n"
        "for ax in axes.flat[len(profiles):]:\n"
        "    ax.axis('off')  # an odd number of scans leaves one panel empty\n"
        "for ax, p in zip(axes.flat[:len(profiles)], profiles, strict=True):\n"
        "    angles = np.append(p['angles'], 180.0)  # -180 and +180 are the same point\n"
        "    for name, style in (('DFT', 'ko-'), ('espaloma_like', 's-'), ('Sage 2.2.1', '^--')):\n"
        "        energies = np.append(p[name], p[name][0]) - p[name].min()\n"
        "        ax.plot(angles, energies, style, ms=4, label=name)\n"
        "    ax.set_title(f\"{p['smiles']}  ({'-'.join(map(str, p['dihedral']))})\", fontsize=9)\n"
        "    ax.set_xticks([-180, -90, 0, 90, 180])\n"
        "for ax in axes[1]:\n"
        "    ax.set_xlabel('dihedral (degrees)')\n"
        "for ax in axes[:, 0]:\n"
        "    ax.set_ylabel('relative energy (kcal/mol)')\n"
        "fig.legend(*axes[0, 0].get_legend_handles_labels(), loc='lower center', ncol=3)\n"
        "fig.tight_layout(rect=(0, 0.06, 1, 1))"),
    new_markdown_cell("## OpenMM XML\n\n`to_system_xml()` and `to_forcefield_xml()` write the "
                      "serialized System and a ForceField template (the command line writes "
                      "them too, with a PDB file beside them: notebook 02). The default's LJ "
                      "and Coulomb corrections within the molecule have no ForceField XML "
                      "element, so its file holds the template and them inside one "
                      "`<EspalomaLikeMolecule>` element, which `openmm.app.ForceField` reads "
                      "after `import espaloma_like`."),
    new_code_cell("print(mol.to_forcefield_xml()[:600])"),
]

COMMAND_LINE = [
    new_markdown_cell(
        "# The command line: parametrize, build a dataset, train, fine-tune, evaluate\n\n"
        "Everything here is the `espaloma-like` command, as a user runs it in a terminal "
        "(`%%bash` cells; `%%writefile` writes the YAML configs). The dataset is tiny and "
        "training runs for a few steps, so that the notebook finishes in a minute or two; "
        "the recipes of the shipped models are in `training/`.\n\n" + HOW_TO_REFRESH),
    new_code_cell(
        "import os\nimport sys\nimport tempfile\nfrom pathlib import Path\n\n"
        "import espaloma_like\n\n"
        "work = Path(tempfile.mkdtemp(prefix='espaloma_like-'))\n"
        "os.chdir(work)  # every file below goes here\n"
        "# the espaloma-like of this kernel's environment (not needed where it is activated)\n"
        "os.environ['PATH'] = f\"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}\"\n"
        "# the package's data files live in the repository, beside the package\n"
        "os.environ['REPO'] = str(Path(espaloma_like.__file__).resolve().parents[1])"),
    new_markdown_cell(
        "## Parametrize: a System XML and a PDB to run it with\n\n"
        "One molecule goes to the file named by `-o`; the PDB file beside it holds the "
        "coordinates (the input's, or a generated conformer) and the topology, atoms in the "
        "System's order (`--no-positions` skips it)."),
    new_code_cell("%%bash\nespaloma-like parametrize 'CC(=O)Nc1ccc(O)cc1' -o paracetamol.xml"),
    new_code_cell(
        "import openmm\nimport openmm.app as app\nfrom openmm import unit\n\n"
        "pdb = app.PDBFile('paracetamol.pdb')\n"
        "system = openmm.XmlSerializer.deserialize(Path('paracetamol.xml').read_text())\n"
        "integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond,\n"
        "                                             0.001 * unit.picoseconds)\n"
        "simulation = app.Simulation(pdb.topology, system, integrator,\n"
        "                            openmm.Platform.getPlatformByName('CPU'))\n"
        "simulation.context.setPositions(pdb.positions)\n"
        "simulation.minimizeEnergy()\n"
        "simulation.step(1000)\n"
        "print(simulation.context.getState(getEnergy=True).getPotentialEnergy())"),
    new_markdown_cell(
        "Several molecules (a SMILES list, or an SDF file) go to a directory, one file each, "
        "named by index, name and a hash of the SMILES; a molecule that fails is reported and "
        "the others are still written. `--format forcefield` writes OpenMM ForceField XML "
        "(for `ForceField('mol.xml', ...)` after `import espaloma_like`), `gromacs` and "
        "`amber` write `.top`/`.gro` and `.prmtop`/`.inpcrd` (with `--model portable`: the "
        "default's corrections within the molecule have no place in those files), and "
        "`--method sage|gaff` runs a baseline instead of the model."),
    new_code_cell(
        "%%writefile ligands.smi\nCCO ethanol\nCC(=O)[O-] acetate\nc1ccccc1O phenol\n"
        "C1CC( broken"),
    new_code_cell(
        "%%bash\nespaloma-like parametrize ligands.smi -o ligands --format forcefield "
        "|| echo \"exit status $? (one molecule failed)\"\nls ligands"),
    new_markdown_cell(
        "## Look at a dataset\n\n"
        "`data info` summarizes a SPICE-format HDF5 file (or the OpenFF industry SDF files): "
        "here the DFT torsion scans that ship with the package."),
    new_code_cell("%%bash\ncd \"$REPO\"  # the repository (this cell's shell only)\n"
                  "espaloma-like data info data/espaloma_like_b3lyp_scans.h5"),
    new_markdown_cell(
        "## Build a tiny dataset\n\n"
        "`data build` samples conformations (ETKDG, high-temperature MD), labels them with a "
        "QM engine (GFN2-xTB here; DFT with PySCF in `training/data_build_dft_scans.yaml`), "
        "adds AM1-BCC charges and writes SPICE-format HDF5. It is resumable: the same command "
        "again continues an interrupted build."),
    new_code_cell(
        "%%writefile tiny_build.yaml\n"
        "schema_version: 1\n"
        "output: tiny.h5\n"
        "work_dir: tiny_parts\n"
        "sources:\n"
        "  builtin: false\n"
        "  smiles: ['CCO', 'CC(=O)[O-]', 'C[NH3+]', 'CC(=O)NC', 'CCN']\n"
        "  charged_variants: false\n"
        "sampling:\n"
        "  n_etkdg: 3\n"
        "  n_md_per_conformer: 2\n"
        "  md_interval_steps: 50\n"
        "  torsion_scan: false\n"
        "scan_every: 0\n"
        "engine: gfn2-xtb\n"
        "am1bcc: true\n"
        "split:\n"
        "  held_out_fraction: 0.0\n"
        "workers: 1\n"),
    new_code_cell("%%bash\nespaloma-like data build tiny_build.yaml > build_report.json 2> build.log\n"
                  "espaloma-like data info tiny.h5"),
    new_markdown_cell(
        "## Train a small model from scratch\n\n"
        "`train` reads a YAML config (unknown keys are refused), writes checkpoints to "
        "`output_dir` and resumes there when run again with the same config. Molecules are "
        "split into training and validation by a hash of their SMILES (here ethylamine "
        "validates); the best checkpoint is the one with the lowest validation loss."),
    new_code_cell(
        "%%writefile tiny_train.yaml\n"
        "schema_version: 1\n"
        "data:\n"
        "  train_files: [tiny.h5]\n"
        "  validation_fraction: 0.3\n"
        "  conformations_per_molecule: 4\n"
        "  batch_molecules: 4\n"
        "model:\n"
        "  hidden: 32\n"
        "  n_layers: 2\n"
        "  readout_hidden: 32\n"
        "max_steps: 30\n"
        "eval_every: 10\n"
        "output_dir: scratch\n"
        "tensorboard: false\n"),
    new_code_cell("%%bash\nespaloma-like train tiny_train.yaml 2> train.log\n"
                  "tail -n 1 train.log | tr '\\r' '\\n' | tail -n 1  # the progress bar's last state"),
    new_markdown_cell(
        "## Fine-tune the shipped model\n\n"
        "The same config with `init_from: default` (a shipped model name or a checkpoint path, "
        "relative to the config file) and the charge head frozen; `--output-dir` and "
        "`--max-steps` override the config on the command line."),
    new_code_cell(
        "%%writefile fine_tune.yaml\n"
        "schema_version: 1\n"
        "data:\n"
        "  train_files: [tiny.h5]\n"
        "  validation_fraction: 0.3\n"
        "  conformations_per_molecule: 4\n"
        "  batch_molecules: 4\n"
        "init_from: default\n"
        "freeze: [charges]\n"
        "max_steps: 10\n"
        "eval_every: 10\n"
        "output_dir: fine\n"
        "tensorboard: false\n"),
    new_code_cell("%%bash\nespaloma-like train fine_tune.yaml 2> fine.log\nls fine"),
    new_markdown_cell(
        "## Evaluate, and use the fine-tuned model\n\n"
        "`evaluate` compares energies, forces and charges with the QM data for the model and "
        "the Sage and GAFF baselines (those use the dataset's AM1-BCC charges) and writes a "
        "report with parity plots; `parametrize --model` takes a checkpoint."),
    new_code_cell("%%bash\nespaloma-like evaluate fine/best.pt tiny.h5 --split all --out report "
                  "--no-plots 2> evaluate.log\n"
                  "espaloma-like parametrize CCO -o ethanol_tuned.xml --model fine/best.pt"),
]

INSPECT = [
    new_markdown_cell(
        "# Inspecting parameters: which atoms got which charges and torsion barriers\n\n"
        + HOW_TO_REFRESH),
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

PROTEIN_LIGAND = [
    new_markdown_cell(
        "# A solvated protein-ligand system: build it in one call, run MD\n\n"
        "HIF-2alpha PAS-B with the inhibitor PT2385 (PDB 5TBM), as prepared by the OpenFF "
        "Toolkit's own examples (capped protein, protonated, ligand in its crystal pose; the "
        "files ship with `openff-toolkit`). Protein and water get Amber ff14SB and TIP3P-FB; "
        "the ligand gets the model's parameters through `espaloma_like.SystemGenerator`, "
        "modelled on openmmforcefields' generator of the same name (`charmm36.xml` works too). "
        "A few picoseconds on the CPU show the set-up runs; they say nothing yet about binding.\n\n"
        + HOW_TO_REFRESH),
    new_code_cell(
        "import warnings\n\nimport numpy as np\nimport openmm\nimport openmm.app as app\n"
        "from openff.toolkit.utils import get_data_file_path\nfrom openmm import unit\n\n"
        "import espaloma_like\nfrom espaloma_like.domain import OutOfDomainWarning\n\n"
        "complex_pdb = app.PDBFile(get_data_file_path('proteins/5tbm_complex_solv.pdb'))\n"
        "ligand_sdf = get_data_file_path('molecules/PT2385.sdf')\n"
        "modeller = app.Modeller(complex_pdb.topology, complex_pdb.positions)\n"
        "# keep the protein (chain A) and the ligand (chain B); drop crystal waters, ions, additives\n"
        "modeller.delete([c for c in modeller.topology.chains() if c.id not in ('A', 'B')])\n"
        "print(f'protein and ligand: {modeller.topology.getNumAtoms()} atoms')\n"
        "ligand = espaloma_like.parametrize(ligand_sdf)  # the SDF's atom order and coordinates\n"
        "print(ligand.molecule.smiles)\n"
        "print('outside the applicability domain:', '; '.join(ligand.domain_warnings) or 'no')"),
    new_markdown_cell(
        "The applicability-domain check says where the model extrapolates (another net "
        "charge or size than its training molecules, or atom environments it never saw); "
        "outside, `parametrize` warns (`OutOfDomainWarning`) and still returns parameters. "
        "PT2385 lies inside the domain of the DFT-tuned default model.\n\n"
        "## One call builds the System\n\n"
        "Hydrogen mass repartitioning (3 amu) with constraints on bonds to hydrogen allows "
        "4 fs steps; water is added in a rhombic dodecahedron, neutralized with ions."),
    new_code_cell(
        "generator = espaloma_like.SystemGenerator(\n"
        "    ['amber14-all.xml', 'amber14/tip3pfb.xml'], molecules=[ligand_sdf],\n"
        "    forcefield_kwargs={'constraints': app.HBonds, 'hydrogenMass': 3 * unit.amu},\n"
        "    periodic_forcefield_kwargs={'nonbondedMethod': app.PME,\n"
        "                                'nonbondedCutoff': 0.9 * unit.nanometer})\n"
        "with warnings.catch_warnings():  # said once above\n"
        "    warnings.simplefilter('ignore', OutOfDomainWarning)\n"
        "    modeller.addSolvent(generator.forcefield, model='tip3p', padding=0.6 * unit.nanometer,\n"
        "                        boxShape='dodecahedron',\n"
        "                        residueTemplates=generator.residue_templates(modeller.topology))\n"
        "    system = generator.create_system(modeller.topology)\n"
        "print(f'{system.getNumParticles()} atoms, {system.getNumConstraints()} constraints')\n"
        "for residue, template in generator.ligand_templates.items():\n"
        "    print(f'residue {residue.name} of chain {residue.chain.index}: the model\\'s template '\n"
        "          f'{template}')"),
    new_markdown_cell(
        "## Minimize, then a short MD run\n\n"
        "Every 0.1 ps: the potential energy, and the ligand's heavy-atom RMSD from its "
        "crystal pose after superposing the protein's C-alpha atoms."),
    new_code_cell(
        "def superposed_rmsd(xyz, reference, fit, measure):\n"
        "    \"\"\"RMSD of atoms `measure` after the best superposition of atoms `fit` (Kabsch).\"\"\"\n"
        "    a = xyz - xyz[fit].mean(0)\n"
        "    b = reference - reference[fit].mean(0)\n"
        "    u, _, vt = np.linalg.svd(a[fit].T @ b[fit])\n"
        "    d = np.sign(np.linalg.det(u @ vt))\n"
        "    rotated = a @ (u @ np.diag([1.0, 1.0, d]) @ vt)\n"
        "    return np.sqrt(((rotated[measure] - b[measure]) ** 2).sum(1).mean())\n\n\n"
        "atoms = list(modeller.topology.atoms())\n"
        "ligand_residue = next(iter(generator.ligand_templates))\n"
        "calpha = [a.index for a in atoms if a.name == 'CA' and a.residue.chain.index == 0]\n"
        "ligand_heavy = [a.index for a in ligand_residue.atoms() if a.element.symbol != 'H']\n\n"
        "integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond,\n"
        "                                             0.004 * unit.picoseconds)\n"
        "simulation = app.Simulation(modeller.topology, system, integrator,\n"
        "                            openmm.Platform.getPlatformByName('CPU'))\n"
        "simulation.context.setPositions(modeller.positions)\n"
        "simulation.minimizeEnergy(maxIterations=100)\n"
        "simulation.context.setVelocitiesToTemperature(300 * unit.kelvin, 0)\n\n"
        "def snapshot():\n"
        "    state = simulation.context.getState(getEnergy=True, getPositions=True)\n"
        "    xyz = state.getPositions(asNumpy=True).value_in_unit(unit.angstrom)\n"
        "    return (state.getTime().value_in_unit(unit.picosecond),\n"
        "            state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole), xyz)\n\n"
        "crystal = np.array(modeller.positions.value_in_unit(unit.angstrom))\n"
        "trace = []\n"
        "for _ in range(21):  # 0 to 20 x 25 steps x 4 fs = 2 ps\n"
        "    t, e, xyz = snapshot()\n"
        "    trace.append((t, e, superposed_rmsd(xyz, crystal, calpha, ligand_heavy)))\n"
        "    simulation.step(25)\n"
        "time_ps, potential, ligand_rmsd = np.array(trace).T\n"
        "print(f'{time_ps[-1]:.1f} ps: potential energy {potential[-1]:.0f} kJ/mol, '\n"
        "      f'ligand RMSD {ligand_rmsd[-1]:.2f} A')"),
    new_code_cell(
        "import matplotlib.pyplot as plt\n\n"
        "fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2), dpi=80)\n"
        "left.plot(time_ps, potential / 1000)\n"
        "left.set_xlabel('time (ps)')\nleft.set_ylabel('potential energy (MJ/mol)')\n"
        "right.plot(time_ps, ligand_rmsd)\n"
        "right.set_xlabel('time (ps)')\nright.set_ylabel('ligand heavy-atom RMSD (A)')\n"
        "right.set_ylim(bottom=0)\nfig.tight_layout()"),
]

NOTEBOOKS = {
    "01_quickstart": QUICKSTART,
    "02_command_line": COMMAND_LINE,
    "03_inspecting_parameters": INSPECT,
    "04_protein_ligand_md": PROTEIN_LIGAND,
}


def build(cells: list) -> nbformat.NotebookNode:  # type: ignore[type-arg]
    notebook = new_notebook(cells=copy.deepcopy(cells))
    for index, cell in enumerate(notebook.cells):
        cell.id = f"cell-{index}"  # stable ids: a re-run does not rewrite every cell
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    return notebook


def execute(notebook: nbformat.NotebookNode, timeout: int = 600) -> None:
    """Run ``notebook`` in place in a fresh kernel, in a temporary directory; raises on an error."""
    import nbclient

    with tempfile.TemporaryDirectory(prefix="espaloma_like-notebook-") as scratch:
        client = nbclient.NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                                         record_timing=False,
                                         resources={"metadata": {"path": scratch}})
        client.execute()
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = _tidy_streams(cell.outputs)


def _tidy_streams(outputs: list) -> list:  # type: ignore[type-arg]
    """Merge consecutive outputs of one stream, and keep of each line what a terminal shows
    after its carriage returns (a progress bar's last state, not every update)."""
    merged: list = []  # type: ignore[type-arg]
    for output in outputs:
        if (output.output_type == "stream" and merged and merged[-1].output_type == "stream"
                and merged[-1].name == output.name):
            merged[-1].text += output.text
        else:
            merged.append(output)
    for output in merged:
        if output.output_type == "stream":
            output.text = "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1]
                                    for line in output.text.split("\n"))
    return merged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"notebooks to write (default: all of {', '.join(NOTEBOOKS)})")
    parser.add_argument("--no-execute", action="store_true",
                        help="write the sources only, without outputs (do not commit them)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(NOTEBOOKS))
    if unknown:
        parser.error(f"no notebook {', '.join(unknown)}; choose from {', '.join(NOTEBOOKS)}")
    for name in args.names or NOTEBOOKS:
        notebook = build(NOTEBOOKS[name])
        if not args.no_execute:
            print(f"executing {name} ...", file=sys.stderr, flush=True)
            execute(notebook)
        nbformat.validate(notebook)
        nbformat.write(notebook, HERE / f"{name}.ipynb")
    return 0


if __name__ == "__main__":
    sys.exit(main())
