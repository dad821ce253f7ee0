"""The cost of one training step of a method, as the trainer takes it: the engine's own `train_step` (autocast,
backward, clipping, fused AdamW, the method's after-step hook) on a synthetic batch, so that what differs between two
measurements is only what each method computes per step. Used by the speed benchmarks and the GPU checks."""

from __future__ import annotations

import statistics
import time
from types import SimpleNamespace

import torch

from medseg.config import Config, load_config
from medseg.engine.device import autocast_dtype
from medseg.engine.distributed import Distributed
from medseg.engine.schedule import WarmupCosine
from medseg.engine.trainer import adamw, train_step
from medseg.methods import build_method
from medseg.resolve import resolve_config
from medseg.specs import parse_spec
from medseg.sweep.timing import synchronize

__all__ = ["method_step_config", "measure_method_step"]

MULTI_BRANCH = {"cdma": ["ca", "sa", "cbam"], "mcnet": ["none", "none", "none"], "cct": None}


def method_step_config(
    method_text: str, features: list[int], size: int, batch: int, amp: bool, layout: str = "model"
) -> Config:
    """A resolved phantom config training `method_text` (`name[:key=value]...`) on the U-Net of `features` (an MTNet
    of the same width for the multi-branch methods) at `size`², `batch` images (and as many unlabelled)."""
    method = parse_spec(method_text)
    name = method["name"]
    model = {"name": "mtnet", "features": features} if name in MULTI_BRANCH else {"name": "unet", "features": features}
    if name == "mcnet":
        model |= {"attentions": ["none"] * 3, "upsampling": ["transpose", "bilinear", "nearest"]}
    if name == "urpc":
        model["pyramid"] = 3
    raw = {
        "data": {"source": {"format": "phantoms"}, "size": size},
        "model": model,
        "method": method,
        "train": {"batch_size": batch, "amp": amp},
    }
    if layout != "model":
        raw["train"]["channels_last"] = layout == "channels_last"
    return resolve_config(load_config(raw))


def measure_method_step(
    method_text: str,
    features: list[int],
    size: int,
    batch: int,
    steps: int,
    amp: bool,
    layout: str = "model",
    device: torch.device = torch.device("cpu"),
    compile_mode: str | None = None,
) -> dict:
    """Median seconds per optimiser step (after two warm-up steps; with `compile_mode`, five, compilation included
    in none of the timed ones) of one method in `layout` ("model": the model's own choice, "channels_last" or
    "contiguous") on `device`."""
    torch.manual_seed(0)
    cfg = method_step_config(method_text, features, size, batch, amp, layout)
    method = build_method(cfg.method, cfg.model)
    model = method.model.to(device)
    model = model.to(memory_format=torch.channels_last) if cfg.train.channels_last else model
    method.model = model
    optimizer = adamw(model, 1e-3, 1e-4, device)
    amp_dtype = autocast_dtype(device, amp)
    state = SimpleNamespace(
        cfg=cfg,
        method=method,
        model=model,
        optimizer=optimizer,
        scaler=torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16),
        scheduler=WarmupCosine(optimizer, 0, 1000),
        ctx=Distributed(),
        device=device,
        amp=amp_dtype,
        average=None,
        step=900,  # past any ramp-up or pre-training stage (train_step reports progress = step / total_steps)
        total_steps=1000,
    )
    layout = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
    images = torch.randn(batch, 1, size, size).contiguous(memory_format=layout)
    batch_data = {
        "image": images,
        "mask": (torch.rand(batch, size, size) > 0.9).long(),
        "label": torch.zeros(batch, dtype=torch.long),
    }
    if method.uses_unlabeled:
        batch_data["unlabeled_image"] = torch.randn(batch, 1, size, size).contiguous(memory_format=layout)
    batch_data = {key: value.to(device) for key, value in batch_data.items()}
    model.train()
    compiled = _compile(state, compile_mode, batch_data) if compile_mode else None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    warm = 5 if compile_mode else 2
    times = []
    for step in range(steps + warm):
        synchronize(device)
        started = time.perf_counter()
        train_step(state, batch_data, epoch=2)
        synchronize(device)
        if step >= warm:
            times.append(time.perf_counter() - started)
    seconds = statistics.median(times)
    read = batch * (2 if method.uses_unlabeled else 1)
    row = {
        "method": method_text,
        "channels_last": cfg.train.channels_last,
        "seconds_per_step": seconds,
        "steps_per_s": 1 / seconds,
        "images_per_s": read / seconds,
    }
    if device.type == "cuda":
        row["peak_gpu_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    if compile_mode:
        row["compile"] = compile_mode if compiled is True else f"failed, eager: {compiled}"
    return row


def _compile(state: SimpleNamespace, mode: str, batch_data: dict) -> bool | str:
    """Put `torch.compile(model, mode=mode)` in the method's place and run one step through it; True, or the
    error's first line when it does not compile (the eager model is put back)."""
    eager = state.method.model
    state.method.model = state.model = torch.compile(eager, mode=mode)
    try:
        train_step(state, batch_data, epoch=2)
        return True
    except Exception as error:  # inductor / dynamo raise many types; the row records why and measures eager
        state.method.model = state.model = eager
        return str(error).splitlines()[0][:200] if str(error) else type(error).__name__
