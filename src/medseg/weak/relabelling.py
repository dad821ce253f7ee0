"""Pseudo-masks of the training and validation images: round 1's from the classifier's maps (refined where configured),
each later round's from the previous round's confident predictions; saved for the next segmentation run, with their
quality against the true masks where those are known (never a training target)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from medseg.config import Config
from medseg.data.dataset import iterate_batches
from medseg.data.mask_override import save_pseudo_masks
from medseg.explain.maps import map_dice
from medseg.inference import Predictor
from medseg.methods.classification import image_labels
from medseg.run_folder import RunFolder
from medseg.weak.choices import choose_thresholds
from medseg.weak.pseudo_masks import make_pseudo_masks, mask_quality
from medseg.weak.seeds import positive_images, pseudo_masks_of
from medseg.weak.split_maps import best_threshold, lesion_images, pointing_game, split_maps
from medseg.weak.stages import true_dataset

__all__ = ["write_pseudo_masks", "CONFIDENT_GRID", "relabel"]


def _quality(split: dict, pseudo: np.ndarray, foreground: float) -> dict:
    """The maps' pointing game and Dice (≥ θ_FG), and the pseudo-masks' quality, on the images with a lesion."""
    truth, maps = split["truth"], split["maps"]
    lesion = lesion_images(truth)
    figures = {"images": len(truth), "lesion_images": int(lesion.sum())}
    if lesion.any():
        index, true = torch.from_numpy(lesion), torch.from_numpy(truth[lesion])
        figures["pointing_game"] = pointing_game(split)
        figures["map_dice"] = float(map_dice(maps[index], true, foreground).mean())
        figures["pseudo_mask"] = mask_quality(pseudo[lesion], truth[lesion])
    return figures


@torch.no_grad()
def write_pseudo_masks(classifier: RunFolder, cfg: Config, out: Path) -> dict:
    """Maps (refined where configured) and pseudo-masks for every image of the classifier's split; saves the
    training and validation images' pseudo-masks to `out` and returns the figures: thresholds (chosen on the
    validation split if asked) and, per split, the maps' pointing game and the pseudo-masks against the true masks."""
    predictor = Predictor.load(classifier.path, "best")
    dataset = true_dataset(cfg, classifier)
    splits = {name: split_maps(predictor, dataset, dataset.rows(name), cfg) for name in ("train", "val", "test")}
    foreground, background, scores = cfg.weak.foreground, cfg.weak.background, None
    if cfg.weak.choose_thresholds:
        foreground, background, scores = choose_thresholds(splits["val"], cfg)
    report = {"maps": cfg.weak.maps, "augment_maps": cfg.weak.augment_maps, "body_margin": cfg.weak.body_margin}
    report["refine"] = cfg.weak.refine
    report["thresholds"] = {"foreground": foreground, "background": background, "validation_dice": scores}
    ids, masks = [], []
    for name, split in splits.items():
        pseudo = pseudo_masks_of(split, cfg, foreground, background)
        report[name] = _quality(split, pseudo, foreground)
        if name != "test":
            ids += [dataset.store.ids[r] for r in split["rows"]]
            masks.append(pseudo)
    save_pseudo_masks(out, ids, np.concatenate(masks))
    return report


CONFIDENT_GRID = (0.6, 0.7, 0.8, 0.9, 0.95)


def _choose_confident(val: dict) -> tuple[float, dict[str, float]]:
    """The `CONFIDENT_GRID` value whose relabelled lesion masks have the best mean Dice on the validation images that
    hold a lesion (their true masks); and every candidate's Dice."""
    return best_threshold(torch.from_numpy(val["probs"])[:, None], val["truth"], CONFIDENT_GRID)


@torch.no_grad()
def relabel(segmentation: RunFolder, classifier: RunFolder, cfg: Config, out: Path) -> dict:
    """The next round's pseudo-masks: a segmentation run's confident predictions on the training and validation
    images (lesion where p ≥ `weak.confident`, background where p ≤ 1 - confident, unknown between; images labelled
    without lesion stay background), with `weak.choose_confident` the threshold of `CONFIDENT_GRID` that matches
    the validation patients' masks best; saved to `out`; returns the threshold and the masks' quality against the
    true masks."""
    predictor = Predictor.load(segmentation.path)
    labels_from = Predictor.load(classifier.path, "best").method
    dataset = true_dataset(cfg, classifier)
    splits = {}
    for name in ("train", "val"):
        probs, positive, truth, ids = [], [], [], []
        for batch in iterate_batches(dataset.store, dataset.rows(name), cfg.train.batch_size, labels=dataset.labels):
            probs.append(predictor.probabilities(batch["image"])[:, -1].numpy())  # the lesion channel
            labels = image_labels(batch, labels_from.label_from, labels_from.classes)
            positive.append(positive_images(labels, cfg).numpy())
            truth.append(batch["mask"].numpy())
            ids += [dataset.store.ids[r] for r in batch["row"].tolist()]
        splits[name] = {"probs": np.concatenate(probs), "positive": np.concatenate(positive), "ids": ids}
        splits[name]["truth"] = np.concatenate(truth)
    report: dict = {"confident": cfg.weak.confident}
    if cfg.weak.choose_confident and lesion_images(splits["val"]["truth"]).any():  # else the configured one
        report["confident"], report["validation_dice"] = _choose_confident(splits["val"])
    masks = []
    for name, split in splits.items():
        high = report["confident"]  # lesion where p ≥ high, background where p ≤ 1 - high
        positive = torch.from_numpy(split["positive"]).long()
        pseudo = make_pseudo_masks(torch.from_numpy(split["probs"])[:, None], positive, high, 1 - high).numpy()
        lesion_rows = lesion_images(split["truth"])
        report[name] = {"pseudo_mask": mask_quality(pseudo[lesion_rows], split["truth"][lesion_rows])}
        masks.append(pseudo)
    save_pseudo_masks(out, splits["train"]["ids"] + splits["val"]["ids"], np.concatenate(masks))
    return report
