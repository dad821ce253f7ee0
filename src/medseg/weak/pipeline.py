"""`supervision: image-labels`: from image-level labels to a segmentation network, in one run folder.

    <run>/weak.yaml                  the pipeline's config, as given (resolved)
    <run>/classifier/                a classification run on the image labels (its own config, metrics, checkpoints)
    <run>/classifier-try<k>/         with `weak.classifier_tries`: another seed's classifier, trained when the
                                     earlier ones' maps did not localise on the validation patients (every try
                                     with `weak.choose_classifier`)
    <run>/pseudo_masks.npz           round 1's pseudo-masks of the training and validation images, from the
                                     classifier's maps (refined by a CRF with `weak.refine: crf`)
    <run>/round<k>/                  with `weak.rounds` > 1: the segmentation run of round k < last, whose
                                     confident predictions are round k+1's pseudo-masks (pseudo_masks_round<k+1>.npz)
    <run>/weak.json                  every stage's figures: classifier, the maps chosen (`weak.choose_maps`),
                                     thresholds, each round's pseudo-masks against the true masks where known
    <run>/...                        the last round's segmentation run: its config.yaml, checkpoints, metrics;
                                     its test evaluation uses the true masks
    <run>/config.yaml (eval)         with `weak.choose_postprocessing`: the post-processing that scored best on the
                                     validation patients' true masks
    <run>/weak_panels/               a few test slices: image | map | refined pseudo-mask | prediction | truth

True masks are never a training target: the classifier sees only image labels (lesion present: the mask is not
empty; or the case's label), the segmentation networks' training and validation masks are pseudo-masks, and the
thresholds chosen with `weak.choose_thresholds` are chosen on the validation patients, never on test.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from medseg.atomic import write_text_atomic
from medseg.checkpoint_io import load_checkpoint, training_finished
from medseg.config import Config, load_config
from medseg.data.dataset import Dataset, iterate_batches, prepare_dataset
from medseg.data.mask_override import save_pseudo_masks
from medseg.engine.distributed import setup_distributed
from medseg.engine.trainer import TrainResult, claim, claim_new, fit_run, resume, train, train_or_resume
from medseg.explain.maps import map_dice, pointing_hits
from medseg.inference import Predictor
from medseg.losses import IGNORE_INDEX
from medseg.methods.classification import image_labels
from medseg.postprocessing_choice import choose_postprocessing
from medseg.resolve import resolve_config
from medseg.run_folder import RunFolder
from medseg.ui import console, labelled
from medseg.weak.panels import write_panels
from medseg.weak.pseudo_masks import make_pseudo_masks, mask_quality
from medseg.weak.seeds import batch_maps, positive_images, pseudo_masks_of

__all__ = [
    "classifier_config",
    "classifier_try_config",
    "choose_classifier",
    "choose_maps",
    "true_dataset",
    "validation_pointing",
    "segmentation_config",
    "write_pseudo_masks",
    "relabel",
    "CONFIDENT_GRID",
    "train_weak",
    "resume_weak",
]

FOREGROUND_GRID = (0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


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


# -- stage 1: maps and pseudo-masks -------------------------------------------------------------------------------
def true_dataset(cfg: Config, classifier: RunFolder) -> Dataset:
    """The pipeline's data with its true masks (read for the image-level labels and to measure quality), on the
    classifier's split."""
    data = cfg.data.model_copy(update={"mask_override": None, "split_file": None})
    return prepare_dataset(data, cfg.seed, classifier.splits())


def _split_maps(predictor: Predictor, dataset: Dataset, rows: np.ndarray, cfg: Config) -> dict:
    """Every image of a split: its rows (in batch order), maps, image labels and true masks."""
    method, order, maps, labels, truth = predictor.method, [], [], [], []
    for batch in iterate_batches(dataset.store, rows, predictor.cfg.train.batch_size, labels=dataset.labels):
        batch_labels = image_labels(batch, method.label_from, method.classes)
        maps.append(batch_maps(predictor, batch["image"].to(predictor.device), batch_labels.to(predictor.device), cfg))
        order += batch["row"].tolist()
        labels.append(batch_labels.cpu())
        truth.append(batch["mask"].numpy())
    return {"rows": order, "maps": torch.cat(maps), "labels": torch.cat(labels), "truth": np.concatenate(truth)}


