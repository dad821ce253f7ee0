"""What one training run holds between the trainer's phases, what a caller may replace, and what it returns."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medseg.config import Config
from medseg.data.dataset import Dataset
from medseg.engine.distributed import Distributed
from medseg.engine.ema import WeightAverage
from medseg.engine.schedule import WarmupCosine
from medseg.methods import Method
from medseg.run_folder import RunFolder

__all__ = ["TrainResult", "Hooks", "Training"]


@dataclass
class TrainResult:
    run_dir: Path
    best_val_score: float
    validation_metric: str  # "dice", or what the method validates with
    epochs_done: int
    seconds: float


@dataclass
class Hooks:
    """What a caller (a test, a benchmark) may replace: the clock that times epochs and the budget, and the
    validation (a function of the state returning the epoch's score)."""

    clock: Callable[[], float] = time.perf_counter
    validate: Callable[[Training], float] | None = None


@dataclass
class Training:
    """Everything one training run holds between phases."""

    cfg: Config
    run: RunFolder
    ctx: Distributed
    dataset: Dataset
    method: Method
    device: torch.device
    amp: torch.dtype | None
    optimizer: torch.optim.Optimizer
    scheduler: WarmupCosine
    scaler: torch.amp.GradScaler
    average: WeightAverage | None
    steps_per_epoch: int
    epoch: int = 0  # the last finished epoch
    step: int = 0
    best: float = -math.inf
    seconds: float = 0.0  # training time before this session (resume)
    history: list[dict[str, Any]] = field(default_factory=list)
    last_epoch: int = 0  # the epoch the run is planned to end with (`train.epochs`, or earlier under max_minutes)

    def __post_init__(self) -> None:
        self.last_epoch = self.last_epoch or self.cfg.train.epochs

    @property
    def finished(self) -> bool:
        """The planned epochs are done (or the time budget ended the run): a resume trains nothing more."""
        return self.epoch >= self.last_epoch

    @property
    def model(self) -> nn.Module:
        return self.method.model

    @property
    def inference_model(self) -> nn.Module:
        """What validation and checkpoints use: the weight average if `train.ema`, else the trained weights."""
        return self.average.model if self.average is not None else self.model

    @property
    def total_steps(self) -> int:
        """The run's planned optimiser steps (what a method's progress fraction counts against)."""
        return self.steps_per_epoch * self.last_epoch
