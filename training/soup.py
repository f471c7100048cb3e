"""Average runs of one recipe, in weights (a model soup) and in outputs (an ensemble), and score
both and every member on the recipe's validation set.

    .venv/bin/python training/soup.py training/train_form_intramolecular_nonbonded.yaml \
        runs/form_intramolecular_nonbonded/best.pt \
        runs/form_intramolecular_nonbonded_seed1/best.pt \
        runs/form_intramolecular_nonbonded_seed2/best.pt \
        --out runs/form_intramolecular_nonbonded_soup/best.pt \
        --report benchmarks/results/soup_form_intramolecular_nonbonded_attempt.json

The recipe (``CONFIG``) gives the validation molecules and the loss, with the frozen starting
model of its ``init_from`` as the prior's anchor, so the soup's validation metrics (written
into its metadata) compare one to one with the members' ``best.pt`` metrics. The ensemble
averages the members' predicted parameters (every floating field of every term block, and the
charges, whose net charge stays exact); it is scored here only, not saved (it would cost one
network pass per member at parametrization time).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

import torch


def _mean(values: list[Any]) -> Any:
    """Mean of equal-shaped predictions: floating tensors averaged, the rest must agree."""
    first = values[0]
    if isinstance(first, torch.Tensor):
        if first.is_floating_point():
            return torch.stack(values).mean(dim=0)
        if any(not torch.equal(v, first) for v in values):
            raise ValueError("members disagree on a non-floating prediction")
        return first
    if dataclasses.is_dataclass(first) and not isinstance(first, type):
        return dataclasses.replace(first, **{  # type: ignore[misc]
            f.name: _mean([getattr(v, f.name) for v in values]) for f in dataclasses.fields(first)})
    return first


class OutputEnsemble(torch.nn.Module):
    """The members' predicted parameters, averaged (scoring only)."""

    def __init__(self, members: list[torch.nn.Module]) -> None:
        super().__init__()
        self.members = torch.nn.ModuleList(members)
        self.config = members[0].config  # type: ignore[union-attr]

    def forward(self, batch: Any) -> Any:
        from espaloma_like.nn.model import PredictedParameters

        outputs = [member(batch) for member in self.members]
        return PredictedParameters(
            blocks={name: _mean([o.blocks[name] for o in outputs]) for name in outputs[0].blocks},
            charges=_mean([o.charges for o in outputs]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="the members' training recipe (validation set, loss)")
    parser.add_argument("members", nargs="+", help="checkpoints to average")
    parser.add_argument("--out", required=True, help="the soup's checkpoint")
    parser.add_argument("--report", default=None,
                        help="JSON file for the validation metrics of members, soup, ensemble")
    parser.add_argument("--no-validation", action="store_true",
                        help="only average the weights; score nothing")
    args = parser.parse_args()

    import tempfile

    from espaloma_like._io import atomic_write_text
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

    def score(model: torch.nn.Module) -> dict[str, float]:
        trainer.model = trainer.network = model  # type: ignore[assignment]
        return trainer.evaluate(trainer.validation_set)

    members = [load_checkpoint(path)[0] for path in args.members]
    results: dict[str, Any] = {"recipe": args.config, "members": {
        path: score(model) for path, model in zip(args.members, members, strict=True)}}
    soup, _ = load_checkpoint(out)
    results["weight_soup"] = score(soup)
    results["output_ensemble"] = score(OutputEnsemble(members))
    make_soup(args.members, out, metadata={"validation": results["weight_soup"],
                                           "soup_recipe": str(args.config)})
    text = json.dumps(results, indent=2)
    if args.report:
        atomic_write_text(args.report, text + "\n")
    print(text)


if __name__ == "__main__":
    main()