def _best_threshold(maps: torch.Tensor, truth: np.ndarray, grid: tuple[float, ...]) -> tuple[float, dict[str, float]]:
    """The value of `grid` whose `maps ≥ value` `(N, 1, S, S)` have the best mean Dice on the images that hold a
    lesion (`truth`, their true masks); also every candidate's Dice (0 without lesion images)."""
    lesion = _lesion_images(truth)
    maps, true = maps[torch.from_numpy(lesion)], torch.from_numpy(truth[lesion])
    scores = {f"{t:g}": float(map_dice(maps, true, t).mean()) if len(maps) else 0.0 for t in grid}
    return max(grid, key=lambda t: scores[f"{t:g}"]), scores


def _choose_thresholds(val: dict, cfg: Config) -> tuple[float, float, dict[str, float]]:
    """θ_FG from `FOREGROUND_GRID` with the best mean Dice of `map ≥ θ_FG` on the validation images that hold a
    lesion (their true masks), and θ_BG = θ_FG / 4; also every candidate's Dice."""
    best, scores = _best_threshold(val["maps"], val["truth"], FOREGROUND_GRID)
    return best, best / 4, scores


def _with_maps(cfg: Config, maps: str) -> Config:
    return cfg.model_copy(update={"weak": cfg.weak.model_copy(update={"maps": maps})})


@torch.no_grad()
def choose_maps(classifier: RunFolder, cfg: Config) -> tuple[str, dict[str, float]]:
    """Among `weak.choose_maps` (or `weak.maps` alone), the kind of map whose maps (as `cfg.weak` makes them
    otherwise), at their own θ_FG, have the best mean Dice against the validation lesion masks; and every
    candidate's Dice."""
    predictor = Predictor.load(classifier.path, "best")
    dataset = true_dataset(cfg, classifier)
    kinds = cfg.weak.choose_maps or [cfg.weak.maps]
    scores = {}
    for maps in kinds:
        variant = _with_maps(cfg, maps)
        foreground, _, dice = _choose_thresholds(_split_maps(predictor, dataset, dataset.rows("val"), variant), variant)
        scores[maps] = dice[f"{foreground:g}"]
    return max(kinds, key=scores.__getitem__), scores


# Below this share of validation lesion images whose map peaks inside the lesion, the maps do not localise (on LGG
# a localising classifier scored 0.65 and a shortcut one 0.17: its pseudo-masks, and every later round, were empty).
LOCALISATION_FLOOR = 0.3


def _pointing_game(split: dict) -> float | None:
    """The share of a split's lesion images whose map peaks inside the lesion; None without lesion images."""
    lesion = _lesion_images(split["truth"])
    if not lesion.any():
        return None
    return float(
        pointing_hits(split["maps"][torch.from_numpy(lesion)], torch.from_numpy(split["truth"][lesion])).mean()
    )


@torch.no_grad()
def validation_pointing(classifier: RunFolder, cfg: Config) -> float | None:
    """The pointing game of the classifier's maps (as `cfg.weak` makes them) on the validation images with a
    lesion; None without such images."""
    predictor = Predictor.load(classifier.path, "best")
    dataset = true_dataset(cfg, classifier)
    return _pointing_game(_split_maps(predictor, dataset, dataset.rows("val"), cfg))


def localisation_warning(figures: dict) -> str | None:
    """A warning when the maps' pointing game on the validation lesion images (`figures["val"]`) is below
    `LOCALISATION_FLOOR`: the classifier recognises lesion images by something else than the lesion."""
    pointing = figures.get("val", {}).get("pointing_game")
    if pointing is None or pointing >= LOCALISATION_FLOOR:
        return None
    return (
        f"the maps do not localise: their maximum falls inside the lesion on {pointing:.0%} of the validation lesion "
        "images, so the pseudo-masks will be poor; try more weak.classifier_tries, another weak.maps, or more "
        "classifier epochs"
    )


def _lesion_images(truth: np.ndarray) -> np.ndarray:
    """`(N,)` bool: the images whose true mask is known and holds a lesion."""
    flat = truth.reshape(len(truth), -1)
    known = (flat != IGNORE_INDEX).all(1)
    return known & ((flat > 0) & (flat != IGNORE_INDEX)).any(1)


def _quality(split: dict, pseudo: np.ndarray, foreground: float) -> dict:
    """The maps' pointing game and Dice (≥ θ_FG), and the pseudo-masks' quality, on the images with a lesion."""
    truth, maps = split["truth"], split["maps"]
    lesion = _lesion_images(truth)
    figures = {"images": len(truth), "lesion_images": int(lesion.sum())}
    if lesion.any():
        index, true = torch.from_numpy(lesion), torch.from_numpy(truth[lesion])
        figures["pointing_game"] = _pointing_game(split)
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
    splits = {name: _split_maps(predictor, dataset, dataset.rows(name), cfg) for name in ("train", "val", "test")}
    foreground, background, scores = cfg.weak.foreground, cfg.weak.background, None
    if cfg.weak.choose_thresholds:
        foreground, background, scores = _choose_thresholds(splits["val"], cfg)
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


