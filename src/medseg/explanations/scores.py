"""How good an explanation method's maps are, against the true masks of a run's split (`medseg explain RUN --score`).

On the slices whose true mask holds a lesion, per method:
- **pointing game**: the share of slices whose map peaks inside the lesion;
- **energy inside**: the share of the map's mass that falls inside the lesion (Score-CAM's "energy-based pointing
  game");
- **deletion / insertion** (faithfulness, Petsiuk et al. 2018): the model's confidence as the map's top pixels are
  removed from the image (replaced by the image's mean), or inserted into an image of its mean, at 0, 10, …, 100% of
  the pixels; the area under each curve, relative to the confidence on the whole image. A faithful map makes the
  deletion area small and the insertion area large.

The confidence is a classifier's probability of the explained class, or a segmentation network's mean foreground
probability over the region it predicted on the whole image (all pixels where it predicted none).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import numpy as np
import torch

from medseg.data.dataset import iterate_batches, prepare_dataset
from medseg.explain import EXPLAINERS, Request
from medseg.explain.maps import pointing_hits
from medseg.explain.targets import class_target, normalise, region_target
from medseg.inference import Predictor
from medseg.models.classifier import Classifier
from medseg.run_folder import RunFolder

__all__ = ["FRACTIONS", "applicable_methods", "score_methods"]

FRACTIONS = np.linspace(0.0, 1.0, 11)


def applicable_methods(model: torch.nn.Module) -> list[str]:
    """The registered methods giving one map that explain this model (its family declared, its checks passed)."""
    family = "classifier" if isinstance(model, Classifier) else "segmentation"
    names = []
    for name in EXPLAINERS.names():
        explainer = EXPLAINERS[name]()
        if not (explainer.single_map and family in explainer.families):
            continue
        try:
            explainer.check(model)  # e.g. acam needs attention pooling
        except ValueError:
            continue
        names.append(name)
    return names


def _target(predictor: Predictor, images: torch.Tensor) -> tuple[Callable, int, Callable[[torch.Tensor], torch.Tensor]]:
    """(the score explained, the class index, the confidence of a batch of (modified) images `(B,)`)."""
    model = predictor.model
    if isinstance(model, Classifier):
        with torch.no_grad():
            logits = model(images)
        index = int(logits.mean(0).argmax()) if logits.shape[1] > 1 else 0

        def confidence(batch: torch.Tensor) -> torch.Tensor:
            probs = predictor.probabilities(batch, tta=False)
            return probs[:, index] if probs.shape[1] > 1 else probs[:, 0]

        return class_target(index), index, confidence
    probs = predictor.probabilities(images, tta=False)
    channel = 0 if probs.shape[1] == 1 else 1
    region = torch.from_numpy(predictor.masks_from(probs) == (1 if probs.shape[1] == 1 else channel)).float()
    region[region.flatten(1).sum(1) == 0] = 1.0  # nothing predicted: the whole image
    region = region.to(images.device)

    def confidence(batch: torch.Tensor) -> torch.Tensor:
        fg = predictor.probabilities(batch, tta=False)[:, channel].to(images.device)
        return (fg * region).flatten(1).sum(1) / region.flatten(1).sum(1)

    return region_target(channel, region), channel, confidence


def _curves(maps: torch.Tensor, images: torch.Tensor, confidence: Callable) -> tuple[np.ndarray, np.ndarray]:
    """Deletion and insertion confidences `(B, len(FRACTIONS))`, each relative to the whole image's."""
    batch = images.shape[0]
    order = maps.flatten(1).argsort(1, descending=True)  # (B, HW): the map's pixels, highest first
    baseline = images.mean((1, 2, 3), keepdim=True).expand_as(images)
    whole = confidence(images).clamp_min(1e-6)
    deletion, insertion = np.zeros((batch, len(FRACTIONS))), np.zeros((batch, len(FRACTIONS)))
    pixels = order.shape[1]
    for step, fraction in enumerate(FRACTIONS):
        top = torch.zeros_like(order, dtype=torch.bool)
        top.scatter_(1, order[:, : int(round(fraction * pixels))], True)
        top = top.view(batch, 1, *images.shape[-2:])
        deletion[:, step] = (confidence(torch.where(top, baseline, images)) / whole).cpu().numpy()
        insertion[:, step] = (confidence(torch.where(top, images, baseline)) / whole).cpu().numpy()
    return deletion, insertion


def score_methods(
    run: str, methods: list[str] | None = None, split: str = "test", limit: int | None = None
) -> Iterator[dict]:
    """Each method's scores on the lesion slices of the run's `split` (at most `limit` of them): one dict per method,
    yielded as soon as it is measured, with `pointing`, `energy_inside`, `deletion_auc`, `insertion_auc`, `slices`
    and `seconds`. The run and its data are read once for all the methods.

    Raises:
        ValueError: a method that cannot explain this model, or a split without lesion slices.
    """
    predictor = Predictor.load(run)
    folder = RunFolder(predictor.checkpoint.parent)
    cfg = predictor.cfg
    dataset = prepare_dataset(cfg.data.model_copy(update={"mask_override": None}), cfg.seed, folder.splits())
    rows = [row for row in dataset.rows(split) if (dataset.store.mask(row) == 1).any()][:limit]
    if not rows:
        raise ValueError(f"{run}: the {split} split holds no slice with a lesion to score explanations on")
    names = methods or applicable_methods(predictor.model)
    for name in names:
        explainer = EXPLAINERS[name]()
        explainer.check(predictor.model)
        pointing, energy, deletion, insertion, started = [], [], [], [], time.perf_counter()
        for batch in iterate_batches(dataset.store, np.asarray(rows), cfg.train.batch_size):
            images = batch["image"].to(predictor.device)
            masks = (batch["mask"] > 0).float().to(predictor.device)
            target, index, confidence = _target(predictor, images)
            maps = normalise(explainer.maps(Request(predictor.model, images, target, index)))
            pointing += pointing_hits(maps, masks).tolist()
            energy += ((maps[:, 0] * masks).flatten(1).sum(1) / maps.flatten(1).sum(1).clamp_min(1e-12)).tolist()
            curves = _curves(maps, images, confidence)
            deletion += np.trapezoid(curves[0], FRACTIONS, axis=1).tolist()
            insertion += np.trapezoid(curves[1], FRACTIONS, axis=1).tolist()
        yield (
            {
                "method": name,
                "slices": len(pointing),
                "pointing": float(np.mean(pointing)),
                "energy_inside": float(np.mean(energy)),
                "deletion_auc": float(np.mean(deletion)),
                "insertion_auc": float(np.mean(insertion)),
                "seconds": round(time.perf_counter() - started, 2),
            }
        )
