"""``espaloma-like train CONFIG.yaml``: train or fine-tune on QM data (resumes automatically).

A run in the output directory resumes only with the config it was started with; ``--restart``
sets it aside and starts over.

Data-parallel across processes/GPUs/nodes with the same command under torchrun:

    torchrun --nproc-per-node 4 -m espaloma_like.cli.main train CONFIG.yaml
"""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML training config (see training/train_default.yaml)")
    parser.add_argument("--output-dir", default=None, help="override the config's output_dir")
    parser.add_argument("--max-steps", type=int, default=None, help="override max_steps")
    parser.add_argument("--init-from", default=None,
                        help="fine-tune: start from this checkpoint or shipped model name")
    parser.add_argument("--restart", "--no-resume", dest="restart", action="store_true",
                        help="start over: move a previous run's files in the output directory "
                             "into replaced-<time>/ (without it, a run resumes only with the "
                             "config it was started with)")


def run(args: argparse.Namespace) -> int:
    from espaloma_like.training.config import load_train_config
    from espaloma_like.training.trainer import Trainer

    config = load_train_config(args.config)
    updates = {k: v for k, v in (("output_dir", args.output_dir), ("max_steps", args.max_steps),
                                 ("init_from", args.init_from)) if v is not None}
    if updates:
        config = config.model_copy(update=updates)
    trainer = Trainer(config)
    result = trainer.fit(restart=args.restart)
    if trainer.dist.is_main:
        print(json.dumps({"best_checkpoint": str(result.best_checkpoint), "steps": result.steps,
                          "stopped_early": result.stopped_early,
                          "best_validation_loss": trainer.best_validation}, indent=2))
    return 0