# -- self-training ------------------------------------------------------------------------------------------------
CONFIDENT_GRID = (0.6, 0.7, 0.8, 0.9, 0.95)


def _choose_confident(val: dict) -> tuple[float, dict[str, float]]:
    """The `CONFIDENT_GRID` value whose relabelled lesion masks have the best mean Dice on the validation images that
    hold a lesion (their true masks); and every candidate's Dice."""
    return _best_threshold(torch.from_numpy(val["probs"])[:, None], val["truth"], CONFIDENT_GRID)


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
    if cfg.weak.choose_confident and _lesion_images(splits["val"]["truth"]).any():  # else the configured one
        report["confident"], report["validation_dice"] = _choose_confident(splits["val"])
    masks = []
    for name, split in splits.items():
        high = report["confident"]  # lesion where p ≥ high, background where p ≤ 1 - high
        positive = torch.from_numpy(split["positive"]).long()
        pseudo = make_pseudo_masks(torch.from_numpy(split["probs"])[:, None], positive, high, 1 - high).numpy()
        lesion_rows = _lesion_images(split["truth"])
        report[name] = {"pseudo_mask": mask_quality(pseudo[lesion_rows], split["truth"][lesion_rows])}
        masks.append(pseudo)
    save_pseudo_masks(out, splits["train"]["ids"] + splits["val"]["ids"], np.concatenate(masks))
    return report


# -- the pipeline -------------------------------------------------------------------------------------------------
def train_weak(cfg: Config, run_dir: str | Path, overwrite: bool = False, show_progress: bool = True) -> TrainResult:
    """Run the stages into a new run folder `run_dir` (see the module docstring); returns the last segmentation
    round's result.

    Raises:
        ValueError: two-class image labels given as `case` without exactly two classes.
        RunFolderError: `run_dir` holds a run (unless `overwrite`), or another process trains there.
    """
    if cfg.weak.label_from == "case" and len(cfg.weak.classes or []) < 2:
        raise ValueError(
            "supervision: image-labels needs image labels: weak.label_from: mask (lesion present), or label_from: "
            f"case with weak.classes [absent, present] or the lesion types; got classes {cfg.weak.classes}"
        )
    cfg = resolve_config(cfg)
    run, ctx = RunFolder(run_dir), setup_distributed(cfg.train.device)
    with claim_new(run, ctx, overwrite):
        if ctx.is_main:
            write_text_atomic(run.weak_config_path, cfg.to_yaml())
        return _run_stages(cfg, run, show_progress)


def resume_weak(run_dir: str | Path, show_progress: bool = True) -> TrainResult:
    """Continue an interrupted `supervision: image-labels` run from the stage it reached."""
    run = RunFolder(run_dir)
    cfg = resolve_config(load_config(run.weak_config_path), str(run.weak_config_path))
    ctx = setup_distributed(cfg.train.device)
    with claim(run, ctx):
        return _run_stages(cfg, run, show_progress)


def _report(run: RunFolder) -> dict:
    """weak.json as recorded so far ({} before the first stage's figures)."""
    return json.loads(run.weak_path.read_text()) if run.weak_path.is_file() else {}


def _record(run: RunFolder, key: str, value) -> None:
    """Set `key` of weak.json (kept as it is otherwise)."""
    report = _report(run)
    report[key] = value
    write_text_atomic(run.weak_path, json.dumps(report, indent=2))


def _train_classifier(cfg: Config, folder: RunFolder, show_progress: bool) -> None:
    """Train a stage-1 classifier into `folder`, or finish one that was interrupted; a finished one is kept."""
    last = folder.checkpoint("last")
    if not last.is_file():
        train(cfg, folder.path, overwrite=True, show_progress=show_progress)
    elif not training_finished(load_checkpoint(last), cfg.train.epochs):
        resume(folder.path, show_progress=show_progress)


