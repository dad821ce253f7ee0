"""The Method contract: what differs between supervision regimes. The engine owns everything else.

A method is built from the config's `model:` and `method:` sections, trains through `training_step`, and
predicts probabilities through `predict`. Its optional hooks have defaults here, so the engine calls them
without asking whether they exist; what a method is (its task, whether it reads unlabelled images, what
validation measures) is declared as class attributes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from medseg.losses import IGNORE_INDEX, hard_prediction, probabilities
from medseg.metrics import dice_scores
from medseg.models import build_model
from medseg.registry import Registry, check_spec, complete_spec

if TYPE_CHECKING:
    from medseg.data.dataset import Dataset

__all__ = ["Method", "METHODS", "register_method", "build_method", "complete_method_spec", "segmentation_scores"]

Task = Literal["segmentation", "classification"]


def segmentation_scores(probs: torch.Tensor, mask: torch.Tensor, threshold: float) -> torch.Tensor:
    """Per-image Dice `(B,)` of the masks predicted from `probs` `(B, K, H, W)` against `mask` `(B, H, W)`
    (foreground, or the mean over foreground classes); unknown pixels (`IGNORE_INDEX`) do not count."""
    known = mask != IGNORE_INDEX  # pseudo-masks leave some pixels unknown
    predicted = torch.where(known, hard_prediction(probs, threshold), 0)
    truth = torch.where(known, mask, 0)
    if probs.shape[1] == 1:
        return dice_scores(predicted > 0, truth > 0)
    return torch.stack([dice_scores(predicted == k, truth == k) for k in range(1, probs.shape[1])]).mean(0)


class Method:
    """A supervision regime (supervised, a semi-supervised method, a weakly supervised stage).

    Subclasses implement `training_step`; the rest has defaults.

    Attributes:
        task: "segmentation" (predicts `(B, K, H, W)`) or "classification" (predicts `(B, K)`).
        uses_unlabeled: its batches also hold `"unlabeled_image"` `(B_u, C, H, W)` (semi-supervised).
        validation_metric: what `validation_scores` measures (the `val_<metric>` column of metrics.csv).

    Args:
        model_spec: the config's resolved `model:` section.
    """

    name: ClassVar[str] = ""  # the registry name, set by `register_method`
    task: ClassVar[Task] = "segmentation"
    uses_unlabeled: ClassVar[bool] = False
    validation_metric: ClassVar[str] = "dice"
    model_family: ClassVar[str | None] = None  # the model it needs, where only one family serves (e.g. "mtnet")

    def __init__(self, model_spec: dict[str, Any]) -> None:
        self.model_spec = model_spec
        self.model: nn.Module | None = None

    @classmethod
    def complete_model_spec(cls, model_spec: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        """The model spec this method trains, from the user's (only the keys the user set) and the method's
        options; called once when the config is resolved, so the run folder records the result.

        Raises:
            ValueError: a model this method cannot train, named with what it needs.
        """
        return model_spec

    def build_model(self) -> nn.Module:
        """The network from `model_spec` (a method with several networks overrides this)."""
        return build_model(self.model_spec)

    def check_model(self, model: nn.Module) -> None:
        """Refuse, with a message, a model that lacks what this method needs (default: any model)."""

    def build(self) -> nn.Module:
        self.model = self.build_model()
        self.check_model(self.model)
        return self.model

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """`{"loss": scalar, ...other terms to log}` for a batch `{"image": (B, C, H, W), "mask": (B, H, W) long,
        "label": (B,) long, "unlabeled_image": (B_u, C, H, W) if uses_unlabeled}` on the model's device."""
        raise NotImplementedError(f"{type(self).__name__} must implement training_step")

    def predict(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """Probabilities `(B, K, H, W)` (K = 1 for binary) of `model` (the trained one, or its weight average)."""
        return probabilities(model(images).float())

    def validation_scores(
        self, model: nn.Module, batch: dict[str, torch.Tensor], threshold: float = 0.5
    ) -> torch.Tensor:
        """One score per image `(B,)` (mean = the epoch's validation score): Dice by default."""
        return segmentation_scores(self.predict(model, batch["image"]).float(), batch["mask"], threshold)

    def set_progress(self, fraction: float, epoch: int) -> None:
        """Before each step: the share of training done (0..1) and the 1-based epoch (for ramp-ups)."""

    def after_step(self) -> None:
        """After each optimiser step (EMA teachers)."""

    def on_train_start(self) -> None:
        """Once, before the first step of a new run (not on resume): e.g. load weights a stage starts from."""

    def attach_data(self, dataset: Dataset, rows: np.ndarray) -> None:
        """Before the first step of a new or resumed run: the dataset and its store rows the run trains on (e.g. to
        derive per-image loss weights; nothing derived here is saved, so it is derived again on resume)."""

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs beyond the model's weights (a teacher's weights), saved in checkpoints."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()` on resume."""


METHODS: Registry[type[Method]] = Registry("method")


def register_method(name: str):
    """Class decorator: register a `Method` subclass under `name` (its config name) and record the name on it."""
    return METHODS.register_named(name)


def complete_method_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The `method:` section checked, with every option it leaves out set to its default."""
    return complete_spec(METHODS, spec, "method", skip=("model_spec",))


def build_method(method_spec: dict[str, Any], model_spec: dict[str, Any]) -> Method:
    """The method of a resolved config, its model built (on the CPU, in float32).

    Raises:
        ValueError: an unknown method or option, or a model the method cannot train.
    """
    check_spec(METHODS, method_spec, "method", skip=("model_spec",))
    options = {key: value for key, value in method_spec.items() if key != "name"}
    method = METHODS[method_spec["name"]](model_spec, **options)
    method.build()
    return method
