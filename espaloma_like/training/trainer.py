"""The training loop: AdamW, warm-up + cosine schedule, clipping, early stopping, exact resume.

Data order comes from one ``numpy.random.Generator`` whose state is checkpointed with the model,
the optimizer and the schedule, so a resumed run takes exactly the steps the uninterrupted run
would have taken. Data-parallel training (``torchrun``, DistributedDataParallel) splits every
batch across ranks; gloo on CPU, NCCL on CUDA.

Outputs in ``output_dir``: ``last.pt`` (full training state, every ``checkpoint_every`` steps),
``best.pt`` (the model at the best validation loss, a package checkpoint loadable with
``espaloma_like.load_model``), ``metrics.csv`` and TensorBoard event files. Files are written
atomically; a run holds the directory's lock (``.lock``) while it trains, resumes only with its
own config (``training/state.py``), and on resume rewrites ``metrics.csv`` from the history in
``last.pt`` and removes temporary files a killed run left behind.
"""

from __future__ import annotations

import copy
import csv
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from espaloma_like._io import DirectoryLock, atomic_torch_save, remove_stale_temporaries
from espaloma_like.exceptions import CheckpointError, TrainingSetupError
from espaloma_like.nn.checkpoint import load_checkpoint, one_line, save_checkpoint
from espaloma_like.nn.model import HeadStatistics, ParameterModel
from espaloma_like.training.config import TrainConfig
from espaloma_like.training.dataset import TrainingMolecule, load_training_molecules, split_molecules
from espaloma_like.training.loss import compute_loss, make_batch
from espaloma_like.training.state import (
    METRICS_FIELDS,
    STATE_FORMAT,
    STATE_KIND,
    load_training_state,
    plain,
    run_files,
    set_aside_run,
    write_metrics_csv,
)

logger = logging.getLogger(__name__)


@dataclass
class DistributedContext:
    """Rank and world size; world size 1 means no process group."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def distributed_from_environment(device: torch.device) -> DistributedContext:
    """Initialise torch.distributed when launched by torchrun (WORLD_SIZE > 1)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistributedContext(dist.get_rank(), dist.get_world_size())


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        return torch.device("cuda", local_rank)
    return torch.device(name)


def _switch_term_kinds(model: ParameterModel, config: TrainConfig) -> ParameterModel:
    """``model`` with the optional term kinds ``config`` asks for: a kind switched on gets a
    fresh readout (its own starting weights), one switched off loses it; every other weight is
    kept."""
    from espaloma_like.termkinds import OPTIONAL_KINDS, get_kind

    wanted = dict.fromkeys((k.name for k in OPTIONAL_KINDS if k.enabled(model.config)), True)
    if config.urey_bradley is not None:
        wanted["urey_bradley"] = config.urey_bradley
    if config.extra_terms is not None:
        allowed = [k.name for k in OPTIONAL_KINDS if k.config_flag is None]
        unknown = sorted(set(config.extra_terms) - set(allowed))
        if unknown:
            raise ValueError(f"unknown optional term kinds {unknown}; choose from {allowed}")
        for name in allowed:
            wanted[name] = name in config.extra_terms
    new_config = model.config
    for name, on in wanted.items():
        if get_kind(name).enabled(new_config) != on:
            new_config = get_kind(name).switch(new_config, on)
    changed_kinds = [k for k in OPTIONAL_KINDS if k.enabled(new_config) != k.enabled(model.config)]
    if not changed_kinds:
        return model
    changed = ParameterModel(new_config)
    missing, unexpected = changed.load_state_dict(model.state_dict(), strict=False)
    prefixes = tuple(f"{k.readout.module}." for k in changed_kinds if k.readout is not None)
    others = [k for k in (*missing, *unexpected) if not k.startswith(prefixes)]
    if others:
        names = ", ".join(k.name for k in changed_kinds)
        raise CheckpointError(f"{config.init_from}: cannot switch {names}, weights differ "
                              f"beyond their readouts: {others}")
    return changed