def choose_classifier(
    cfg: Config,
    run: RunFolder,
    show_progress: bool = True,
    pointing: Callable[[RunFolder, Config], float | None] = validation_pointing,
    maps_score: Callable[[RunFolder, Config], tuple[str, dict[str, float]]] = choose_maps,
) -> RunFolder:
    """Stage 1's classifier among tries 1, 2, … up to `weak.classifier_tries` (seeds seed, seed+1, …; the first
    try's split), named in weak.json (`classifier`, with every try's figure in `classifier_tries`).

    By default the tries stop at the first whose maps localise on the validation patients (`pointing` ≥
    `LOCALISATION_FLOOR`), and the try with the best pointing game is kept: a classifier can recognise lesion slices
    by a shortcut whose maps point away from the lesion (on LGG, one seed's maps lit the scalp at the edge of the
    head); another seed may not. With `weak.choose_classifier`, every try is trained and the one whose maps match the
    validation masks best (`maps_score`, the `weak.choose_maps` criterion) is kept, with its kind of map recorded as
    `maps_choice`: classifiers of equal accuracy differ widely in how well their maps outline the lesions."""
    ctx = setup_distributed()
    recorded = {t["folder"]: t for t in _report(run).get("classifier_tries", [])}  # a resumed run reuses them
    choose = cfg.weak.choose_classifier
    tries = []
    for k in range(1, cfg.weak.classifier_tries + 1):
        folder = run.classifier_try(k)
        _train_classifier(classifier_try_config(cfg, run, k), folder, show_progress)
        if cfg.weak.classifier_tries == 1:  # nothing to choose from
            return folder
        name = folder.path.name
        entry = recorded.get(name) or {"folder": name, "seed": folder.config.seed}
        if choose and "maps_choice" not in entry:
            maps, scores = maps_score(folder, cfg)
            entry["maps_choice"] = {"maps": maps, "validation_dice": scores}
        if not choose and "val_pointing_game" not in entry:
            entry["val_pointing_game"] = pointing(folder, cfg)
        tries.append(entry)
        if not choose and (entry["val_pointing_game"] is None or entry["val_pointing_game"] >= LOCALISATION_FLOOR):
            break
    best = max(tries, key=_try_score)
    if ctx.is_main:
        _record(run, "classifier_tries", tries)
        _record(run, "classifier", best["folder"])
        if choose:
            _record(run, "maps_choice", best["maps_choice"])
    ctx.barrier()
    return run.classifier


def _try_score(entry: dict) -> float:
    """A classifier try's figure: its best kind of map's validation Dice, or its validation pointing game (-1 when
    the validation patients hold no lesion)."""
    if "maps_choice" in entry:
        choice = entry["maps_choice"]
        return choice["validation_dice"][choice["maps"]]
    return -1.0 if entry["val_pointing_game"] is None else entry["val_pointing_game"]


def _chosen_maps(cfg: Config, run: RunFolder, classifier: RunFolder) -> Config:
    """The config with the kind of map `weak.choose_maps` chose on the validation patients (measured once, recorded
    in weak.json as `maps_choice`, reused when the run resumes); the config as it is without candidates."""
    if not cfg.weak.choose_maps:
        return cfg
    ctx = setup_distributed()
    if ctx.is_main and "maps_choice" not in _report(run):
        maps, scores = choose_maps(classifier, cfg)
        _record(run, "maps_choice", {"maps": maps, "validation_dice": scores})
    ctx.barrier()
    return _with_maps(cfg, _report(run)["maps_choice"]["maps"])


def _run_stages(cfg: Config, run: RunFolder, show_progress: bool) -> TrainResult:
    ctx = setup_distributed()
    if not run.pseudo_masks_path.is_file():  # else stage 1 is done and its classifier chosen
        choose_classifier(cfg, run, show_progress)
    classifier = run.classifier
    cfg = _chosen_maps(cfg, run, classifier)
    if ctx.is_main and not run.pseudo_masks_path.is_file():
        stage1 = write_pseudo_masks(classifier, cfg, run.pseudo_masks_path)
        warning = localisation_warning(stage1)
        if warning:
            stage1["warning"] = warning
            console.print(labelled("warning:", "bold yellow", str(warning)), soft_wrap=True)
        _record(run, "stage1", stage1)
    ctx.barrier()
    for k in range(1, cfg.weak.rounds):  # the rounds before the last train in sub-folders
        folder, masks, relabelled = (
            run.round_folder(k),
            run.round_pseudo_masks_path(k),
            run.round_pseudo_masks_path(k + 1),
        )
        train_or_resume(segmentation_config(cfg, run, masks), folder.path, show_progress)
        if ctx.is_main and not relabelled.is_file():
            _record(run, f"round{k + 1}", relabel(folder, classifier, cfg, relabelled))
        ctx.barrier()
    stage2 = run.checkpoint("last")
    saved = load_checkpoint(stage2) if stage2.is_file() else None
    final = segmentation_config(cfg, run, run.round_pseudo_masks_path(cfg.weak.rounds))
    result = fit_run(run, final, ctx, saved, show_progress)
    if ctx.is_main and cfg.weak.choose_postprocessing and "postprocessing" not in _report(run):
        _record(run, "postprocessing", choose_postprocessing(run.path, "val"))
    if ctx.is_main:
        write_panels(run, cfg)
    return result
