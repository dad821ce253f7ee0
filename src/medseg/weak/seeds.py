"""The first stage's seeds, shared by the pipeline and its pictures: a batch's lesion maps (refined where
configured) and the pseudo-masks thresholds make of them."""

from __future__ import annotations

import numpy as np
import torch

from medseg.config import Config
from medseg.explain.maps import lesion_maps
from medseg.explain.targets import scale_to_peak
from medseg.inference import Predictor
from medseg.weak.body import body_regions
from medseg.weak.pseudo_masks import make_pseudo_masks
from medseg.weak.refine import crf_refine

__all__ = ["typed", "positive_images", "batch_maps", "pseudo_masks_of"]


def typed(cfg: Config) -> bool:
    """Whether the image labels are lesion types (every image holds a lesion; its own class's map is its seed)
    rather than lesion present / absent."""
    return cfg.weak.label_from == "case" and len(cfg.weak.classes or []) > 2


def positive_images(labels: torch.Tensor, cfg: Config) -> torch.Tensor:
    """`(B,)` bool: the images that hold a lesion by their image label (every one, when labels are lesion types)."""
    return torch.ones_like(labels, dtype=torch.bool) if typed(cfg) else labels > 0


def batch_maps(predictor: Predictor, images: torch.Tensor, labels: torch.Tensor, cfg: Config) -> torch.Tensor:
    """The lesion maps of a batch `(B, 1, S, S)` in [0, 1]: inside the body region with `weak.body_margin`, refined by
    a CRF with `weak.refine: crf`."""
    lesion_class = labels if typed(cfg) else 0  # a type's own map, or the one "lesion present" logit
    positive = positive_images(labels, cfg)
    with torch.enable_grad():
        maps = lesion_maps(predictor.model, images, cfg.weak.maps, lesion_class, augment=cfg.weak.augment_maps)
    maps, positive = maps.cpu(), positive.cpu()
    if cfg.weak.body_margin is not None:
        inside = maps * body_regions(images.cpu(), cfg.weak.body_margin)
        empty = inside.amax((1, 2, 3)) == 0  # no evidence left inside the body: the map as it was, not all background
        maps = torch.where(empty.view(-1, 1, 1, 1), maps, scale_to_peak(inside))
    return crf_refine(images.cpu(), maps, positive) if cfg.weak.refine == "crf" else maps * positive.view(-1, 1, 1, 1)


def pseudo_masks_of(split: dict, cfg: Config, foreground: float, background: float) -> np.ndarray:
    positive = positive_images(split["labels"], cfg).long()
    return make_pseudo_masks(split["maps"], positive, foreground, background).numpy()
