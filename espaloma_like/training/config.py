"""Typed training configuration; YAML files mirror it and unknown keys are refused."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from espaloma_like.nn.model import ModelConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataFile(_Strict):
    """One training file (or directory) with its own loss weights: multi-fidelity training.

    ``path`` is a SPICE-format HDF5 file, or OpenFF industry-benchmark SDF files (a directory of
    ``qm-*.sdf.xz`` or one such file: DFT minima, whose forces are the zero-gradient target).
    """

    path: str
    #: multiplies ``loss.energy_weight`` for this file's molecules
    energy_weight: float = Field(default=1.0, ge=0.0)
    #: multiplies ``loss.force_weight``; for minima the target force is zero, so this weighs how
    #: close to a stationary point the geometry must be in the model
    force_weight: float = Field(default=1.0, ge=0.0)
    #: relative chance of a molecule of this file to be drawn into a batch (per molecule)
    sampling_weight: float = Field(default=1.0, gt=0.0)
    #: multiplies ``sampling_weight`` for molecules with a net charge: charged molecules are a
    #: small share of the data (a tenth of the industry set) and where fixed-charge MM is worst
    charged_sampling_weight: float = Field(default=1.0, gt=0.0)


class DataConfig(_Strict):
    """Which QM data, and how it is batched."""

    #: file paths (weights 1), or :class:`DataFile` entries with per-file weights
    train_files: tuple[str | DataFile, ...]
    #: select the best model on these subsets of the validation split only (e.g.
    #: ``[openff_industry]``: the DFT molecules); empty selects on every validation molecule
    validation_subsets: tuple[str, ...] = ()
    validation_fraction: float = Field(default=0.1, ge=0.0, lt=1.0)
    max_conformations_per_molecule: int | None = None
    #: conformations further above their molecule's minimum, or with a larger force component,
    #: are left out (raw ETKDG clashes); None switches a limit off
    max_relative_energy_kcal: float | None = 150.0
    max_force_kcal_per_a: float | None = 300.0
    #: the loss's torques (``loss.torque_weight``) also about terminal rotors (-OH, -NH2, -CH3,
    #: ...), not only about the rotatable bonds between heavy groups
    terminal_rotor_torques: bool = False
    #: geometry targets (HDF5 of ``training/geometry_targets.py``: a model's MM minima of DFT
    #: minima of training molecules, linearized) for ``loss.geometry_weight``
    geometry_targets: str | None = None
    conformations_per_molecule: int = Field(default=16, ge=2)
    batch_molecules: int = Field(default=32, ge=1)

    @property
    def files(self) -> tuple[DataFile, ...]:
        """Every training file as a :class:`DataFile` (plain paths get weights 1)."""
        return tuple(f if isinstance(f, DataFile) else DataFile(path=f) for f in self.train_files)


class LossConfig(_Strict):
    """Loss = weighted mean squares of energy, force and charge errors + regularizers.

    Energies are mean-centred per molecule over the conformations of a batch; errors are
    measured in units of 1 kcal/mol, 1 kcal/mol/A and 0.05 e before weighting.
    """

    energy_weight: float = 1.0
    force_weight: float = 1.0
    charge_weight: float = 1.0
    torsion_l2: float = 1e-3
    #: L1 on proper torsion constants (units of the head scale, per molecule): with the model's
    #: ``proper_k_threshold`` it drives unneeded periodicities to exactly zero
    torsion_l1: float = Field(default=0.0, ge=0.0)
    #: let QM energies move the charges too (False: charges learn from the charge labels only,
    #: as espaloma does, and enter the energy detached)
    charges_from_energy: bool = False
    #: anchor to the starting model (``init_from``): squared deviations of the force constants
    #: (bonds, angles and Urey-Bradley relative to the start's; torsions and impropers in units
    #: of their head scales) and of the charges of atoms without charge labels (units of
    #: 0.05 e). Optimized minima say where the minimum is, not how stiff it is: without this,
    #: a zero-force target is met more cheaply by softening every term than by moving the
    #: equilibrium values, and the softened model's minima drift (multi-fidelity training:
    #: curvature and charges from the xTB-trained start, geometry and energies from DFT)
    prior_weight: float = Field(default=0.0, ge=0.0)
    #: term kinds the prior leaves free (registry names, e.g. ``[propers]``: torsion barriers
    #: from the DFT data instead of from the xTB-trained start)
    prior_exclude: tuple[str, ...] = ()
    #: weight of the torque errors about rotatable bonds (units of 1 kcal/mol/rad, times each
    #: file's force weight): the generalized forces of the torsions, which decide where a
    #: minimization ends but are small next to bond-stretch forces in the force loss
    torque_weight: float = Field(default=0.0, ge=0.0)
    #: weigh each torque error by ``(floor / max(stiffness, floor))^2``, the rotor's torsion
    #: stiffness (kcal/mol/rad^2, :func:`~espaloma_like.training.loss.rotor_stiffness`): what a
    #: minimization turns a rotor by is the torque error over the stiffness, so soft rotors
    #: keep full weight and stiff ones less; None weighs every rotor alike
    torque_stiffness_floor: float | None = Field(default=None, gt=0.0)
    #: weight of the predicted RMSD (A) between the MM minimum and the DFT minimum, from the
    #: linearized minima of ``data.geometry_targets``
    #: (:mod:`espaloma_like.training.geometry_targets`): the implicit derivative of where a
    #: minimization ends, which a zero-force target weighs only through the force's size
    geometry_weight: float = Field(default=0.0, ge=0.0)


class OptimizerConfig(_Strict):
    learning_rate: float = 1e-3
    weight_decay: float = 1e-5
    warmup_steps: int = 100
    schedule: Literal["cosine", "constant"] = "cosine"
    min_learning_rate_ratio: float = 0.05
    gradient_clip: float = 10.0


class TrainConfig(_Strict):
    """A training run (``espaloma-like train CONFIG.yaml``)."""

    schema_version: Literal[1] = 1
    data: DataConfig
    model: ModelConfig = ModelConfig()
    init_from: str | None = None
    #: set the model's proper-torsion soft threshold (kJ/mol), also on a model from ``init_from``
    proper_k_threshold: float | None = Field(default=None, ge=0.0)
    #: set head scales and ranges (``HeadStatistics`` fields, e.g. ``lj_sigma_log_bound``), also
    #: on a model from ``init_from``; checked against ``HeadStatistics`` when the model is built
    heads: dict[str, float] | None = None
    #: add (True) Urey-Bradley springs to a model from ``init_from`` that lacks them; the new
    #: readout starts near zero coupling, every other weight is kept
    urey_bradley: bool | None = None
    #: set the model's optional term kinds (``ModelConfig.extra_terms``), also on a model from
    #: ``init_from``: a kind added gets a fresh readout, every other weight is kept
    extra_terms: tuple[str, ...] | None = None
    freeze: tuple[Literal["charges", "valence", "gnn"], ...] = ()
    loss: LossConfig = LossConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    max_steps: int = Field(default=2000, ge=1)
    max_seconds: float | None = None
    eval_every: int = Field(default=100, ge=1)
    checkpoint_every: int = Field(default=100, ge=1)
    patience: int | None = Field(default=10, ge=1)
    output_dir: str = "runs/train"
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["fp32", "bf16-mixed"] = "fp32"
    num_threads: int | None = None
    tensorboard: bool = True


def load_train_config(path: str | Path) -> TrainConfig:
    """Read a YAML training config.

    ``init_from`` is a shipped model name or a checkpoint path; a relative path is taken
    relative to the config file's directory when a file is there, else relative to the current
    directory (how the recipes in ``training/``, run from the repository root, name
    ``runs/default/best.pt``). The resolved path is kept as written when both agree.
    """
    import yaml

    path = Path(path)
    config = TrainConfig.model_validate(yaml.safe_load(path.read_text()))
    if config.init_from:
        config = config.model_copy(update={"init_from": resolve_init_from(config.init_from, path)})
    return config


def resolve_init_from(init_from: str, config_path: str | Path) -> str:
    """``init_from`` of the config at ``config_path``, resolved (see :func:`load_train_config`)."""
    written = Path(init_from)
    if written.is_absolute():
        return init_from
    beside = Path(config_path).parent / written
    if beside.is_file() and (not written.is_file() or beside.resolve() != written.resolve()):
        return str(beside)
    return init_from
