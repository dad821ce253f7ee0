"""Mean Teacher (Tarvainen & Valpola 2017): the student is supervised on labelled images and made consistent
with an exponential-moving-average teacher on unlabelled ones (MSE between probabilities; the teacher sees the
images with Gaussian noise, the student as loaded, as SSL4MIS's recipe does), with a ramped-up weight.

The student's own passes see no noise: its BatchNorm running statistics, which prediction uses, then describe the
images it will be asked about. (With noise on the student's unlabelled pass, a 4000-step run on figshare ended at
test Dice 0.31 where re-estimating those statistics on clean images gave 0.57.)"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medseg.losses import HybridLoss, probabilities
from medseg.methods.base import register_method
from medseg.methods.consistency import ConsistencySchedule, ScheduledMethod
from medseg.methods.teacher import EmaTeacher, TeacherHooks

__all__ = ["MeanTeacher"]


@register_method("mean_teacher")
class MeanTeacher(TeacherHooks, ScheduledMethod):
    """Args:
    model_spec: any segmentation model.
    ema_decay: the teacher's per-step decay (0.99).
    consistency: final weight of the consistency term (0.1); rampup: its ramp-up fraction of training.
    noise: std of the Gaussian noise (clipped at ±2 std) added to the unlabelled images the teacher sees.
    dice: "batch" or "image" Dice in the supervised loss.

    The teacher starts as a copy of the student at the first step and is saved with the checkpoints.
    """

    def __init__(
        self,
        model_spec: dict,
        ema_decay: float = 0.99,
        consistency: float = 0.1,
        rampup: float = 0.3,
        noise: float = 0.1,
        dice: str = "batch",
    ) -> None:
        super().__init__(model_spec)
        self.noise = noise
        self.loss = HybridLoss(dice=dice)
        self.schedule = ConsistencySchedule(consistency, rampup)
        self.ema = EmaTeacher(ema_decay)

    @property
    def teacher(self) -> nn.Module | None:
        return self.ema.model

    def _noisy(self, images: torch.Tensor) -> torch.Tensor:
        """The teacher's input: `images` plus Gaussian noise of std `noise`, clipped at ±2 `noise`."""
        return images + (self.noise * torch.randn_like(images)).clamp(-2 * self.noise, 2 * self.noise)

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.ema.start(self.model)
        supervised = self.loss(self.model(batch["image"]), batch["mask"])
        unlabeled = batch["unlabeled_image"]
        student = probabilities(self.model(unlabeled).float())
        self.teacher.train(self.model.training)
        consistency, logged = self._consistency(student, unlabeled)
        return {
            "loss": supervised + self.schedule.value * consistency,
            "loss_supervised": supervised.detach(),
            "loss_consistency": consistency.detach(),
            **logged,
        }

    def _consistency(
        self, student: torch.Tensor, unlabeled: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The consistency term between student probabilities and the teacher on `unlabeled`, plus terms to log."""
        with torch.no_grad():
            target = probabilities(self.teacher(self._noisy(unlabeled)).float())
        return F.mse_loss(student, target), {}
