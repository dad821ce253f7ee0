"""The training loop shared by every method: devices, AMP, channels_last, optimiser and schedule, progress,
validation, metrics.csv, atomic checkpoints and resume."""

from __future__ import annotations

import csv
import io
import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medseg.atomic import write_text_atomic
from medseg.config import Config, load_config
from medseg.data.augment import augment_batch
from medseg.data.dataset import Dataset, iterate_batches, prepare_dataset
from medseg.data.splits import UNLABELED, read_splits, write_splits
from medseg.engine.checkpoint import load_checkpoint, save_checkpoint
from medseg.engine.device import autocast_dtype, pick_device
from medseg.engine.distributed import (
    Distributed,
    average_gradients,
    broadcast_buffers,
    broadcast_weights,
    setup_distributed,
    sync_batchnorm,
)
from medseg.engine.ema import WeightAverage
from medseg.engine.schedule import WarmupCosine
from medseg.losses import IGNORE_INDEX, hard_prediction
from medseg.methods import METHODS
from medseg.metrics import dice_scores
from medseg.models import inference_modes
from medseg.ui import TrainingProgress

__all__ = ["train", "build_method", "predict_probabilities", "seed_everything", "TrainResult"]

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run_dir: Path
    best_val_score: float
    validation_metric: str  # "dice", or what the method validates with
    epochs_done: int
    seconds: float


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_method(cfg: Config):
    """Instantiate the configured method with the model spec; returns the method (model built)."""
    options = {k: v for k, v in cfg.method.items() if k != "name"}
    method = METHODS[cfg.method["name"]](cfg.model, **options)
    method.build()
    return method


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


def _to_device(batch: dict[str, torch.Tensor], device: torch.device, channels_last: bool) -> dict[str, torch.Tensor]:
    out = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    if channels_last:
        for key in ("image", "unlabeled_image"):
            if key in out:
                out[key] = out[key].contiguous(memory_format=torch.channels_last)
    return out


@torch.no_grad()
def predict_probabilities(
    method, model: nn.Module, images: torch.Tensor, amp: torch.dtype | None, channels_last: bool
) -> torch.Tensor:
    """Probabilities `(B, K, H, W)` float32 for a batch of images already on the model's device."""
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    with torch.autocast(images.device.type, dtype=amp or torch.float32, enabled=amp is not None):
        return method.predict(model, images).float()


def validation_metric(method) -> str:
    """What a method validates with (its metrics.csv column is `val_<metric>`): Dice unless it says otherwise."""
    return getattr(method, "validation_metric", "dice")


def _validate(method, model, dataset: Dataset, cfg: Config, device, amp, ctx: Distributed) -> float:
    """Mean per-image validation score: the method's `validation_scores(model, batch)` if it has one, else
    the Dice of the predicted masks (foreground, or the mean over foreground classes). With several
    processes, each scores its share of the images and the mean is taken over all of them."""
    rows = dataset.rows("val")[ctx.rank :: ctx.world_size]
    if len(dataset.rows("val")) == 0:
        return math.nan
    model.eval()
    scores = []
    for batch in iterate_batches(dataset.store, rows, cfg.train.batch_size, labels=dataset.labels):
        batch = _to_device(batch, device, False)
        if hasattr(method, "validation_scores"):
            with torch.no_grad(), torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
                scores.append(method.validation_scores(model, batch).float().cpu())
            continue
        probs = predict_probabilities(method, model, batch["image"], amp, cfg.train.channels_last)
        known = batch["mask"] != IGNORE_INDEX  # pseudo-masks leave some pixels unknown: they do not count
        pred = torch.where(known, hard_prediction(probs, cfg.eval.threshold), 0)
        mask = torch.where(known, batch["mask"], 0)
        if probs.shape[1] == 1:
            scores.append(dice_scores(pred > 0, mask > 0))
        else:
            per_class = [dice_scores(pred == k, mask == k) for k in range(1, probs.shape[1])]
            scores.append(torch.stack(per_class).mean(0))
    model.train()
    return ctx.average(torch.cat(scores) if scores else torch.zeros(0))


def _endless(dataset: Dataset, rows: np.ndarray, batch_size: int, generator: torch.Generator):
    """Shuffled batches of `rows`, reshuffled whenever they run out (the shorter stream of two cycles)."""
    while True:
        yield from iterate_batches(dataset.store, rows, batch_size, True, generator, True, labels=dataset.labels)