def build_model(config: TrainConfig) -> ParameterModel:
    """A fresh model, or the weights of ``init_from`` (fine-tuning), with frozen parts."""
    if config.init_from:
        model, _ = load_checkpoint(config.init_from)
    else:
        torch.manual_seed(config.seed)
        model = ParameterModel(config.model)
    model = _switch_term_kinds(model, config)
    updates = dict(config.heads or {})
    if config.proper_k_threshold is not None:
        updates["proper_k_threshold"] = config.proper_k_threshold
    if updates:
        # validated, so an unknown field or an out-of-range value stops the run here
        heads = HeadStatistics.model_validate({**model.config.heads.model_dump(), **updates})
        model.config = model.config.model_copy(update={"heads": heads})
    model.train()
    groups: dict[str, list[torch.nn.Module]] = {
        "charges": [model.charge_readout],
        "valence": list(model.readouts().values()),
        "gnn": [model.embed, model.layers],
    }
    for name in config.freeze:
        for module in groups[name]:
            for p in module.parameters():
                p.requires_grad_(False)
    return model


def learning_rate_factor(step: int, config: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to ``min_learning_rate_ratio`` (or constant)."""
    opt = config.optimizer
    if step < opt.warmup_steps:
        return (step + 1) / opt.warmup_steps
    if opt.schedule == "constant":
        return 1.0
    progress = min(1.0, (step - opt.warmup_steps) / max(1, config.max_steps - opt.warmup_steps))
    return opt.min_learning_rate_ratio + (1 - opt.min_learning_rate_ratio) * 0.5 * (
        1 + math.cos(math.pi * progress))


@dataclass
class TrainResult:
    best_checkpoint: Path
    last_checkpoint: Path
    history: list[dict[str, Any]]
    stopped_early: bool
    steps: int


class Trainer:
    """Runs (or resumes) one training run from a :class:`TrainConfig`.

    Parameters
    ----------
    config : TrainConfig
    train, validation : sequence of TrainingMolecule, optional
        Already loaded data; read from ``config.data.train_files`` when not given.
    progress : bool
        Show a progress bar with the live loss (main rank only).
    """

    def __init__(self, config: TrainConfig, train: Sequence[TrainingMolecule] | None = None,
                 validation: Sequence[TrainingMolecule] | None = None, progress: bool = True) -> None:
        self.config = config
        if config.num_threads:
            torch.set_num_threads(config.num_threads)
        self.device = resolve_device(config.device)
        self.dist = distributed_from_environment(self.device)
        self.output = Path(config.output_dir)
        # the model first: with init_from, its checkpoint's config decides the featurization
        self.model = build_model(config).to(self.device)
        # the frozen starting model that loss.prior_weight anchors to (before any resume)
        self.reference_model: ParameterModel | None = None
        if config.loss.prior_exclude:  # a misspelt kind would silently stay anchored
            from espaloma_like.termkinds import get_kind

            for name in config.loss.prior_exclude:
                try:
                    get_kind(name)
                except KeyError as err:
                    raise TrainingSetupError(f"loss.prior_exclude: {err.args[0]}") from None
        if config.loss.prior_weight > 0:
            self.reference_model = copy.deepcopy(self.model).eval()
            self.reference_model.requires_grad_(False)
        if train is None:
            skipped: list[str] = []
            molecules = load_training_molecules(
                config.data.files, self.model.config,
                config.data.max_conformations_per_molecule, seed=config.seed, skipped=skipped,
                max_relative_energy_kcal=config.data.max_relative_energy_kcal,
                max_force_kcal_per_a=config.data.max_force_kcal_per_a,
                terminal_rotors=config.data.terminal_rotor_torques)
            for line in skipped:
                logger.warning("skipped %s", line)
            train, validation, _held_out = split_molecules(molecules, config.data.validation_fraction)
            if config.data.validation_subsets:
                validation = [m for m in validation if m.subset in config.data.validation_subsets]
        self.train_set = list(train)
        self.validation_set = list(validation or [])
        self._attach_geometry_targets()
        if not self.train_set:
            raise TrainingSetupError("no training molecules")
        if not self.validation_set and config.data.validation_fraction > 0:
            # never validate on the training set under the name "validation"
            raise TrainingSetupError(
                f"validation_fraction {config.data.validation_fraction} leaves no validation "
                f"molecule among {len(self.train_set)}; add molecules, raise it, or set "
                "data.validation_fraction to 0 to train without validation")
        self.network: torch.nn.Module = self.model
        if self.dist.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.network = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(trainable, lr=config.optimizer.learning_rate,
                                           weight_decay=config.optimizer.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: learning_rate_factor(step, config))
        self.rng = np.random.default_rng(config.seed)
        self.step = 0
        self.best_validation = math.inf
        self.evaluations_since_best = 0
        self.history: list[dict[str, Any]] = []
        self.progress = progress and self.dist.is_main
        self.autocast = torch.bfloat16 if config.precision == "bf16-mixed" else None

    def _attach_geometry_targets(self) -> None:
        """Attach ``data.geometry_targets`` to the training and validation molecules (targets of
        validation molecules make the validation loss score geometry too); a target of no
        molecule is refused, as is one of the two settings without the other."""
        from espaloma_like.training.dataset import attach_geometry_targets
        from espaloma_like.training.geometry_targets import read_targets

        path, weight = self.config.data.geometry_targets, self.config.loss.geometry_weight
        if (path is None) != (weight == 0):
            raise TrainingSetupError("data.geometry_targets and loss.geometry_weight > 0 go "
                                     "together: one without the other trains nothing different")
        if path is not None:
            targets = list(read_targets(path))
            attached = attach_geometry_targets(self.train_set + self.validation_set, targets)
            self.train_set = attached[: len(self.train_set)]
            self.validation_set = attached[len(self.train_set) :]
            logger.info("geometry targets for %d molecules (%d of them validation) from %s",
                        len(targets), sum(m.geometry is not None for m in self.validation_set), path)

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """The full training state, in plain types (see ``training/state.py``)."""
        from espaloma_like import __version__

        return plain({
            "format_version": STATE_FORMAT, "kind": STATE_KIND, "package_version": __version__,
            "step": self.step, "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "rng": self.rng.bit_generator.state, "best_validation": self.best_validation,
            "evaluations_since_best": self.evaluations_since_best, "history": self.history,
            "config": self.config.model_dump(mode="json"),
        })

    def load_state_dict(self, state: dict[str, Any], source: str = "training state") -> None:
        """Restore :meth:`state_dict` output; a mismatch raises :class:`CheckpointError`."""
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.rng.bit_generator.state = state["rng"]
            self.step = int(state["step"])
            self.best_validation = float(state["best_validation"])
            self.evaluations_since_best = int(state["evaluations_since_best"])
            self.history = list(state["history"])
        except Exception as err:
            raise CheckpointError(f"{source} does not match this run: {one_line(err)}; pass "
                                  "--restart to set it aside and start over") from err

    def save_state(self, path: Path) -> None:
        atomic_torch_save(self.state_dict(), path)

    def maybe_resume(self) -> bool:
        """Continue from ``output_dir/last.pt`` if it exists (checked, weights only)."""
        last = self.output / "last.pt"
        if not last.is_file():
            return False
        self.load_state_dict(load_training_state(last, self.config), str(last))
        if self.dist.is_main:
            # rows logged after the last checkpoint are in metrics.csv but not in the history:
            # those steps run again, so the file is rewritten from the history
            write_metrics_csv(self.output / "metrics.csv", self.history)
        logger.info("resumed from %s at step %d", last, self.step)
        return True

    # ---------------------------------------------------------------- steps
    def _global_batch(self) -> list[TrainingMolecule]:
        size = min(self.config.data.batch_molecules, len(self.train_set))
        weights = np.array([m.sampling_weight for m in self.train_set])
        # equal weights keep the plain draw (and with it the exact history of earlier runs)
        p = None if np.all(weights == weights[0]) else weights / weights.sum()
        chosen = self.rng.choice(len(self.train_set), size=size, replace=False, p=p)
        return [self.train_set[i] for i in chosen]

    def train_step(self) -> dict[str, float]:
        """One optimizer step on one batch (this rank's share of it)."""
        molecules = self._global_batch()
        mine = molecules[self.dist.rank :: self.dist.world_size]
        batch = make_batch(mine, self.config.data.conformations_per_molecule, self.rng_for_step())
        self.network.train()
        loss, metrics = compute_loss(self.network, batch.to(self.device), self.config.loss,
                                     self.autocast, reference_model=self.reference_model)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        metrics["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(
            self.model.parameters(), self.config.optimizer.gradient_clip))
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        metrics["learning_rate"] = float(self.scheduler.get_last_lr()[0])
        return metrics

    def rng_for_step(self) -> np.random.Generator:
        """Conformation choice: derived from the step, so every rank agrees and resume is exact."""
        return np.random.default_rng([self.config.seed, self.step])

    @torch.no_grad()
    def evaluate(self, molecules: Sequence[TrainingMolecule], n_conformations: int = 32) -> dict[str, float]:
        """Mean metrics over fixed batches of ``molecules`` (deterministic)."""
        if not molecules:
            return {}
        self.network.eval()
        totals: dict[str, float] = {}
        weights: dict[str, int] = {}  # per metric: some (geometry) exist in some chunks only
        rng = np.random.default_rng(12345)
        size = self.config.data.batch_molecules
        for start in range(0, len(molecules), size):
            chunk = molecules[start : start + size]
            batch = make_batch(chunk, n_conformations, rng).to(self.device)
            with torch.enable_grad():
                _, metrics = compute_loss(self.model, batch, self.config.loss, self.autocast,
                                          create_graph=False, reference_model=self.reference_model)
            for key, value in metrics.items():
                squared = key.endswith(("rmse", "rmsd"))
                totals[key] = totals.get(key, 0.0) + (value**2 if squared else value) * len(chunk)
                weights[key] = weights.get(key, 0) + len(chunk)
        return {k: (math.sqrt(v / weights[k]) if k.endswith(("rmse", "rmsd")) else v / weights[k])
                for k, v in totals.items()}

    # ---------------------------------------------------------------- loop
    def fit(self, resume: bool = True, stop_after_steps: int | None = None,
            callback: Callable[[dict[str, Any]], None] | None = None,
            restart: bool = False) -> TrainResult:
        """Train until ``max_steps``, ``max_seconds`` or early stopping.

        Parameters
        ----------
        resume : bool
            Continue the run in ``output_dir`` (its ``last.pt``) if there is one; it must have
            been started with the same config. False refuses a directory holding a run.
        stop_after_steps : int, optional
            Return after this many steps of this call (the run can be resumed).
        callback : callable, optional
            Called with every validation record.
        restart : bool
            Move a previous run's files into ``output_dir/replaced-<time>/`` and start over.

        Raises
        ------
        CheckpointError
            The run in ``output_dir`` cannot be resumed (unsafe, corrupt or mismatched resume
            file, or a different config), or ``resume`` is False and there is a run.
        OutputLockedError
            Another live process is training into ``output_dir``.
        """
        self.output.mkdir(parents=True, exist_ok=True)
        lock = DirectoryLock(self.output, "training run")
        if self.dist.is_main:
            lock.acquire()
        try:
            self._prepare_output(resume, restart)
            return self._fit(stop_after_steps, callback)
        finally:
            lock.release()

    def _prepare_output(self, resume: bool, restart: bool) -> None:
        """Resume, set aside or refuse what ``output_dir`` holds (main rank holds the lock)."""
        if self.dist.is_main:
            for path in remove_stale_temporaries(self.output):
                logger.info("removed %s, left by an interrupted run", path)
        has_state = (self.output / "last.pt").is_file()
        if has_state and resume and not restart:
            self.maybe_resume()
            return
        if has_state and not restart:
            raise CheckpointError(f"{self.output} holds a training run; resume it, or pass "
                                  "--restart to set it aside and start over")
        if self.dist.world_size > 1:
            import torch.distributed as dist

            dist.barrier()  # every rank has looked at last.pt before rank 0 moves it
        if self.dist.is_main and run_files(self.output):
            # a restart, or a run killed before its first last.pt: never mix two runs' files
            moved = set_aside_run(self.output)
            logger.warning("moved the previous run's files in %s to %s", self.output, moved)

    def _fit(self, stop_after_steps: int | None,
             callback: Callable[[dict[str, Any]], None] | None) -> TrainResult:
        from tqdm import tqdm

        config = self.config
        validate = bool(self.validation_set)
        if not validate:
            logger.info("no validation set (data.validation_fraction is 0): no validation "
                        "metrics, no early stopping, best.pt is the final model")
        writer = self._tensorboard() if self.dist.is_main else None
        started = time.perf_counter()
        bar = tqdm(total=config.max_steps, initial=self.step, desc="train", unit="step",
                   disable=not self.progress)
        stopped_early = False
        steps_this_call = 0
        try:
            while self.step < config.max_steps:
                metrics = self.train_step()
                steps_this_call += 1
                bar.update()
                bar.set_postfix(loss=f"{metrics['loss']:.3f}", E=f"{metrics['energy_rmse']:.2f}",
                                F=f"{metrics['force_rmse']:.2f}")
                record = {"step": self.step, "split": "train", **metrics,
                          "seconds": time.perf_counter() - started}
                if validate and (self.step % config.eval_every == 0
                                 or self.step == config.max_steps):
                    validation = self.evaluate(self.validation_set)
                    val_record = {"step": self.step, "split": "validation", **validation}
                    self._log([record, val_record], writer)
                    if callback is not None:
                        callback(val_record)
                    if validation["loss"] < self.best_validation:
                        self.best_validation = validation["loss"]
                        self.evaluations_since_best = 0
                        if self.dist.is_main:
                            save_checkpoint(self.model, self.output / "best.pt", self._metadata(validation))
                    else:
                        self.evaluations_since_best += 1
                    if config.patience is not None and self.evaluations_since_best >= config.patience:
                        stopped_early = True
                elif self.step % 10 == 0:
                    self._log([record], writer)
                if self.dist.is_main and (self.step % config.checkpoint_every == 0 or stopped_early):
                    self.save_state(self.output / "last.pt")
                if stopped_early:
                    break
                if config.max_seconds is not None and time.perf_counter() - started > config.max_seconds:
                    break
                if stop_after_steps is not None and steps_this_call >= stop_after_steps:
                    break
        finally:
            bar.close()
            if writer is not None:
                writer.close()
        if self.dist.is_main:
            self.save_state(self.output / "last.pt")
            if not validate or not (self.output / "best.pt").is_file():
                save_checkpoint(self.model, self.output / "best.pt", self._metadata({}))
        return TrainResult(self.output / "best.pt", self.output / "last.pt", self.history,
                           stopped_early, self.step)

    def _metadata(self, validation: dict[str, float]) -> dict[str, Any]:
        training_config = self.config.model_dump(mode="json")
        # the network's own config, not the training config's model section: a fine-tuned
        # model keeps its parent's architecture (init_from) plus the switches applied to it
        training_config["model"] = self.model.config.model_dump(mode="json")
        return {"name": self.output.name, "step": self.step, "validation": validation,
                "training_config": training_config}

    def _tensorboard(self):
        if not self.config.tensorboard:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            logger.warning("tensorboard is not installed; metrics go to metrics.csv only")
            return None
        return SummaryWriter(log_dir=str(self.output / "tensorboard"))

    def _log(self, records: list[dict[str, Any]], writer: Any) -> None:
        self.history.extend(records)
        if not self.dist.is_main:
            return
        path = self.output / "metrics.csv"
        new = not path.is_file()
        # appended (a full rewrite each time grows quadratically); a row cut by a kill is
        # replaced on resume, when the file is rewritten from the history in last.pt
        with path.open("a", newline="") as handle:
            out = csv.DictWriter(handle, fieldnames=METRICS_FIELDS, extrasaction="ignore")
            if new:
                out.writeheader()
            for r in records:
                out.writerow(r)
        if writer is not None:
            for r in records:
                for key, value in r.items():
                    if key not in ("step", "split") and isinstance(value, float):
                        writer.add_scalar(f"{r['split']}/{key}", value, r["step"])


def train(config: TrainConfig, progress: bool = True) -> TrainResult:
    """Load data, train (resuming if ``output_dir`` holds a run) and return the result."""
    return Trainer(config, progress=progress).fit(resume=True)
