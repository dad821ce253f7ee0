"""Weak-to-strong consistency (FixMatch, Sohn et al., NeurIPS 2020, as UniMatch, Yang et al., CVPR 2023, applies it
to segmentation): an EMA teacher's hard prediction on an unlabelled image as the loader augmented it (the weak view)
is the target of the student on a strong view of the same image, on the pixels the teacher is sure of only.

The strong view moves no pixel, so the pseudo-label stays aligned with it: per image, as UniMatch's ColorJitter
and blur do on a grey image, brightness and contrast × [0.5, 1.5] (with probability 0.8) and a Gaussian blur of σ
in [0.1, 2] pixels (with probability 0.5); then, with probability `cutmix` per image, a random box (2–40% of the
area) pasted from the next unlabelled image of the batch, with that image's pseudo-label and confidence (CutMix).

    loss = hybrid(student(labelled), mask) + weight · hybrid(student(strong), pseudo-label where confidence ≥ threshold)

With `feature_perturbation` f > 0 (UniMatch's second stream, f = 0.5 there), the student also segments the weak
view with half of every encoder feature map's channels dropped (`Dropout2d(0.5)`), against the same sure
pseudo-labels; the unlabelled term becomes (1 - f) · strong + f · feature-perturbed.
"""

from __future__ import annotations

import torch
from torch import nn

from medseg.losses import IGNORE_INDEX, HybridLoss, hard_prediction, probabilities
from medseg.methods.base import Method, register_method
from medseg.methods.class_balance import RunningShares, adaptive_thresholds, align_distribution, class_probabilities
from medseg.methods.deep_supervision import head_logits, head_weights, weighted_heads
from medseg.methods.perturbations import channel_dropout
from medseg.methods.teacher import EmaTeacher, TeacherHooks
from medseg.methods.views import cutmix_boxes, paste_from_next, strong_view
from medseg.models.capabilities import FeaturePerturbable

__all__ = ["FixMatch", "confidence"]


def confidence(probs: torch.Tensor) -> torch.Tensor:
    """`(B, H, W)` probability of the predicted class of `(B, K, H, W)` probabilities (sigmoid for K = 1)."""
    return torch.maximum(probs[:, 0], 1 - probs[:, 0]) if probs.shape[1] == 1 else probs.amax(1)


