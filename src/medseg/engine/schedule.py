"""Learning-rate schedule: linear warm-up, then cosine decay to zero, which a time budget can shorten."""

from __future__ import annotations

import math

import torch

__all__ = ["WarmupCosine"]


class WarmupCosine:
    """Per-step schedule: the lr rises linearly over `warmup_steps`, then follows a cosine to 0 at `total_steps`.

    The cosine is driven by a progress fraction that grows by a fixed amount per step. `replan(steps)` makes
    the rest of the decay fit into that many more steps without a jump in the lr: the trainer calls it when a
    time budget (`train.max_minutes`) turns out to allow fewer epochs than `train.epochs`, so that the lr still
    reaches 0 at the last epoch that fits rather than being cut off high.

    Call `step()` after each optimiser step; `get_last_lr()` gives the current lr of each parameter group.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int) -> None:
        self.optimizer = optimizer
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.warmup_steps = warmup_steps
        self.steps = 0
        # progress at step `anchor_step` (the last replan, or the end of the warm-up) and its rate per step
        self.anchor_step, self.anchor_progress = warmup_steps, 0.0
        self.rate = 1.0 / max(total_steps - warmup_steps, 1)
        self._apply()

    @property
    def progress(self) -> float:
        """How far the cosine has come, 0 (lr at its peak) to 1 (lr 0)."""
        return min(self.anchor_progress + max(self.steps - self.anchor_step, 0) * self.rate, 1.0)

    def factor(self) -> float:
        if self.steps < self.warmup_steps:
            return (self.steps + 1) / self.warmup_steps
        return 0.5 * (1 + math.cos(math.pi * self.progress))

    def _apply(self) -> None:
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * self.factor()

    def step(self) -> None:
        self.steps += 1
        self._apply()

    def replan(self, remaining_steps: int) -> None:
        """Finish the decay (lr 0) after `remaining_steps` more steps, the rest of any warm-up included."""
        start = max(self.steps, self.warmup_steps)
        self.anchor_progress, self.anchor_step = self.progress, start
        self.rate = (1.0 - self.anchor_progress) / max(remaining_steps - (start - self.steps), 1)

    def get_last_lr(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {
            "steps": self.steps,
            "anchor_step": self.anchor_step,
            "anchor_progress": self.anchor_progress,
            "rate": self.rate,
        }

    def load_state_dict(self, state: dict) -> None:
        if "last_epoch" in state:  # a run saved with the former LambdaLR schedule: same cosine, counted in steps
            self.steps = state["last_epoch"]
        else:
            self.steps = state["steps"]
            self.anchor_step, self.anchor_progress, self.rate = (
                state["anchor_step"],
                state["anchor_progress"],
                state["rate"],
            )
        self._apply()
