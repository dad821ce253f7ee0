"""Evaluate an image-level classifier on a split: per-image label, probability and prediction; accuracy,
sensitivity, specificity and ROC AUC (binary, MONAI) or accuracy (multi-class)."""

from __future__ import annotations

import numpy as np
import torch
from monai.metrics import compute_roc_auc

from medseg.data.dataset import Dataset, iterate_batches
from medseg.methods.classification import image_labels
from medseg.run_folder import RunFolder

__all__ = ["evaluate_classifier"]


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
    if method.label_from == "mask":
        rows = np.array([r for r in rows if dataset.store.has_mask(int(r))], dtype=np.int64)
    else:
        rows = rows[dataset.labels[rows] >= 0]
    if len(rows) == 0:
        raise ValueError(f"{run.eval_dir(label or header['split'])}: no labelled image to evaluate")
    ids, labels, probabilities = [], [], []
    for batch in iterate_batches(dataset.store, rows, cfg.train.batch_size, labels=dataset.labels):
        labels.append(image_labels(batch, method.label_from, method.classes))
        probabilities.append(predictor.probabilities(batch["image"]))
        ids += [dataset.store.ids[r] for r in batch["row"].tolist()]
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

    confidence = probs[:, 0] if binary else probs.max(1).values
    table = [
        [case_id, label, f"{p:.6f}", guess]
        for case_id, label, p, guess in zip(ids, truth.tolist(), confidence.tolist(), predicted.tolist(), strict=True)
    ]
    summary = {**header, "cases": len(ids), "size": cfg.data.size, "task": "classification", "metrics": metrics}
    run.write_evaluation(label or header["split"], ["id", "label", "probability", "predicted"], table, summary)
    return summary