@register_method("fixmatch")
class FixMatch(TeacherHooks, Method):
    """Args:
    model_spec: any segmentation model.
    threshold: the teacher's confidence a pixel needs to be a target (0.95, UniMatch's).
    weight: weight of the unlabelled term (1: UniMatch's equal halves).
    cutmix: each strong view's probability of a box pasted from the next one (0.5).
    ema_decay: the teacher's per-step decay (0.99; 0 makes the teacher the student of the previous step).
    feature_perturbation: the unlabelled term's share given to the feature-perturbed weak view (0: plain FixMatch;
        UniMatch: 0.5); needs a model with `forward_perturbed` (a U-Net).
    dice: "batch" or "image" Dice in both terms.
    align: distribution alignment: the teacher's class probabilities scaled toward the labelled masks' class
        shares (see `medseg.methods.class_balance`), so that a class the teacher under-predicts is not taught away.
    class_thresholds: FlexMatch-style per-class thresholds: a class whose predicted pixels are rarely sure gets a
        lower threshold than `threshold`.
    balance_momentum: per-step momentum of the running class shares `align` and `class_thresholds` read.

    With a deeply supervised model (a U-Net with `pyramid` heads) every head learns the labelled masks, weighted
    as the model weighs them; the unlabelled terms train the full-resolution head.

    The teacher predicts in train mode, as UniMatch's weak pass does: its batch norm takes the statistics of the
    weak views, not running statistics partly gathered on strong views. It starts as a copy of the student at the
    first step and is saved with the checkpoints.
    """

    uses_unlabeled = True

    def __init__(
        self,
        model_spec: dict,
        threshold: float = 0.95,
        weight: float = 1.0,
        cutmix: float = 0.5,
        ema_decay: float = 0.99,
        feature_perturbation: float = 0.0,
        dice: str = "batch",
        align: bool = False,
        class_thresholds: bool = False,
        balance_momentum: float = 0.99,
    ) -> None:
        super().__init__(model_spec)
        shares = {"cutmix": cutmix, "threshold": threshold, "feature_perturbation": feature_perturbation}
        outside = {name: value for name, value in shares.items() if not 0 <= value <= 1}
        if outside:
            raise ValueError(f"method.{', method.'.join(outside)} must be in [0, 1], got {list(outside.values())}")
        self.threshold, self.weight, self.cutmix = threshold, weight, cutmix
        self.feature_perturbation = feature_perturbation
        self.loss = HybridLoss(dice=dice)
        self.ema = EmaTeacher(ema_decay)
        self.align, self.class_thresholds = align, class_thresholds
        self.shares = RunningShares(balance_momentum)
        self.weights = [1.0]  # one weight per supervised head, set by check_model

    def check_model(self, model: nn.Module) -> None:
        self.weights = head_weights(model)
        if self.feature_perturbation and not isinstance(model, FeaturePerturbable):
            raise ValueError(
                "method.feature_perturbation needs a model with forward_perturbed (a U-Net), "
                f"got {type(model).__name__}"
            )

    @torch.no_grad()
    def pseudo_labels(self, unlabeled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The teacher's hard prediction `(B, H, W)` on the weak view and whether each pixel is sure enough to be a
        target `(B, H, W)` bool (confidence ≥ `threshold`, or its class's threshold with `class_thresholds`)."""
        teacher = self.ema.start(self.model).train(self.model.training)
        probs = probabilities(teacher(unlabeled).float())
        if not (self.align or self.class_thresholds):
            return hard_prediction(probs), confidence(probs) >= self.threshold
        classes = class_probabilities(probs)  # (B, K, H, W), one channel per class
        if self.align and "labelled" in self.shares.values:
            teacher_shares = self.shares.update("teacher", classes.mean(dim=(0, 2, 3)))
            classes = align_distribution(classes, self.shares.values["labelled"], teacher_shares)
        sure, labels = classes.max(dim=1)
        if not self.class_thresholds:
            return labels, sure >= self.threshold
        learnt = self.shares.update("sure", RunningShares.sure_shares(labels, sure >= self.threshold, classes.shape[1]))
        return labels, sure >= adaptive_thresholds(learnt, self.threshold)[labels]

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        unlabeled = batch["unlabeled_image"]
        if self.align:
            classes = max(2, self.model_spec.get("out_channels", 1))
            self.shares.update("labelled", RunningShares.mask_shares(batch["mask"], classes))
        weak_labels, weak_confident = self.pseudo_labels(unlabeled)
        strong, labels, confident = strong_view(unlabeled), weak_labels, weak_confident
        if unlabeled.shape[0] > 1 and self.cutmix > 0:
            boxes = cutmix_boxes(unlabeled.shape[0], *unlabeled.shape[-2:], self.cutmix, device=unlabeled.device)
            strong, labels, confident = (paste_from_next(x, boxes) for x in (strong, labels, confident))
        heads = head_logits(self.model, batch["image"], self.weights)
        labelled = weighted_heads([self.loss(logits, batch["mask"]) for logits in heads], self.weights)
        supervised = labelled.pop("loss")
        unsupervised = self.loss(self.model(strong), torch.where(confident, labels, IGNORE_INDEX))
        terms = {"loss_supervised": supervised.detach(), **labelled, "loss_unlabeled": unsupervised.detach()}
        if self.feature_perturbation:
            perturbed = self.model.forward_perturbed(unlabeled, channel_dropout)
            weak_targets = torch.where(weak_confident, weak_labels, IGNORE_INDEX)
            feature = self.loss(perturbed, weak_targets)
            unsupervised = (1 - self.feature_perturbation) * unsupervised + self.feature_perturbation * feature
            terms["loss_feature_perturbed"] = feature.detach()
        return {"loss": supervised + self.weight * unsupervised, **terms, "confident_share": confident.float().mean()}

    def state_dict(self) -> dict:
        """The teacher's weights and, with `align` or `class_thresholds`, the running class shares."""
        state = super().state_dict()
        return {**state, "class_shares": self.shares.state_dict()} if self.shares.values else state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.shares.load_state_dict(state.get("class_shares", {}))
