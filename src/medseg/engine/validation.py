"""The epoch's validation: each slice at its stored size (sliding windows at native resolution), scored by the
method (Dice unless it says otherwise), timed for the budget."""

from __future__ import annotations

import math

import torch
from torch import nn

from medseg.data.dataset import iterate_batches
from medseg.engine.distributed import broadcast_buffers
from medseg.engine.state import Hooks, Training
from medseg.engine.streams import to_device
from medseg.engine.time_budget import Budget
from medseg.methods.base import segmentation_scores
from medseg.windows import window_probabilities, window_size

__all__ = ["validate_epoch", "validate"]


def validate_epoch(state: Training, epoch: int, budget: Budget, hooks: Hooks) -> float:
    """The epoch's validation score (NaN before `train.validate_from`), timed for the budget."""
    if state.ctx.enabled:
        broadcast_buffers(state.inference_model)
    if epoch < state.cfg.train.validate_from * budget.last_epoch:  # validate_from < 1: the last epoch always passes
        return math.nan
    started = hooks.clock()
    score = (hooks.validate or validate)(state)
    budget.validated(hooks.clock() - started)
    return score


@torch.no_grad()
def validate(state: Training) -> float:
    """Mean per-image validation score (`method.validation_scores`: Dice unless the method says otherwise) of the
    inference model on the val split, each slice at its stored size (sliding windows at native resolution); with
    several processes each scores its share and the mean is over all."""
    cfg, ctx, dataset, model = state.cfg, state.ctx, state.dataset, state.inference_model
    rows = dataset.rows("val")
    if len(rows) == 0:
        return math.nan
    model.eval()
    scores = []
    for batch in iterate_batches(
        dataset.store, rows[ctx.rank :: ctx.world_size], cfg.train.batch_size, labels=dataset.labels
    ):
        batch = to_device(batch, state.device, cfg.train.channels_last)
        with torch.autocast(state.device.type, dtype=state.amp or torch.float32, enabled=state.amp is not None):
            scores.append(_scores(state, model, batch).float().cpu())
    state.model.train()
    return ctx.average(torch.cat(scores) if scores else torch.zeros(0))


def _scores(state: Training, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """One validation batch's per-image scores `(B,)`."""
    method, threshold, window = state.method, state.cfg.eval.threshold, window_size(state.cfg)
    if window is None or method.task != "segmentation":
        return method.validation_scores(model, batch, threshold)
    probs = window_probabilities(lambda x: method.predict(model, x), batch["image"], window, state.cfg.eval.overlap)
    return segmentation_scores(probs, batch["mask"], threshold)
