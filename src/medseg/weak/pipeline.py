"""`supervision: image-labels`: from image-level labels to a segmentation network, in one run folder.

    <run>/weak.yaml            the pipeline's config, as given (resolved)
    <run>/classifier/          a classification run on the image labels (its own config, metrics, checkpoints)
    <run>/pseudo_masks.npz     pseudo-masks of the training and validation images (0 / 1 / IGNORE_INDEX unknown)
    <run>/weak.json            map localisation and pseudo-mask quality against the true masks, where known
    <run>/...                  the segmentation run trained on the pseudo-masks (`data.mask_override`): its
                               config.yaml, checkpoints and metrics; its test evaluation uses the true masks

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
from medseg.data.pseudo_masks import save_pseudo_masks
from medseg.engine.checkpoint import load_checkpoint
from medseg.engine.distributed import setup_distributed
from medseg.engine.trainer import TrainResult, claim, claim_new, fit_run, resume, train
from medseg.inference import Predictor
from medseg.losses import IGNORE_INDEX
from medseg.methods.classification import image_labels
from medseg.resolve import resolve_config
from medseg.run_folder import RunFolder
from medseg.weak.maps import lesion_maps, map_dice, pointing_hits
from medseg.weak.pseudo_masks import make_pseudo_masks, mask_quality

__all__ = ["classifier_config", "segmentation_config", "write_pseudo_masks", "train_weak", "resume_weak"]


def classifier_config(cfg: Config) -> Config:
    """The stage-1 config: same data, split and seed; the weak section's classifier on image labels."""
    raw = cfg.model_dump(mode="json")
    raw["name"] = f"{cfg.name}-classifier"
    raw["model"] = {k: v for k, v in cfg.weak.classifier.items() if k != "out_channels"}
    raw["method"] = {"name": "classification", "label_from": cfg.weak.label_from}
    if cfg.weak.classes is not None:
        raw["method"]["classes"] = cfg.weak.classes
    raw["train"] = {**raw["train"], "epochs": cfg.weak.epochs, "lr": cfg.weak.lr or cfg.train.lr}
    raw["supervision"] = "masks"
    return resolve_config(load_config(raw))


def segmentation_config(cfg: Config, run: RunFolder) -> Config:
    """The stage-2 config: the pipeline's model, method and training on the pseudo-masks, on stage 1's split; with
    `weak.stage2: wsr`, the region-growing method, which carries the classifier it grows from."""
    raw = cfg.model_dump(mode="json")
    raw["supervision"] = "masks"  # the segmentation stage itself is an ordinary supervised run
    raw["data"] = {
        **raw["data"],
        "mask_override": str(run.pseudo_masks_path.resolve()),
        "split_file": str(run.classifier.splits_path.resolve()),
    }
    if cfg.weak.stage2 == "wsr":
        raw["model"] = {k: v for k, v in cfg.model.items() if k != "out_channels"}
        raw["method"] = {
            "name": "wsr",
            "classifier": run.classifier.config.model,
            "classifier_checkpoint": str(run.classifier.checkpoint("best").resolve()),
            "maps": cfg.weak.maps,
            "embedding_dim": cfg.weak.embedding_dim,
            "pairs": cfg.weak.pairs,
            "seeds": cfg.weak.seeds,
        }
    return resolve_config(load_config(raw))


@torch.no_grad()
def write_pseudo_masks(classifier: RunFolder, cfg: Config, out: Path) -> dict:
    """Maps and pseudo-masks for every image of the classifier's split; saves the training and validation
    images' pseudo-masks to `out` and returns the quality figures (per split, against true masks)."""
    predictor = Predictor.load(classifier.path, "best")
    ids, masks, report = [], [], {}
    dataset = prepare_dataset(predictor.cfg.data, predictor.cfg.seed, classifier.splits())
    for split in ("train", "val", "test"):
        rows = dataset.rows(split)
        if len(rows) == 0:
            continue
        order, pseudo, truth, figures = _split_pseudo_masks(predictor, dataset, rows, cfg)
        if split != "test":
            masks.append(pseudo)
            ids += [dataset.store.ids[r] for r in order]
        known = (truth != IGNORE_INDEX).all((1, 2))
        report[split] = {"images": int(len(rows)), **figures, "pseudo_mask": mask_quality(pseudo[known], truth[known])}
    save_pseudo_masks(out, ids, np.concatenate(masks))
    return {"maps": cfg.weak.maps, "foreground": cfg.weak.foreground, "background": cfg.weak.background, **report}


