"""Is a run's test Dice held back by its BatchNorm running statistics? Test Dice of the last checkpoint as saved,
then with every BatchNorm's statistics re-estimated on the training images (labelled and unlabelled) as stored,
without augmentation or noise. A large gain says training passes polluted the statistics prediction uses.

    .venv/bin/python benchmarks/diag_bn_statistics.py runs/bench-semi/figshare/<run folder>
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from medseg.data.dataset import iterate_batches, prepare_dataset
from medseg.data.splits import UNLABELED
from medseg.inference import Predictor
from medseg.metrics import dice_scores
from medseg.run_folder import RunFolder


def test_dice(predictor: Predictor, dataset) -> float:
    """Mean per-slice Dice of the foreground on the test split."""
    scores = [
        dice_scores(torch.as_tensor(predictor.masks(batch["image"])) > 0, batch["mask"] > 0)
        for batch in iterate_batches(dataset.store, dataset.rows("test"), 64)
    ]
    return torch.cat(scores).float().mean().item()


@torch.no_grad()
def reestimate_batch_norm(predictor: Predictor, dataset, batch_size: int = 64) -> None:
    """Every BatchNorm's running mean and variance as the plain average over one pass of the training images."""
    norms = [m for m in predictor.model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average
    rows = np.concatenate([dataset.rows("train"), dataset.rows(UNLABELED)])
    layout = torch.channels_last if predictor.cfg.train.channels_last else torch.contiguous_format
    predictor.model.train()
    generator = torch.Generator().manual_seed(0)
    for batch in iterate_batches(dataset.store, rows, batch_size, shuffle=True, generator=generator):
        predictor.model(batch["image"].contiguous(memory_format=layout))
    predictor.model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a run folder with last.pt and splits.csv")
    args = parser.parse_args()
    predictor = Predictor.load(args.run, "last")
    dataset = prepare_dataset(predictor.cfg.data, predictor.cfg.seed, RunFolder(args.run).splits())
    print(f"test Dice, statistics as saved: {test_dice(predictor, dataset):.4f}", flush=True)
    reestimate_batch_norm(predictor, dataset)
    print(f"test Dice, statistics re-estimated on the training images: {test_dice(predictor, dataset):.4f}")


if __name__ == "__main__":
    main()
