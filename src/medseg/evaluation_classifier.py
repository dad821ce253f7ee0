"""Evaluate an image-level classifier on a split: per-image label, probability and prediction; accuracy,
sensitivity, specificity and ROC AUC (binary, MONAI) or accuracy (multi-class). A level-balanced classifier was
trained not to use where a slice lies in its volume; its ROC AUC is also given with that level's evidence added back
(`roc_auc_with_level_prior`: the logit plus the training images' level log-odds), the detector a user has when
slices come with their position."""

from __future__ import annotations

import numpy as np
import torch
from monai.metrics import compute_roc_auc

from medseg.data.dataset import Dataset, iterate_batches
from medseg.methods.classification import Classification, image_labels, row_labels
from medseg.methods.level_balance import level_bins, level_log_odds
from medseg.run_folder import RunFolder

__all__ = ["evaluate_classifier"]


def _labelled(method: Classification, dataset: Dataset, rows: np.ndarray) -> np.ndarray:
    """The store rows among `rows` whose image label is known (a mask, or a case label ≥ 0)."""
    if method.label_from == "mask":
        return dataset.with_masks(rows)
    return rows[dataset.labels[rows] >= 0]


def _rate(hits: int, total: int) -> dict:
    return {"mean": hits / total if total else None, "std": None, "median": None, "n": total}


def evaluate_classifier(
    predictor, dataset: Dataset, rows: np.ndarray, run: RunFolder, header: dict, label: str | None = None
) -> dict:
    """Write the split's `cases.csv` (id, label, probability, predicted) and `summary.json` (`header` + metrics)
    in `run`; returns the summary.

    Raises:
        ValueError: no image of the split has a label.
    """
    method, cfg = predictor.method, predictor.cfg
    rows = _labelled(method, dataset, rows)
    if len(rows) == 0:
        raise ValueError(f"{run.eval_dir(label or header['split'])}: no labelled image to evaluate")
    order, labels, probabilities = [], [], []
    for batch in iterate_batches(dataset.store, rows, cfg.train.batch_size, labels=dataset.labels):
        labels.append(image_labels(batch, method.label_from, method.classes))
        probabilities.append(predictor.probabilities(batch["image"]))
        order += batch["row"].tolist()
    ids = [dataset.store.ids[r] for r in order]
    truth, probs = torch.cat(labels), torch.cat(probabilities)
    predicted = method.predicted_classes(probs)
    binary = probs.shape[1] == 1
    metrics = {"accuracy": _rate(int((predicted == truth).sum()), len(truth))}
    if binary:
        positive, negative = truth == 1, truth == 0
        metrics["sensitivity"] = _rate(int((predicted[positive] == 1).sum()), int(positive.sum()))
        metrics["specificity"] = _rate(int((predicted[negative] == 0).sum()), int(negative.sum()))
        both = bool(positive.any() and negative.any())
        auc = float(compute_roc_auc(probs[:, 0], truth)) if both else None
        metrics["roc_auc"] = {"mean": auc, "std": None, "median": None, "n": len(truth)}
        prior = _with_level_prior(method, dataset, np.array(order), probs[:, 0]) if both else None
        if prior is not None:
            auc = float(compute_roc_auc(prior, truth))
            metrics["roc_auc_with_level_prior"] = {"mean": auc, "std": None, "median": None, "n": len(truth)}

    confidence = probs[:, 0] if binary else probs.max(1).values
    table = [
        [case_id, label, f"{p:.6f}", guess]
        for case_id, label, p, guess in zip(ids, truth.tolist(), confidence.tolist(), predicted.tolist(), strict=True)
    ]
    summary = {**header, "cases": len(ids), "size": cfg.data.size, "task": "classification", "metrics": metrics}
    run.write_evaluation(label or header["split"], ["id", "label", "probability", "predicted"], table, summary)
    return summary


def _with_level_prior(
    method: Classification, dataset: Dataset, rows: np.ndarray, probabilities: torch.Tensor
) -> torch.Tensor | None:
    """Detection scores `(N,)` of store rows `rows`: a level-balanced binary classifier's logit plus the log-odds of
    the row's level bin among the dataset's training images (their image labels); None for another classifier, or
    without training images of both classes to learn the odds from (an external data set)."""
    if not method.level_balanced:
        return None
    known = _labelled(method, dataset, dataset.rows("train"))
    labels = row_labels(dataset, known, method.label_from, method.classes) if len(known) else np.zeros(0, np.int64)
    if len(set(labels.tolist())) < 2:
        return None
    odds = level_log_odds(dataset.levels[known], labels, method.level_bins)
    logit = torch.logit(probabilities.double().clamp(1e-7, 1 - 1e-7))
    return logit + torch.from_numpy(odds[level_bins(dataset.levels[rows], method.level_bins)])
