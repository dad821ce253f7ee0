"""A classifier's maps over every image of a split, beside the image labels and the true masks, and what is measured
on them: the images that hold a lesion, the pointing game, the threshold of a grid that matches the masks best."""

from __future__ import annotations

import numpy as np
import torch

from medseg.config import Config
from medseg.data.dataset import Dataset, iterate_batches
from medseg.explain.maps import map_dice, pointing_hits
from medseg.inference import Predictor
from medseg.losses import IGNORE_INDEX
from medseg.methods.classification import image_labels
from medseg.weak.seeds import batch_maps

__all__ = ["split_maps", "best_threshold", "pointing_game", "lesion_images"]


def split_maps(predictor: Predictor, dataset: Dataset, rows: np.ndarray, cfg: Config) -> dict:
    """Every image of a split: its rows (in batch order), maps, image labels and true masks."""
    method, order, maps, labels, truth = predictor.method, [], [], [], []
    for batch in iterate_batches(dataset.store, rows, predictor.cfg.train.batch_size, labels=dataset.labels):
        batch_labels = image_labels(batch, method.label_from, method.classes)
        maps.append(batch_maps(predictor, batch["image"].to(predictor.device), batch_labels.to(predictor.device), cfg))
        order += batch["row"].tolist()
        labels.append(batch_labels.cpu())
        truth.append(batch["mask"].numpy())
    return {"rows": order, "maps": torch.cat(maps), "labels": torch.cat(labels), "truth": np.concatenate(truth)}


def best_threshold(maps: torch.Tensor, truth: np.ndarray, grid: tuple[float, ...]) -> tuple[float, dict[str, float]]:
    """The value of `grid` whose `maps ≥ value` `(N, 1, S, S)` have the best mean Dice on the images that hold a
    lesion (`truth`, their true masks); also every candidate's Dice (0 without lesion images)."""
    lesion = lesion_images(truth)
    maps, true = maps[torch.from_numpy(lesion)], torch.from_numpy(truth[lesion])
    scores = {f"{t:g}": float(map_dice(maps, true, t).mean()) if len(maps) else 0.0 for t in grid}
    return max(grid, key=lambda t: scores[f"{t:g}"]), scores


def pointing_game(split: dict) -> float | None:
    """The share of a split's lesion images whose map peaks inside the lesion; None without lesion images."""
    lesion = lesion_images(split["truth"])
    if not lesion.any():
        return None
    return float(
        pointing_hits(split["maps"][torch.from_numpy(lesion)], torch.from_numpy(split["truth"][lesion])).mean()
    )


def lesion_images(truth: np.ndarray) -> np.ndarray:
    """`(N,)` bool: the images whose true mask is known and holds a lesion."""
    flat = truth.reshape(len(truth), -1)
    known = (flat != IGNORE_INDEX).all(1)
    return known & ((flat > 0) & (flat != IGNORE_INDEX)).any(1)
