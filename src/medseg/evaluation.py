"""Evaluate a run on one of its splits: per-case metrics, the summary, and best/worst overlays."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from medseg.config import DataConfig, EvalConfig, SplitConfig, parse_overrides
from medseg.data.dataset import iterate_batches, prepare_dataset
from medseg.data.pixel_checks import binarize_mask
from medseg.data.splits import SPLITS
from medseg.evaluation_classifier import evaluate_classifier
from medseg.inference import Predictor
from medseg.metrics import METRIC_NAMES, aggregate, by_truth, case_metrics
from medseg.overlay import overlay, save_png
from medseg.resolve import resolve_source
from medseg.run_folder import RunFolder

__all__ = ["evaluate_run", "evaluate_external", "eval_settings", "describe_resolution", "mean_dice_by_settings"]


def describe_resolution(data: DataConfig, at: str = "stored") -> str:
    """At which resolution a run's metrics are computed: its stored slices', or the source masks'."""
    if at == "source":
        return "source (the masks as drawn)"
    if data.resolution == "square":
        return f"{data.size}×{data.size} (every slice resized)"
    return "native" if data.scale == 1 else f"native × {data.scale:g}"


def eval_settings(base: EvalConfig, overrides: list[str] | None) -> EvalConfig:
    """`base` with `eval.*` overrides applied (`eval.tta=true`, `eval.checkpoint=last`, ...).

    Raises:
        ValueError: an override outside `eval.*` (anything else would no longer describe the trained model).
    """
    if overrides and not all(o.startswith("eval.") for o in overrides):
        raise ValueError(f"evaluate accepts only eval.* overrides (e.g. eval.tta=true), got {overrides}")
    return EvalConfig(**{**base.model_dump(), **parse_overrides(overrides or []).get("eval", {})})


def evaluate_run(
    run_dir: str | Path,
    split: str = "test",
    which: str | None = None,
    device: str = "auto",
    overrides: list[str] | None = None,
    mode: str | None = None,
    label: str | None = None,
) -> dict:
    """Evaluate `run_dir/<which>.pt` (by default the run's `eval.checkpoint`) on `split`, at the store's resolution.

    `overrides` (`eval.tta=true`, `eval.checkpoint=last`, ...) change which weights are used and how
    probabilities become masks; only `eval.*` keys are allowed, since anything else would no longer describe the
    trained model.

    Writes `eval/<label>/cases.csv`, `summary.json` and `overlays/{best,worst}_*.png` (`label`: the split by
    default; another label keeps an evaluation of other weights apart, e.g. `test-best`).

    Returns:
        the summary (per-metric mean, std, median, n; the number of cases; the checkpoint's epoch).

    Raises:
        ValueError: the split holds no case with a mask.
    """
    run = RunFolder(run_dir)
    predictor = _predictor(run, which, device, overrides, mode)
    dataset = _with_true_masks(run, predictor)
    header = {"split": split, "checkpoint": predictor.checkpoint.name, "epoch": predictor.epoch}
    return _evaluate(predictor, dataset, dataset.rows(split), run, label or split, header, mode)


def mean_dice_by_settings(
    run_dir: str | Path, split: str, settings: dict[str, dict[str, Any]], which: str | None = None, device: str = "auto"
) -> dict[str, float]:
    """The mean Dice on `split` (true masks) that `evaluate_run` would report with each named eval setting
    (`{"threshold", "tta", "largest_component"}`), the network run once per value of `tta`: the threshold and the
    largest component only change how its probabilities become masks. Writes nothing.

    Raises:
        ValueError: the split holds no case with a mask.
    """
    run = RunFolder(run_dir)
    base = _predictor(run, which, device, None, None)
    dataset = _with_true_masks(run, base)
    rows = _rows_with_masks(dataset, dataset.rows(split), f"{run.path}: {split!r}")
    dice: dict[str, list[float]] = {name: [] for name in settings}
    for tta in sorted({bool(s["tta"]) for s in settings.values()}):
        group = {name: _with_eval(base, s) for name, s in settings.items() if bool(s["tta"]) == tta}
        forward = next(iter(group.values()))
        for batch in iterate_batches(dataset.store, rows, base.cfg.train.batch_size):
            probs = forward.probabilities(batch["image"])
            for name, predictor in group.items():
                pred = predictor.masks_from(probs)
                for k, row in enumerate(batch["row"].tolist()):
                    truth = batch["mask"][k].numpy()
                    dice[name].append(_metrics(predictor, dataset, row, probs[k], pred[k], truth)["dice"])
    return {name: float(np.mean(values)) for name, values in dice.items()}