def _write_metrics(path: Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


def _write_skipped(path: Path, skipped: list[tuple[str, str]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["id", "reason"])
    writer.writerows(skipped)
    write_text_atomic(path, buffer.getvalue())


def _read_metrics(path: Path, up_to_epoch: int) -> list[dict]:
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return [row for row in csv.DictReader(handle) if int(row["epoch"]) <= up_to_epoch]


def train(cfg: Config | None, run_dir: str | Path, resume: bool = False, show_progress: bool = True) -> TrainResult:
    """Train `cfg` into `run_dir` (or continue the run there with `resume=True`).

    The run folder receives config.yaml, splits.csv, metrics.csv, last.pt (every epoch) and best.pt (best
    validation Dice), each written atomically. A checkpoint's `model` holds the weights to infer with (the
    weight average when `train.ema` is set; the raw weights it continues from are then in `train_model`).
    """
    run_dir = Path(run_dir)
    ctx = setup_distributed()
    state = None
    if resume:
        cfg = load_config(run_dir / "config.yaml")
        last = run_dir / "last.pt"
        state = load_checkpoint(last) if last.is_file() else None
    if cfg is None:
        raise ValueError("train() needs a config unless resume=True")
    run_dir.mkdir(parents=True, exist_ok=True)
    if ctx.is_main:
        write_text_atomic(run_dir / "config.yaml", cfg.to_yaml())
    seed_everything(cfg.seed)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)

    splits_path = run_dir / "splits.csv"
    known_splits = read_splits(splits_path) if resume and splits_path.is_file() else None
    progress = TrainingProgress(enabled=show_progress and ctx.is_main)
    if not ctx.is_main:
        ctx.barrier()  # the main process fills the preprocessed store first; the others then open it
    dataset = prepare_dataset(cfg.data, cfg.seed, known_splits, progress=progress.preprocessing)
    if ctx.is_main:
        ctx.barrier()
    if ctx.is_main and not splits_path.is_file():
        write_splits(splits_path, dataset.cases, dataset.assignment)
    if dataset.store.skipped and ctx.is_main:
        _write_skipped(run_dir / "skipped.csv", dataset.store.skipped)
        ids = [case_id for case_id, _ in dataset.store.skipped]
        shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
        progress.note(f"skipped {len(ids)} unusable cases: {shown} (reasons in {run_dir / 'skipped.csv'})")
    train_rows = dataset.rows("train")
    if len(train_rows) == 0:
        raise ValueError(f"{run_dir / 'splits.csv'}: the training split is empty; check data.splits")

    device = pick_device(cfg.train.device)
    amp = autocast_dtype(device, cfg.train.amp)
    method = build_method(cfg)
    model = method.model.to(device)
    if ctx.enabled:
        if cfg.train.sync_batchnorm:
            model = sync_batchnorm(model, device)
        broadcast_weights(model)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    method.model = model
    optimizer = adamw(model, cfg.train.lr, cfg.train.weight_decay, device)
    unlabeled_rows = dataset.rows(UNLABELED) if getattr(method, "uses_unlabeled", False) else train_rows[:0]
    unlabeled_batch = cfg.train.unlabeled_batch_size or cfg.train.batch_size
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
    if getattr(method, "uses_unlabeled", False) and len(unlabeled_rows) == 0:
        raise ValueError(
            f"method {cfg.method['name']!r} learns from unlabelled images, but there are none: set "
            "data.labeled_ratio or data.labeled_count"
        )
    # by default, with unlabelled images, an epoch is one pass over the larger stream (the other one cycles)
    steps_per_epoch = cfg.train.steps_per_epoch or max(
        len(train_rows) // cfg.train.batch_size, len(unlabeled_rows) // unlabeled_batch, 1
    )
    total_steps = steps_per_epoch * cfg.train.epochs
    scheduler = WarmupCosine(optimizer, int(cfg.train.warmup_epochs * steps_per_epoch), total_steps)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    average = WeightAverage(model, cfg.train.ema) if cfg.train.ema else None

    start_epoch, step, best, elapsed = 0, 0, -math.inf, 0.0
    if state is not None:
        model.load_state_dict(state.get("train_model", state["model"]))
        if average is not None:
            average.load(state["model"], state["step"])
        load_optimizer_state(optimizer, state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        if "method" in state and hasattr(method, "load_state_dict"):  # e.g. a Mean Teacher's teacher
            method.load_state_dict(state["method"])
        start_epoch, step, best, elapsed = state["epoch"], state["step"], state["best"], state.get("seconds", 0.0)
        progress.note(f"resuming {run_dir} after epoch {start_epoch}")
    history = _read_metrics(run_dir / "metrics.csv", start_epoch)

    generator = torch.Generator().manual_seed(cfg.seed)
    progress.start(cfg.train.epochs, steps_per_epoch, start_epoch, validation_metric(method))
    started = time.perf_counter() - elapsed
    epoch = start_epoch
    last_epoch = cfg.train.epochs  # re-planned under train.max_minutes
    validation_total, validation_seconds = 0.0, 0.0  # this session's validations; the latest one
    for epoch in range(start_epoch + 1, cfg.train.epochs + 1):
        # an epoch's batches and random draws (noise, pair sampling) do not depend on earlier epochs: resumable
        generator.manual_seed(cfg.seed * 100_003 + epoch)
        torch.manual_seed(cfg.seed * 100_003 + epoch + 7919 * ctx.rank)  # dropout and noise differ per process
        model.train()
        losses = []
        extra_terms: dict[str, list[float]] = {}
        labeled = _endless(dataset, train_rows, cfg.train.batch_size, generator)
        unlabeled = _endless(dataset, unlabeled_rows, unlabeled_batch, generator) if len(unlabeled_rows) else None
        for _ in range(steps_per_epoch):
            batch = next(labeled)
            image, mask, _ = augment_batch(batch["image"], batch["mask"], cfg.augment, generator)
            batch = {**batch, "image": image, "mask": mask}
            if unlabeled is not None:
                batch["unlabeled_image"] = augment_batch(next(unlabeled)["image"], None, cfg.augment, generator)[0]
            batch = _to_device(ctx.shard(batch), device, cfg.train.channels_last)
            if hasattr(method, "set_progress"):  # ramp-ups of consistency weights
                method.set_progress(step / max(total_steps, 1), epoch)
            with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
                terms = method.training_step(batch)
            loss = terms.get("loss") if isinstance(terms, dict) else None
            if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
                raise TypeError(f"{type(method).__name__}.training_step must return a dict with a scalar 'loss'")
            if ctx.any(not torch.isfinite(loss)):  # every process stops, not only the one that saw it
                raise FloatingPointError(
                    f"the loss became NaN or infinite at step {step}; lower train.lr or check the data"
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if ctx.enabled:
                average_gradients(model, ctx.world_size)
            if cfg.train.grad_clip:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            if hasattr(method, "after_step"):
                method.after_step()
            if average is not None:
                average.update(model)
            step += 1
            losses.append(loss.item())
            for name, value in terms.items():
                if name != "loss":
                    extra_terms.setdefault(name, []).append(float(value))
            progress.step(loss.item())
        inference_model = average.model if average is not None else model
        if ctx.enabled:
            broadcast_buffers(inference_model)
        if epoch >= cfg.train.validate_from * last_epoch:  # validate_from < 1: the last epoch always passes
            validation_started = time.perf_counter()
            val_score = _validate(method, inference_model, dataset, cfg, device, amp, ctx)
            validation_seconds = time.perf_counter() - validation_started
            validation_total += validation_seconds
        else:
            val_score = math.nan
        seconds = time.perf_counter() - started
        epoch_loss = ctx.mean(float(np.mean(losses)))
        history.append(
            {
                "epoch": epoch,
                "step": step,
                "lr": f"{scheduler.get_last_lr()[0]:.3g}",
                "train_loss": f"{epoch_loss:.5f}",
                **{f"train_{name}": f"{ctx.mean(float(np.mean(values))):.5f}" for name, values in extra_terms.items()},
                f"val_{validation_metric(method)}": f"{val_score:.5f}",
                "seconds": f"{seconds:.1f}",
            }
        )
        epochs_left = cfg.train.epochs - epoch
        if cfg.train.max_minutes and epochs_left:
            # the epochs that still fit in the budget at the mean pace so far, each with a validation (the main
            # process decides, so that every process keeps the same lr); the cosine is re-planned to reach 0 at the
            # last of them
            per_epoch = (seconds - elapsed - validation_total) / (epoch - start_epoch) + validation_seconds
            fit = int((cfg.train.max_minutes * 60 - seconds) // per_epoch)
            epochs_left = ctx.from_main(max(0, min(epochs_left, fit)))
            if epochs_left:
                scheduler.replan(epochs_left * steps_per_epoch)
            last_epoch = epoch + epochs_left
        improved = not math.isnan(val_score) and val_score > best
        best = val_score if improved else best
        checkpoint = {
            "config": cfg.model_dump(mode="json"),
            "inference_modes": inference_modes(model),
            "model": inference_model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "epoch": epoch,
            "step": step,
            "best": best,
            "seconds": seconds,
        }
        if average is not None:
            checkpoint["train_model"] = model.state_dict()
        if scaler.is_enabled():
            checkpoint["scaler"] = scaler.state_dict()
        if hasattr(method, "state_dict"):
            checkpoint["method"] = method.state_dict()
        if ctx.is_main:
            if improved or best == -math.inf:  # until a validation scores, best.pt follows last.pt
                save_checkpoint(run_dir / "best.pt", checkpoint)
            save_checkpoint(run_dir / "last.pt", checkpoint)
            _write_metrics(run_dir / "metrics.csv", history)
        ctx.barrier()
        progress.epoch_done(epoch, epoch_loss, val_score)
        if epochs_left == 0 and epoch < cfg.train.epochs:
            progress.note(
                f"stopping after epoch {epoch}: another epoch would pass train.max_minutes={cfg.train.max_minutes}"
            )
            break
    progress.stop()
    return TrainResult(run_dir, best, validation_metric(method), epoch, time.perf_counter() - started)
