"""An exponential-moving-average teacher of a student network (Mean Teacher, UA-MT, BCP)."""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["EmaTeacher", "TeacherHooks"]


class EmaTeacher:
    """A frozen copy of the student whose weights follow the student's by `decay` per optimiser step (buffers such
    as BatchNorm statistics are copied as they are).

    Args:
        decay: the per-step decay (0.99: about the last 100 steps).
    """

    def __init__(self, decay: float) -> None:
        if not 0 <= decay < 1:
            raise ValueError(f"method.ema_decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.model: nn.Module | None = None

    @property
    def started(self) -> bool:
        return self.model is not None

    def start(self, student: nn.Module) -> nn.Module:
        """The teacher, created as a copy of `student` the first time."""
        if self.model is None:
            self.model = copy.deepcopy(student).requires_grad_(False)
        return self.model

    @torch.no_grad()
    def update(self, student: nn.Module) -> None:
        """One EMA step towards `student` (nothing before `start`)."""
        if self.model is None:
            return
        for teacher, weights in zip(self.model.parameters(), student.parameters(), strict=True):
            teacher.lerp_(weights.detach(), 1 - self.decay)
        for teacher, buffer in zip(self.model.buffers(), student.buffers(), strict=True):
            teacher.copy_(buffer)

    def state_dict(self) -> dict:
        """`{"teacher": weights}` once started, for a resumed run to keep its teacher; else {}."""
        return {"teacher": self.model.state_dict()} if self.model is not None else {}

    def load_state_dict(self, state: dict, student: nn.Module) -> None:
        if "teacher" in state:
            self.start(student).load_state_dict(state["teacher"])


class TeacherHooks:
    """The `Method` hooks of a method whose teacher is the `EmaTeacher` `self.ema` of its student `self.model`: one
    EMA step after every optimiser step, and the teacher's weights kept in checkpoints (a resumed run keeps its
    teacher). Listed before `Method` among the bases, so that these hooks replace its defaults."""

    ema: EmaTeacher
    model: nn.Module

    def after_step(self) -> None:
        self.ema.update(self.model)

    def state_dict(self) -> dict:
        return self.ema.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.ema.load_state_dict(state, self.model)
