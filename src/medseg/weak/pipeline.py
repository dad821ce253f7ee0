"""`supervision: image-labels`: from image-level labels to a segmentation network, in one run folder.

    <run>/classifier/          a classification run on the image labels (its own config, metrics, checkpoints)
    <run>/pseudo_masks.npz     pseudo-masks of the training and validation images (0 / 1 / 255 unknown)
    <run>/weak.json            map localisation and pseudo-mask quality against the true masks, where known
    <run>/...                  the segmentation run trained on the pseudo-masks (`data.mask_override`);
                               its test evaluation uses the true masks

True masks are never a training target: the classifier sees only image labels, and the segmentation network's
training and validation masks are the pseudo-masks.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from medseg.atomic import write_text_atomic
from medseg.config import Config, load_config
from medseg.data.dataset import iterate_batches, prepare_dataset
from medseg.data.splits import read_splits
from medseg.engine.checkpoint import load_checkpoint
from medseg.engine.trainer import TrainResult, train
from medseg.inference import Predictor
from medseg.methods.classification import image_labels
from medseg.weak.maps import lesion_maps, map_dice, pointing_hits
from medseg.weak.pseudo_masks import make_pseudo_masks, mask_quality, save_pseudo_masks

__all__ = ["classifier_config", "write_pseudo_masks", "train_weak"]


def classifier_config(cfg: Config) -> Config:
    """The stage-1 config: same data, split and seed; the weak section's classifier on image labels."""
    raw = cfg.model_dump(mode="json")
    raw["name"] = f"{cfg.name}-classifier"
    raw["model"] = dict(cfg.weak.classifier)
    raw["model"].pop("out_channels", None)
    raw["method"] = {"name": "classification", "label_from": cfg.weak.label_from}
    if cfg.weak.classes is not None:
        raw["method"]["classes"] = cfg.weak.classes
    raw["train"] = {**raw["train"], "epochs": cfg.weak.epochs, "lr": cfg.weak.lr or cfg.train.lr}
    raw["supervision"] = "masks"
    return load_config(raw)


@torch.no_grad()
def write_pseudo_masks(classifier_run: Path, cfg: Config, out: Path) -> dict:
    """Maps and pseudo-masks for every image of the classifier's split; saves the training and validation
    images' pseudo-masks to `out` and returns the quality figures (per split, against true masks)."""
    predictor = Predictor.load(classifier_run, "best")
    model, method = predictor.model, predictor.method
    dataset = prepare_dataset(predictor.cfg.data, predictor.cfg.seed, read_splits(classifier_run / "splits.csv"))
    ids, masks, report = [], [], {}
    for split in ("train", "val", "test"):
        rows = dataset.rows(split)
        if len(rows) == 0:
            continue
        pseudo, truth, hits, dices, lesion_rows = [], [], [], [], 0
        for batch in iterate_batches(dataset.store, rows, predictor.cfg.train.batch_size, labels=dataset.labels):
            images = batch["image"].to(predictor.device)
            labels = image_labels(batch, method.label_from, method.classes)
            with torch.enable_grad():
                maps = lesion_maps(model, images, cfg.weak.maps).cpu()
            pseudo.append(make_pseudo_masks(maps, labels, cfg.weak.foreground, cfg.weak.background).numpy())
            truth.append(batch["mask"].numpy())
            positive = (batch["mask"] > 0).flatten(1).any(1) & (batch["mask"] != 255).flatten(1).all(1)
            if positive.any():
                hits.append(pointing_hits(maps[positive], batch["mask"][positive]))
                dices.append(map_dice(maps[positive], batch["mask"][positive], cfg.weak.foreground))
                lesion_rows += int(positive.sum())
            if split != "test":
                ids += [dataset.store.ids[r] for r in batch["row"].tolist()]
        pseudo_all, truth_all = np.concatenate(pseudo), np.concatenate(truth)
        if split != "test":
            masks.append(pseudo_all)
        known = truth_all != 255
        report[split] = {
            "images": int(len(rows)),
            "lesion_images": lesion_rows,
            "pointing_game": float(torch.cat(hits).mean()) if hits else None,
            "map_dice": float(torch.cat(dices).mean()) if dices else None,
            "pseudo_mask": mask_quality(pseudo_all[known.all((1, 2))], truth_all[known.all((1, 2))]),
        }
    save_pseudo_masks(out, ids, np.concatenate(masks))
    return {"maps": cfg.weak.maps, "foreground": cfg.weak.foreground, "background": cfg.weak.background, **report}


def train_weak(cfg: Config, run_dir: str | Path, show_progress: bool = True) -> TrainResult:
    """Run the three stages into `run_dir` (see the module docstring); returns the segmentation stage's result."""
    if cfg.weak.label_from == "case" and len(cfg.weak.classes or []) != 2:
        raise ValueError(
            "supervision: image-labels needs binary image labels (lesion absent / present): weak.label_from: mask, "
            f"or label_from: case with weak.classes [absent, present]; got classes {cfg.weak.classes}"
        )
    run_dir = Path(run_dir).resolve()
    classifier_run = run_dir / "classifier"
    last = classifier_run / "last.pt"
    if not last.is_file():
        train(classifier_config(cfg), classifier_run, show_progress=show_progress)
    elif load_checkpoint(last)["epoch"] < cfg.weak.epochs:  # stage 1 was interrupted: finish it first
        train(None, classifier_run, resume=True, show_progress=show_progress)
    pseudo = run_dir / "pseudo_masks.npz"
    quality = write_pseudo_masks(classifier_run, cfg, pseudo)
    write_text_atomic(run_dir / "weak.json", json.dumps(quality, indent=2))
    raw = cfg.model_dump(mode="json")
    raw["supervision"] = "masks"  # the segmentation stage itself is an ordinary supervised run
    raw["data"] = {**raw["data"], "mask_override": str(pseudo), "split_file": str(classifier_run / "splits.csv")}
    if cfg.weak.stage2 == "wsr":
        raw["method"] = {
            "name": "wsr",
            "classifier_run": str(classifier_run),
            "maps": cfg.weak.maps,
            "embedding_dim": cfg.weak.embedding_dim,
            "pairs": cfg.weak.pairs,
            "seeds": cfg.weak.seeds,
        }
    return train(load_config(raw), run_dir, show_progress=show_progress)
