"""The training loop shared by every method, as named phases over one `Training` state:

    train(cfg, run_dir) / resume(run_dir)
      → claim the run folder (exclusive, locked) → prepare the data (splits, store)
      → build the state (method and model, devices, optimiser, schedule; a checkpoint's state on resume)
      → per epoch: train_epoch → validate_epoch → replan_budget → save_epoch

The engine owns devices, AMP, channels_last, data-parallel gradients, the optimiser and schedule, progress,
validation, metrics.csv, atomic checkpoints and resume; a method owns only its loss and its prediction.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medseg.checkpoint_io import CHECKPOINT_FORMAT, load_checkpoint, save_checkpoint
from medseg.config import Config
from medseg.data.dataset import Dataset, prepare_dataset
from medseg.engine.device import autocast_dtype, pick_device
from medseg.engine.distributed import (
    Distributed,
    average_gradients,
    broadcast_weights,
    setup_distributed,
    sync_batchnorm,
)
from medseg.engine.ema import WeightAverage
from medseg.engine.schedule import WarmupCosine
from medseg.engine.state import Hooks, Training, TrainResult
from medseg.engine.streams import training_batches, unlabeled_rows
from medseg.engine.time_budget import Budget
from medseg.engine.validation import validate, validate_epoch
from medseg.errors import RunFolderError, TrainingDivergedError
from medseg.methods import Method, build_method
from medseg.resolve import resolve_config
from medseg.run_folder import RunFolder, locked, remove_temporary_files
from medseg.ui import TrainingProgress

__all__ = [
    "train",
    "resume",
    "train_or_resume",
    "fit_run",
    "claim",
    "claim_new",
    "Hooks",
    "Training",
    "TrainResult",
    "train_step",
    "validate",
    "seed_everything",
    "adamw",
]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def adamw(model: nn.Module, lr: float, weight_decay: float, device: torch.device) -> torch.optim.AdamW:
    """AdamW, fused where torch has the kernel: one pass over all parameters (figshare U-Net, 2 CPU cores: 1.8
    instead of 4.8 ms per step, benchmarks/bench_optimizer.py)."""
    fused = device.type in ("cpu", "cuda")
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, fused=fused)


def load_optimizer_state(optimizer: torch.optim.Optimizer, saved: dict) -> None:
    """Resume `optimizer` from `saved`, keeping its own kernel choice: loading would otherwise take over the
    saved `fused`/`foreach` flags, and a checkpoint from before the fused optimiser would turn it off."""
    kernel = {key: optimizer.defaults[key] for key in ("fused", "foreach") if key in optimizer.defaults}
    saved = {**saved, "param_groups": [{**group, **kernel} for group in saved["param_groups"]]}
    optimizer.load_state_dict(saved)


# -- entry points -----------------------------------------------------------------------------------------------
def train(
    cfg: Config, run_dir: str | Path, overwrite: bool = False, show_progress: bool = True, hooks: Hooks | None = None
) -> TrainResult:
    """Train `cfg` into a new run folder `run_dir`.

    The folder receives config.yaml (resolved), splits.csv, metrics.csv, last.pt (every epoch) and best.pt (best
    validation score), each written atomically. A checkpoint's `model` holds the weights to infer with (the
    weight average when `train.ema` is set; the raw weights it continues from are then in `train_model`).

    Raises:
        ConfigError: a config the registries refuse (nothing is written).
        RunFolderError: `run_dir` holds a run (unless `overwrite`), or another process trains there.
    """
    cfg = resolve_config(cfg)
    run, ctx = RunFolder(run_dir), setup_distributed(cfg.train.device)
    with claim_new(run, ctx, overwrite):
        return fit_run(run, cfg, ctx, None, show_progress, hooks)


def resume(run_dir: str | Path, show_progress: bool = True, hooks: Hooks | None = None) -> TrainResult:
    """Continue the run in `run_dir` from its last.pt (from the start if it has none), with its own config and
    splits; metrics.csv is brought back to the checkpoint's epochs.

    Raises:
        RunFolderError: not a run folder, or another process trains there.
    """
    run = RunFolder(run_dir)
    cfg = resolve_config(run.config, str(run.config_path))
    ctx = setup_distributed(cfg.train.device)
    with claim(run, ctx):
        last = run.checkpoint("last")
        saved = load_checkpoint(last) if last.is_file() else None
        return fit_run(run, cfg, ctx, saved, show_progress, hooks)


def train_or_resume(cfg: Config, run_dir: str | Path, show_progress: bool = True) -> TrainResult:
    """Continue `run_dir` if it holds a checkpoint, else train `cfg` there from the start (replacing an unfinished
    run): what a sweep of runs (a benchmark, a label-budget curve) does for each point, so that it resumes."""
    if RunFolder(run_dir).checkpoint("last").is_file():
        return resume(run_dir, show_progress=show_progress)
    return train(cfg, run_dir, overwrite=True, show_progress=show_progress)


@contextmanager
def claim_new(run: RunFolder, ctx: Distributed, overwrite: bool) -> Iterator[None]:
    """`claim` a folder for a new run: refused if it holds one (unless `overwrite`); on a failure before the first
    checkpoint, what the run wrote is removed (and the folder, if this run created it)."""
    created = not run.path.exists() or (run.path.is_dir() and not any(run.path.iterdir()))
    if run.path.exists() and not run.path.is_dir():
        raise RunFolderError(f"{run.path}: exists and is not a folder")
    with claim(run, ctx):  # the lock first: a folder another process trains in is refused before anything is removed
        if ctx.is_main:
            run.prepare_new(overwrite)
        try:
            yield
        except BaseException:
            if ctx.is_main:
                run.remove_if_unfinished(created)
            raise


@contextmanager
def claim(run: RunFolder, ctx: Distributed) -> Iterator[None]:
    """Hold the run folder's lock (main process) and remove the temporary files a killed run left there.

    Raises:
        RunFolderError: another process holds the lock.
    """
    if not ctx.is_main:
        yield
        return
    with locked(run.path):
        remove_temporary_files(run.path)
        yield


def fit_run(
    run: RunFolder,
    cfg: Config,
    ctx: Distributed,
    saved: dict | None,
    show_progress: bool = True,
    hooks: Hooks | None = None,
) -> TrainResult:
    """Train `cfg` (resolved) in `run`, a folder the caller has claimed, from `saved` (a checkpoint) or the start."""
    hooks = hooks or Hooks()
    seed_everything(cfg.seed)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    progress = TrainingProgress(enabled=show_progress and ctx.is_main)
    if ctx.is_main:
        run.write_config(cfg)
    dataset = prepare_data(cfg, run, ctx, progress)
    state = build_training(cfg, run, ctx, dataset, saved)
    if saved is not None:
        done = " (finished: nothing left to train)" if state.finished else ""
        progress.note(f"resuming {run.path} after epoch {state.epoch}{done}")
    budget = Budget(cfg.train.max_minutes, cfg.train.epochs, state.epoch, state.seconds)
    budget.last_epoch = state.last_epoch
    progress.start(cfg.train.epochs, state.steps_per_epoch, state.epoch, state.method.validation_metric)
    started = hooks.clock() - state.seconds
    while not state.finished:
        epoch = state.epoch + 1
        losses = train_epoch(state, epoch, progress)
        score = validate_epoch(state, epoch, budget, hooks)
        seconds = hooks.clock() - started
        epochs_left = replan_budget(state, budget, epoch, seconds)
        save_epoch(state, epoch, losses, score, seconds)
        progress.epoch_done(epoch, losses["loss"], score)
        if epochs_left == 0 and epoch < cfg.train.epochs:
            progress.note(f"stopping after epoch {epoch}: another epoch would pass train.max_minutes={budget.minutes}")
    progress.stop()
    metric = state.method.validation_metric
    return TrainResult(run.path, state.best, metric, state.epoch, hooks.clock() - started)


# -- phases -----------------------------------------------------------------------------------------------------
def prepare_data(cfg: Config, run: RunFolder, ctx: Distributed, progress: TrainingProgress) -> Dataset:
    """Index, split (or reuse the run's splits.csv, which a new run folder does not have) and store the data; the
    main process writes splits.csv and skipped.csv and fills the store first, the others then open it."""
    known_splits = run.splits() if run.splits_path.is_file() else None
    if not ctx.is_main:
        ctx.barrier()
    dataset = prepare_dataset(cfg.data, cfg.seed, known_splits, progress=progress.preprocessing)
    if ctx.is_main:
        ctx.barrier()
        if known_splits is None:
            run.write_splits(dataset.cases, dataset.assignment)
        if dataset.store.skipped:
            run.write_skipped(dataset.store.skipped)
            ids = [case_id for case_id, _ in dataset.store.skipped]
            shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
            progress.note(f"skipped {len(ids)} unusable cases: {shown} (reasons in {run.skipped_path})")
    return dataset


def build_training(cfg: Config, run: RunFolder, ctx: Distributed, dataset: Dataset, saved: dict | None) -> Training:
    """The method and its model on the device (layout, data-parallel setup), the optimiser, schedule, scaler and
    weight average; restored from `saved` (a checkpoint) when resuming."""
    device = pick_device(cfg.train.device)
    method = build_method(cfg.method, cfg.model)
    model = method.model.to(device)
    if ctx.enabled:
        if cfg.train.sync_batchnorm:
            model = sync_batchnorm(model, device)
        broadcast_weights(model)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    method.model = model
    steps_per_epoch = _steps_per_epoch(cfg, ctx, dataset, method)
    optimizer = adamw(model, cfg.train.lr, cfg.train.weight_decay, device)
    amp = autocast_dtype(device, cfg.train.amp)
    state = Training(
        cfg=cfg,
        run=run,
        ctx=ctx,
        dataset=dataset,
        method=method,
        device=device,
        amp=amp,
        optimizer=optimizer,
        scheduler=WarmupCosine(
            optimizer, int(cfg.train.warmup_epochs * steps_per_epoch), steps_per_epoch * cfg.train.epochs
        ),
        scaler=torch.amp.GradScaler(device.type, enabled=amp == torch.float16),
        average=WeightAverage(model, cfg.train.ema) if cfg.train.ema else None,
        steps_per_epoch=steps_per_epoch,
    )
    method.attach_data(dataset, dataset.rows("train"))
    if saved is None:
        method.on_train_start()
    else:
        _restore(state, saved)
    return state


def _steps_per_epoch(cfg: Config, ctx: Distributed, dataset: Dataset, method: Method) -> int:
    """Optimiser steps per epoch (by default one pass over the larger of the labelled and unlabelled streams,
    the other one cycling), after checking that the streams can feed every process.

    Raises:
        ValueError: an empty training split, no unlabelled images for a semi-supervised method, or global batches
            that do not divide among the processes.
    """
    train_rows, rows_u = dataset.rows("train"), unlabeled_rows(dataset, method)
    unlabeled_batch = cfg.train.unlabeled_batch_size or cfg.train.batch_size
    if len(train_rows) == 0:
        raise ValueError(f"{dataset.store.path}: the training split is empty; check data.splits")
    if method.uses_unlabeled and len(rows_u) == 0:
        raise ValueError(
            f"method {method.name!r} learns from unlabelled images, but there are none: set data.labeled_ratio, "
            "data.labeled_count or data.labeled_file"
        )
    if ctx.enabled and len(train_rows) < cfg.train.batch_size:
        raise ValueError(
            f"{len(train_rows)} training images are fewer than one global batch (train.batch_size "
            f"{cfg.train.batch_size}): every process needs its equal share of each batch"
        )
    if ctx.enabled and (cfg.train.batch_size % ctx.world_size or unlabeled_batch % ctx.world_size):
        raise ValueError(
            f"train.batch_size ({cfg.train.batch_size}) and train.unlabeled_batch_size ({unlabeled_batch}) are "
            f"global batches: each must divide by the {ctx.world_size} processes"
        )
    return cfg.train.steps_per_epoch or max(len(train_rows) // cfg.train.batch_size, len(rows_u) // unlabeled_batch, 1)


def _restore(state: Training, saved: dict) -> None:
    """Continue from a checkpoint: weights, weight average, optimiser, schedule, scaler, the method's own state,
    counters, and the metrics of the epochs it holds."""
    state.model.load_state_dict(saved.get("train_model", saved["model"]))
    if state.average is not None:
        state.average.load(saved["model"], saved["step"])
    load_optimizer_state(state.optimizer, saved["optimizer"])
    state.scheduler.load_state_dict(saved["scheduler"])
    if "scaler" in saved:
        state.scaler.load_state_dict(saved["scaler"])
    state.method.load_state_dict(saved.get("method", {}))
    state.epoch, state.step, state.best = saved["epoch"], saved["step"], saved["best"]
    state.seconds = saved.get("seconds", 0.0)
    state.last_epoch = saved.get("last_epoch", state.cfg.train.epochs)
    # metrics.csv may have missed the checkpoint's epoch (a kill between the two writes): the checkpoint's own
    # history is what the epochs were (checkpoints before it had none: metrics.csv's rows up to its epoch)
    state.history = list(saved.get("history") or state.run.metrics(up_to_epoch=state.epoch))


def train_epoch(state: Training, epoch: int, progress: TrainingProgress) -> dict[str, float]:
    """One epoch of optimiser steps; returns the mean of each logged term (`loss`, then the method's own)."""
    state.model.train()
    terms_seen: dict[str, list[float]] = {}
    for batch in training_batches(state, epoch):
        terms = train_step(state, batch, epoch)
        for name, value in terms.items():
            terms_seen.setdefault(name, []).append(float(value))
        progress.step(terms["loss"])
    return {name: state.ctx.mean(float(np.mean(values))) for name, values in terms_seen.items()}


def train_step(state: Training, batch: dict[str, torch.Tensor], epoch: int) -> dict[str, float]:
    """One optimiser step on `batch`; returns the step's logged terms as numbers.

    Raises:
        TypeError: the method's step returned something other than a dict with a scalar "loss".
        TrainingDivergedError: the loss is NaN or infinite (on any process: every process stops).
    """
    cfg, method, optimizer, scaler = state.cfg, state.method, state.optimizer, state.scaler
    method.set_progress(state.step / max(state.total_steps, 1), epoch)
    with torch.autocast(state.device.type, dtype=state.amp or torch.float32, enabled=state.amp is not None):
        terms = method.training_step(batch)
    loss = terms.get("loss") if isinstance(terms, dict) else None
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        raise TypeError(f"{type(method).__name__}.training_step must return a dict with a scalar 'loss'")
    if state.ctx.any(not torch.isfinite(loss)):
        raise TrainingDivergedError(
            f"the loss became NaN or infinite at step {state.step}; lower train.lr (now {cfg.train.lr}) or check "
            "the data"
        )
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if state.ctx.enabled:
        average_gradients(state.model, state.ctx.world_size)
    if cfg.train.grad_clip:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(state.model.parameters(), cfg.train.grad_clip)
    scaler.step(optimizer)
    scaler.update()
    state.scheduler.step()
    method.after_step()
    if state.average is not None:
        state.average.update(state.model)
    state.step += 1
    return {"loss": loss.item(), **{name: float(value) for name, value in terms.items() if name != "loss"}}


def replan_budget(state: Training, budget: Budget, epoch: int, seconds: float) -> int:
    """Epochs still to train under `train.max_minutes` (the main process decides, so that every process keeps the
    same lr); the cosine is re-planned to reach 0 at the last of them."""
    if not budget.minutes or epoch == budget.planned_epochs:
        epochs_left = budget.planned_epochs - epoch
    else:
        epochs_left = state.ctx.from_main(budget.epochs_that_fit(epoch, seconds))
        if epochs_left:
            state.scheduler.replan(epochs_left * state.steps_per_epoch)
    budget.last_epoch = state.last_epoch = epoch + epochs_left
    return epochs_left


def save_epoch(state: Training, epoch: int, losses: dict[str, float], score: float, seconds: float) -> None:
    """Record the epoch in the history, and write last.pt, best.pt (when the score improved, or until a
    validation scores) and metrics.csv (main process)."""
    state.epoch = epoch
    state.history.append(
        {
            "epoch": epoch,
            "step": state.step,
            "lr": f"{state.scheduler.get_last_lr()[0]:.3g}",
            "train_loss": f"{losses['loss']:.5f}",
            **{f"train_{name}": f"{value:.5f}" for name, value in losses.items() if name != "loss"},
            f"val_{state.method.validation_metric}": f"{score:.5f}",
            "seconds": f"{seconds:.1f}",
        }
    )
    improved = not math.isnan(score) and score > state.best
    state.best = score if improved else state.best
    if state.ctx.is_main:
        checkpoint = _checkpoint(state, seconds)
        if improved or state.best == -math.inf:  # until a validation scores, best.pt follows last.pt
            save_checkpoint(state.run.checkpoint("best"), checkpoint)
        save_checkpoint(state.run.checkpoint("last"), checkpoint)
        state.run.write_metrics(state.history)
    state.ctx.barrier()


def _checkpoint(state: Training, seconds: float) -> dict[str, Any]:
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "config": state.cfg.model_dump(mode="json"),
        "model": state.inference_model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict(),
        "method": state.method.state_dict(),
        "epoch": state.epoch,
        "step": state.step,
        "best": state.best,
        "seconds": seconds,
        "history": state.history,
        "last_epoch": state.last_epoch,
    }
    if state.average is not None:
        checkpoint["train_model"] = state.model.state_dict()
    if state.scaler.is_enabled():
        checkpoint["scaler"] = state.scaler.state_dict()
    return checkpoint
