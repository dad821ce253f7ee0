"""The training batches of an epoch: shuffled (or drawn as patches at native resolution), augmented, this
process's share, on the device; the unlabelled stream beside the labelled one for the methods that read it."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from medseg.config import Config
from medseg.data.augment import augment_batch
from medseg.data.dataset import Dataset, iterate_batches
from medseg.data.patches import patch_batches
from medseg.data.splits import UNLABELED
from medseg.engine.state import Training
from medseg.methods import Method

__all__ = ["training_batches", "to_device", "unlabeled_rows"]


def unlabeled_rows(dataset: Dataset, method: Method) -> np.ndarray:
    """The rows of the unlabelled stream: the `unlabeled` split for a method that reads it, else none."""
    return dataset.rows(UNLABELED) if method.uses_unlabeled else dataset.rows("train")[:0]


def training_batches(state: Training, epoch: int) -> Iterator[dict[str, torch.Tensor]]:
    """The epoch's training batches, augmented, this process's share, on the device. An epoch's batches and random
    draws (noise, pair sampling) do not depend on earlier epochs, so a resumed run sees what it would have seen."""
    cfg, ctx, dataset = state.cfg, state.ctx, state.dataset
    generator = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
    torch.manual_seed(cfg.seed * 100_003 + epoch + 7919 * ctx.rank)  # dropout and noise differ per process
    labeled = _endless(cfg, dataset, dataset.rows("train"), cfg.train.batch_size, generator)
    rows_u = unlabeled_rows(dataset, state.method)
    unlabeled_batch = cfg.train.unlabeled_batch_size or cfg.train.batch_size
    unlabeled = _endless(cfg, dataset, rows_u, unlabeled_batch, generator) if len(rows_u) else None
    for _ in range(state.steps_per_epoch):
        batch = next(labeled)
        image, mask, _ = augment_batch(batch["image"], batch["mask"], cfg.augment, generator)
        batch = {**batch, "image": image, "mask": mask}
        if unlabeled is not None:
            batch["unlabeled_image"] = augment_batch(next(unlabeled)["image"], None, cfg.augment, generator)[0]
        yield to_device(ctx.shard(batch), state.device, cfg.train.channels_last)


def _endless(cfg: Config, dataset: Dataset, rows: np.ndarray, batch_size: int, generator: torch.Generator):
    """Shuffled batches of `rows` (or of patches of them, at native resolution), reshuffled whenever they run out
    (the shorter stream of two cycles)."""
    if cfg.augment.patch is not None:
        patch, foreground = cfg.augment.patch, cfg.augment.foreground
        yield from patch_batches(dataset.store, rows, batch_size, patch, foreground, generator, dataset.labels)
    while True:
        yield from iterate_batches(dataset.store, rows, batch_size, True, generator, True, labels=dataset.labels)


def to_device(batch: dict[str, torch.Tensor], device: torch.device, channels_last: bool) -> dict[str, torch.Tensor]:
    out = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    if channels_last:
        for key in ("image", "unlabeled_image"):
            if key in out:
                out[key] = out[key].contiguous(memory_format=torch.channels_last)
    return out