def _with_true_masks(run: RunFolder, predictor: Predictor):
    """The run's data on its own splits, with the true masks on every split (also for a run trained on
    pseudo-masks)."""
    data = predictor.cfg.data.model_copy(update={"mask_override": None})
    return prepare_dataset(data, predictor.cfg.seed, run.splits())


def _rows_with_masks(dataset, rows: np.ndarray, where: str) -> np.ndarray:
    """The store rows among `rows` that have a mask.

    Raises:
        ValueError: none has (`where` names the split).
    """
    kept = dataset.with_masks(rows)
    if len(kept) == 0:
        raise ValueError(f"{where} has no case with a mask to evaluate")
    return kept


def _with_eval(predictor: Predictor, settings: dict[str, Any]) -> Predictor:
    """A shallow copy of `predictor` (the same network) whose eval settings are updated with `settings`."""
    other = copy.copy(predictor)
    other.cfg = predictor.cfg.model_copy(update={"eval": predictor.cfg.eval.model_copy(update=settings)})
    return other


def external_label(data: Path, name: str | None) -> str:
    """The folder name under `eval/` of an evaluation on another data set: `name`, else the data's own name.

    Raises:
        ValueError: a name that is not one plain folder name (a path, `.`, `..`, hidden) or that is one of the run's
            own evaluations (a split, `test-best`), which it would overwrite.
    """
    label = name or (data.stem if data.is_file() else data.name)
    if not label or label in (".", "..") or label.startswith(".") or "/" in label or "\\" in label:
        raise ValueError(
            f"--name {label!r}: the evaluation's name must be one plain folder name under eval/ (no path, not hidden)"
        )
    if label in SPLITS or label.startswith("test-"):
        raise ValueError(f"{data}: the name {label!r} is one of the run's own evaluations; choose another with --name")
    return label


def evaluate_external(
    run_dir: str | Path,
    data: str | Path,
    name: str | None = None,
    which: str | None = None,
    device: str = "auto",
    overrides: list[str] | None = None,
    mode: str | None = None,
) -> dict:
    """Evaluate a run's model on another labelled data set, every case of it, with the run's preprocessing.

    Args:
        data: a YAML file with a `data:` section (only its `source` is taken; a whole config works), or a folder the
            dataset guesser understands (as `medseg data inspect`).
        name: the output's name, `eval/<name>/` (default: the file's stem or the folder's name).

    Raises:
        ValueError: the data set holds no case with a mask.
    """
    from medseg.inspection import source_for  # the folder guesser

    run, data = RunFolder(run_dir), Path(data)
    label = external_label(data, name)
    predictor = _predictor(run, which, device, overrides, mode)
    source = source_for(data)
    cfg = predictor.cfg
    external = cfg.data.model_copy(
        update={
            "source": source,
            "mask_override": None,
            "split_file": None,
            "labeled_ratio": None,
            "labeled_count": None,
            "labeled_file": None,
            "splits": SplitConfig(train=0.0, val=0.0, test=1.0),
        }
    )
    resolve_source(external.source, str(data))
    dataset = prepare_dataset(external, cfg.seed)
    header = {"split": "test", "data": str(data), "checkpoint": predictor.checkpoint.name, "epoch": predictor.epoch}
    return _evaluate(predictor, dataset, dataset.rows("test"), run, label, header, mode)


