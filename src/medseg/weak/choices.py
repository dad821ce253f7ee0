"""What the weak pipeline chooses on the validation patients, never on test: θ_FG of the maps, the kind of map
(`weak.choose_maps`), and the classifier among its tries (`weak.classifier_tries`, `weak.choose_classifier`); and the
warning when the chosen maps do not localise."""

from __future__ import annotations

from collections.abc import Callable

import torch

from medseg.checkpoint_io import load_checkpoint, training_finished
from medseg.config import Config
from medseg.engine.distributed import setup_distributed
from medseg.engine.trainer import resume, train
from medseg.inference import Predictor
from medseg.run_folder import RunFolder
from medseg.weak.split_maps import best_threshold, pointing_game, split_maps
from medseg.weak.stages import classifier_try_config, true_dataset
from medseg.weak.weak_json import read_report, record

__all__ = [
    "FOREGROUND_GRID",
    "LOCALISATION_FLOOR",
    "choose_thresholds",
    "choose_maps",
    "chosen_maps",
    "validation_pointing",
    "localisation_warning",
    "choose_classifier",
]

FOREGROUND_GRID = (0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def choose_thresholds(val: dict, cfg: Config) -> tuple[float, float, dict[str, float]]:
    """θ_FG from `FOREGROUND_GRID` with the best mean Dice of `map ≥ θ_FG` on the validation images that hold a
    lesion (their true masks), and θ_BG = θ_FG / 4; also every candidate's Dice."""
    best, scores = best_threshold(val["maps"], val["truth"], FOREGROUND_GRID)
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
        foreground, _, dice = choose_thresholds(split_maps(predictor, dataset, dataset.rows("val"), variant), variant)
        scores[maps] = dice[f"{foreground:g}"]
    return max(kinds, key=scores.__getitem__), scores


def chosen_maps(cfg: Config, run: RunFolder, classifier: RunFolder) -> Config:
    """The config with the kind of map `weak.choose_maps` chose on the validation patients (measured once, recorded
    in weak.json as `maps_choice`, reused when the run resumes); the config as it is without candidates."""
    if not cfg.weak.choose_maps:
        return cfg
    ctx = setup_distributed()
    if ctx.is_main and "maps_choice" not in read_report(run):
        maps, scores = choose_maps(classifier, cfg)
        record(run, "maps_choice", {"maps": maps, "validation_dice": scores})
    ctx.barrier()
    return _with_maps(cfg, read_report(run)["maps_choice"]["maps"])


# Below this share of validation lesion images whose map peaks inside the lesion, the maps do not localise (on LGG
# a localising classifier scored 0.65 and a shortcut one 0.17: its pseudo-masks, and every later round, were empty).
LOCALISATION_FLOOR = 0.3


@torch.no_grad()
def validation_pointing(classifier: RunFolder, cfg: Config) -> float | None:
    """The pointing game of the classifier's maps (as `cfg.weak` makes them) on the validation images with a
    lesion; None without such images."""
    predictor = Predictor.load(classifier.path, "best")
    dataset = true_dataset(cfg, classifier)
    return pointing_game(split_maps(predictor, dataset, dataset.rows("val"), cfg))


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
    recorded = {t["folder"]: t for t in read_report(run).get("classifier_tries", [])}  # a resumed run reuses them
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
        record(run, "classifier_tries", tries)
        record(run, "classifier", best["folder"])
        if choose:
            record(run, "maps_choice", best["maps_choice"])
    ctx.barrier()
    return run.classifier


def _try_score(entry: dict) -> float:
    """A classifier try's figure: its best kind of map's validation Dice, or its validation pointing game (-1 when
    the validation patients hold no lesion)."""
    if "maps_choice" in entry:
        choice = entry["maps_choice"]
        return choice["validation_dice"][choice["maps"]]
    return -1.0 if entry["val_pointing_game"] is None else entry["val_pointing_game"]
