"""Image-level supervision: a classifier learns from one label per image ("lesion present", or a class).

The first stage of the weakly supervised path: its class activation maps become pseudo-masks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medseg.data.dataset import Dataset
from medseg.losses import IGNORE_INDEX
from medseg.methods.base import Method, register_method
from medseg.methods.level_balance import level_balanced_weights

__all__ = ["Classification", "image_labels", "row_labels"]


def image_labels(batch: dict[str, torch.Tensor], label_from: str, classes: Sequence[int] | None) -> torch.Tensor:
    """Class indices `(B,)` of a batch.

    `label_from: mask` → 1 where the mask has any foreground (lesion present), else 0. `label_from: case` →
    the readers' labels (labels.csv, figshare `label`), mapped to indices by their position in `classes`.

    Raises:
        ValueError: a case without a label, or a label not in `classes`.
    """
    if label_from == "mask":
        lesion = (batch["mask"] > 0) & (batch["mask"] != IGNORE_INDEX)
        return lesion.flatten(1).any(1).long()
    if classes is None:
        raise ValueError("method.classes must list the label values (e.g. [1, 2, 3]) with label_from: case")
    index = {value: position for position, value in enumerate(classes)}
    values = batch["label"].tolist()
    unknown = sorted({v for v in values if v not in index})
    if unknown:
        shown = ["none" if v < 0 else v for v in unknown]
        raise ValueError(f"image labels {shown} are missing or not in method.classes {list(classes)}")
    return torch.tensor([index[v] for v in values], device=batch["label"].device)


def row_labels(dataset: Dataset, rows: np.ndarray, label_from: str, classes: Sequence[int] | None) -> np.ndarray:
    """Class indices `(len(rows),)` of store rows, as `image_labels` gives them, in the order of `rows` (reads the
    masks, not the images)."""
    if label_from == "mask":
        masks = (torch.from_numpy(np.array(dataset.store.mask(int(r)))[None]) for r in rows)
        return np.array([int(image_labels({"mask": m}, "mask", None)[0]) for m in masks], dtype=np.int64)
    return image_labels({"label": torch.from_numpy(dataset.labels[rows])}, label_from, classes).numpy()


def class_outputs(label_from: str, classes: Sequence[int] | None) -> int:
    """Logits a classifier needs: 1 for two classes (sigmoid), else one per class (softmax)."""
    return 1 if label_from == "mask" or len(classes or []) <= 2 else len(classes)


@register_method("classification")
class Classification(Method):
    """Train a classifier (`model.name: classifier`) on image-level labels.

    Args:
        model_spec: the config's `model:` section (`out_channels` 1 for binary, K for `classes`).
        label_from: "mask" (lesion present = the mask is not empty) or "case" (the reader's labels).
        classes: with `label_from: case`, the label values in class-index order.
        balanced: weigh each class present in a batch equally (slices with lesions are often the fewer).
        level_balanced: weigh the training images so that every class weighs the same in total and has the same
            distribution over slice levels (`medseg.methods.level_balance`): where a slice lies in its volume then
            tells nothing about its class. Replaces `balanced`.
        level_bins: the level bins of `level_balanced`.
    """

    task = "classification"
    validation_metric = "accuracy"

    def __init__(
        self,
        model_spec: dict,
        label_from: str = "mask",
        classes: Sequence[int] | None = None,
        balanced: bool = False,
        level_balanced: bool = False,
        level_bins: int = 10,
    ) -> None:
        super().__init__(model_spec)
        if label_from not in ("mask", "case"):
            raise ValueError(f"method.label_from must be mask or case, got {label_from!r}")
        if level_bins < 1:
            raise ValueError(f"method.level_bins must be at least 1, got {level_bins}")
        self.label_from = label_from
        self.classes = list(classes) if classes is not None else None
        self.balanced = balanced
        self.level_balanced = level_balanced
        self.level_bins = level_bins
        self.row_weights: torch.Tensor | None = None  # with level_balanced: `(N,)` per store row, from attach_data

    @classmethod
    def complete_model_spec(cls, model_spec: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        """A `classifier` with one logit per class (one for two classes)."""
        if model_spec.get("name") != "classifier":
            raise ValueError(f"method classification trains model.name: classifier, got {model_spec.get('name')!r}")
        outputs = class_outputs(options.get("label_from", "mask"), options.get("classes"))
        if model_spec.get("out_channels", outputs) != outputs:
            raise ValueError(
                f"model.out_channels is {model_spec['out_channels']}, but these labels need {outputs} (leave it out)"
            )
        return {**model_spec, "out_channels": outputs}

    def attach_data(self, dataset: Dataset, rows: np.ndarray) -> None:
        """With `level_balanced`: the loss weight of every training row, from its image label and slice level."""
        if not self.level_balanced:
            return
        weights = np.zeros(len(dataset.store.ids), np.float32)
        labels = row_labels(dataset, rows, self.label_from, self.classes)
        weights[rows] = level_balanced_weights(dataset.levels[rows], labels, self.level_bins)
        self.row_weights = torch.from_numpy(weights).to(next(self.model.parameters()).device)

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """(Binary) cross-entropy; with `balanced`, each class present in the batch weighs as much as any other;
        with `level_balanced`, each image of store row `rows` `(B,)` by its weight from `attach_data`."""
        if logits.shape[1] == 1:
            losses = F.binary_cross_entropy_with_logits(logits[:, 0].float(), labels.float(), reduction="none")
        else:
            losses = F.cross_entropy(logits.float(), labels, reduction="none")
        if self.level_balanced:
            if self.row_weights is None:
                raise RuntimeError("level_balanced needs the training rows' weights: call attach_data first")
            if rows is None:
                raise ValueError("level_balanced weighs each image by its store row: the batch has no 'row'")
            weights = self.row_weights[rows]
            return (losses * weights).sum() / len(weights)
        if not self.balanced:
            return losses.mean()
        counts = torch.bincount(labels, minlength=max(int(labels.max()) + 1, 1)).float()
        weights = 1.0 / counts[labels]  # each present class sums to 1
        return (losses * weights).sum() / (counts > 0).sum()

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        labels = image_labels(batch, self.label_from, self.classes)
        return {"loss": self._loss(self.model(batch["image"]), labels, batch.get("row"))}

    @staticmethod
    def predicted_classes(probabilities: torch.Tensor) -> torch.Tensor:
        """Class indices `(B,)` from probabilities `(B, K)`."""
        return (probabilities[:, 0] > 0.5).long() if probabilities.shape[1] == 1 else probabilities.argmax(1)

    def validation_scores(
        self, model: nn.Module, batch: dict[str, torch.Tensor], threshold: float = 0.5
    ) -> torch.Tensor:
        """1 where the predicted class is right, per image `(B,)`."""
        labels = image_labels(batch, self.label_from, self.classes)
        return (self.predicted_classes(self.predict(model, batch["image"])) == labels).float()