def _predictor(
    run: RunFolder, which: str | None, device: str, overrides: list[str] | None, mode: str | None
) -> Predictor:
    settings = eval_settings(run.config.eval, overrides)
    predictor = Predictor.load(run.path, which or settings.checkpoint, device, mode)
    predictor.cfg = predictor.cfg.model_copy(update={"eval": settings})
    return predictor


def _evaluate(
    predictor: Predictor, dataset, rows: np.ndarray, run: RunFolder, label: str, header: dict, mode: str | None
) -> dict:
    """Per-case metrics of `rows`, the summary and the overlays, written to `eval/<label>/`."""
    cfg = predictor.cfg
    if predictor.method.task == "classification":
        return evaluate_classifier(predictor, dataset, rows, run, header, label)
    rows = _rows_with_masks(dataset, rows, f"{run.path}: {label!r}")
    records, predictions = [], {}
    for batch in iterate_batches(dataset.store, rows, cfg.train.batch_size):
        probs = predictor.probabilities(batch["image"])
        pred = predictor.masks_from(probs)
        for k, row in enumerate(batch["row"].tolist()):
            metrics = _metrics(predictor, dataset, row, probs[k], pred[k], batch["mask"][k].numpy())
            records.append({"id": dataset.store.ids[row], **metrics})
            predictions[row] = pred[k]
    summary = {
        **header,
        "task": "segmentation",
        "cases": len(records),
        "size": cfg.data.size,
        "resolution": describe_resolution(cfg.data, cfg.eval.resolution),
        "eval": cfg.eval.model_dump(),
        "inference_mode": mode or "default",
        "metrics": aggregate(records),
        "by_truth": by_truth(records),
    }
    table = [[f"{r[k]:.6f}" if isinstance(r[k], float) else r[k] for k in ("id", *METRIC_NAMES)] for r in records]
    run.write_evaluation(label, ["id", *METRIC_NAMES], table, summary)
    _write_overlays(run.eval_dir(label) / "overlays", dataset.store, records, predictions, cfg.eval.overlays)
    return summary


def _metrics(
    predictor: Predictor, dataset, row: int, probs: torch.Tensor, stored_pred: np.ndarray, stored_truth: np.ndarray
) -> dict[str, float]:
    """One case's metrics at the stored resolution, or (`eval.resolution: source`) against its source mask, the
    probabilities `(K, H', W')` upsampled to that mask's size; with `lesion` and `predicted`, whether the true mask
    and the prediction hold foreground there."""
    cfg, store = predictor.cfg, dataset.store
    if cfg.eval.resolution == "stored":
        spacing = tuple(store.spacing[row]) if store.spacing is not None else None
        pred, truth = stored_pred, stored_truth
    else:
        case = dataset.case(store.ids[row])
        truth = binarize_mask(np.asarray(dataset.reader.load_mask(case)), case.mask, cfg.data.num_classes)
        upsampled = F.interpolate(probs[None].float(), size=truth.shape, mode="bilinear", align_corners=False)
        pred, spacing = predictor.masks_from(upsampled)[0], dataset.reader.spacing(case)
    metrics = case_metrics(pred, truth, cfg.data.num_classes, spacing)
    return {**metrics, "lesion": bool((truth > 0).any()), "predicted": bool((pred > 0).any())}


def _write_overlays(folder: Path, store, records: list[dict], predictions: dict, count: int) -> None:
    for old in folder.glob("*.png"):  # a re-evaluation replaces the previous pictures
        old.unlink()
    if count == 0:
        return
    ranked = sorted(records, key=lambda r: r["dice"])
    chosen = [("worst", r) for r in ranked[:count]] + [("best", r) for r in ranked[::-1][:count]]
    for rank, (kind, record) in enumerate(chosen):
        row = store.position[record["id"]]
        picture = overlay(np.asarray(store.image(row), np.float32), predictions[row], np.asarray(store.mask(row)))
        name = f"{kind}_{rank % count:02d}_{record['id'].replace('/', '__')}_dice{record['dice']:.2f}.png"
        save_png(folder / name, picture)
