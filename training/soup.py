"""Average the weights of runs of one recipe (a model soup) and score it on their validation set.

    .venv/bin/python training/soup.py training/train_form_intramolecular_nonbonded.yaml \
        runs/form_intramolecular_nonbonded/best.pt \
        runs/form_intramolecular_nonbonded_seed1/best.pt \
        runs/form_intramolecular_nonbonded_seed2/best.pt \
        --out runs/form_intramolecular_nonbonded_soup/best.pt

The recipe (``CONFIG``) gives the validation molecules and the loss, with the frozen starting
model of its ``init_from`` as the prior's anchor, so the soup's validation metrics (written
into its metadata and printed) compare one to one with the members' ``best.pt`` metrics.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="the members' training recipe (validation set, loss)")
    parser.add_argument("members", nargs="+", help="checkpoints to average")
    parser.add_argument("--out", required=True, help="the soup's checkpoint")
    parser.add_argument("--no-validation", action="store_true",
                        help="only average; do not score the soup on the validation set")
    args = parser.parse_args()

    import tempfile

    from espaloma_like.nn.checkpoint import load_checkpoint
    from espaloma_like.training.config import load_train_config
    from espaloma_like.training.soup import make_soup
    from espaloma_like.training.trainer import Trainer

    out = Path(args.out)
    make_soup(args.members, out)
    if args.no_validation:
        print(f"wrote {out}")
        return
    config = load_train_config(args.config)
    with tempfile.TemporaryDirectory() as scratch:
        trainer = Trainer(config.model_copy(update={"output_dir": scratch}), progress=False)
    soup, _ = load_checkpoint(out)
    trainer.model.load_state_dict(soup.state_dict())
    validation = trainer.evaluate(trainer.validation_set)
    make_soup(args.members, out, metadata={"validation": validation,
                                           "soup_recipe": str(args.config)})
    print(json.dumps({"soup": str(out), "validation": validation}, indent=2))


if __name__ == "__main__":
    main()
