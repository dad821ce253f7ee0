"""The configs of the weak pipeline's stages — the classifier on image labels (and its tries), each segmentation
round on pseudo-masks — and the pipeline's data with its true masks, read for image labels and to measure quality."""

from __future__ import annotations

from pathlib import Path

from medseg.config import Config, load_config
from medseg.data.dataset import Dataset, prepare_dataset
from medseg.resolve import resolve_config
from medseg.run_folder import RunFolder

__all__ = ["classifier_config", "classifier_try_config", "segmentation_config", "true_dataset"]


def classifier_config(cfg: Config) -> Config:
    """The stage-1 config: same data, split and seed; the weak section's classifier on image labels."""
    raw = cfg.model_dump(mode="json")
    raw["name"] = f"{cfg.name}-classifier"
    raw["model"] = {k: v for k, v in cfg.weak.classifier.items() if k != "out_channels"}
    raw["method"] = {"name": "classification", "label_from": cfg.weak.label_from, "balanced": cfg.weak.balanced}
    if cfg.weak.level_balanced:
        raw["method"]["level_balanced"] = True
    if cfg.weak.classes is not None:
        raw["method"]["classes"] = cfg.weak.classes
    raw["train"] = {**raw["train"], "epochs": cfg.weak.epochs, "lr": cfg.weak.lr or cfg.train.lr}
    raw["eval"] = {**raw["eval"], "checkpoint": "best"}  # the run stands for the weights its maps come from
    raw["supervision"] = "masks"
    return resolve_config(load_config(raw))


def classifier_try_config(cfg: Config, run: RunFolder, k: int) -> Config:
    """Classifier try `k` (from 1): stage 1's config with seed `cfg.seed + k - 1`, on the first try's split."""
    first = classifier_config(cfg)
    if k == 1:
        return first
    raw = first.model_dump(mode="json")
    raw["seed"] = cfg.seed + k - 1
    raw["data"]["split_file"] = str(run.classifier_try(1).splits_path.resolve())
    return resolve_config(load_config(raw))


def segmentation_config(cfg: Config, run: RunFolder, masks: Path) -> Config:
    """A segmentation round's config: the pipeline's model, method and training on the pseudo-masks `masks`, on
    stage 1's split; with `weak.stage2: wsr`, the region-growing method, which carries the classifier."""
    raw = cfg.model_dump(mode="json")
    raw["supervision"] = "masks"  # the segmentation stage itself is an ordinary supervised run
    raw["data"] = {
        **raw["data"],
        "mask_override": str(masks.resolve()),
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


def true_dataset(cfg: Config, classifier: RunFolder) -> Dataset:
    """The pipeline's data with its true masks (read for the image-level labels and to measure quality), on the
    classifier's split."""
    data = cfg.data.model_copy(update={"mask_override": None, "split_file": None})
    return prepare_dataset(data, cfg.seed, classifier.splits())