def _split_pseudo_masks(predictor: Predictor, dataset, rows: np.ndarray, cfg: Config) -> tuple:
    """One split's store rows in the order of its pseudo-masks `(N, S, S)`, the true masks, and how well the maps
    point at the true lesions."""
    order, pseudo, truth, hits, dices, lesion_rows = [], [], [], [], [], 0
    for batch in iterate_batches(dataset.store, rows, predictor.cfg.train.batch_size, labels=dataset.labels):
        order += batch["row"].tolist()
        labels = image_labels(batch, predictor.method.label_from, predictor.method.classes)
        with torch.enable_grad():
            maps = lesion_maps(predictor.model, batch["image"].to(predictor.device), cfg.weak.maps).cpu()
        pseudo.append(make_pseudo_masks(maps, labels, cfg.weak.foreground, cfg.weak.background).numpy())
        truth.append(batch["mask"].numpy())
        known = (batch["mask"] != IGNORE_INDEX).flatten(1).all(1)
        positive = (batch["mask"] > 0).flatten(1).any(1) & known
        if positive.any():
            hits.append(pointing_hits(maps[positive], batch["mask"][positive]))
            dices.append(map_dice(maps[positive], batch["mask"][positive], cfg.weak.foreground))
            lesion_rows += int(positive.sum())
    figures = {
        "lesion_images": lesion_rows,
        "pointing_game": float(torch.cat(hits).mean()) if hits else None,
        "map_dice": float(torch.cat(dices).mean()) if dices else None,
    }
    return order, np.concatenate(pseudo), np.concatenate(truth), figures


def train_weak(cfg: Config, run_dir: str | Path, overwrite: bool = False, show_progress: bool = True) -> TrainResult:
    """Run the three stages into a new run folder `run_dir` (see the module docstring); returns the segmentation
    stage's result.

    Raises:
        ValueError: image labels that are not binary.
        RunFolderError: `run_dir` holds a run (unless `overwrite`), or another process trains there.
    """
    if cfg.weak.label_from == "case" and len(cfg.weak.classes or []) != 2:
        raise ValueError(
            "supervision: image-labels needs binary image labels (lesion absent / present): weak.label_from: mask, "
            f"or label_from: case with weak.classes [absent, present]; got classes {cfg.weak.classes}"
        )
    cfg = resolve_config(cfg)
    run, ctx = RunFolder(run_dir), setup_distributed()
    with claim_new(run, ctx, overwrite):
        if ctx.is_main:
            write_text_atomic(run.weak_config_path, cfg.to_yaml())
        return _run_stages(cfg, run, show_progress)


def resume_weak(run_dir: str | Path, show_progress: bool = True) -> TrainResult:
    """Continue an interrupted `supervision: image-labels` run from the stage it reached."""
    run, ctx = RunFolder(run_dir), setup_distributed()
    cfg = resolve_config(load_config(run.weak_config_path), str(run.weak_config_path))
    with claim(run, ctx):
        return _run_stages(cfg, run, show_progress)


def _run_stages(cfg: Config, run: RunFolder, show_progress: bool) -> TrainResult:
    classifier, ctx = run.classifier, setup_distributed()
    last = classifier.checkpoint("last")
    if not last.is_file():
        train(classifier_config(cfg), classifier.path, overwrite=True, show_progress=show_progress)
    elif load_checkpoint(last)["epoch"] < cfg.weak.epochs:  # stage 1 was interrupted: finish it first
        resume(classifier.path, show_progress=show_progress)
    if ctx.is_main and not run.pseudo_masks_path.is_file():
        quality = write_pseudo_masks(classifier, cfg, run.pseudo_masks_path)
        write_text_atomic(run.weak_path, json.dumps(quality, indent=2))
    ctx.barrier()
    stage2 = run.checkpoint("last")
    saved = load_checkpoint(stage2) if stage2.is_file() else None
    return fit_run(run, segmentation_config(cfg, run), ctx, saved, show_progress)
