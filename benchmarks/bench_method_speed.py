"""Optimiser steps and images per second of each training method, side by side in one run: the engine's own
`train_step` (autocast, backward, clipping, fused AdamW, the method's after-step hook) on synthetic batches of the
given size, so that what differs is only what each method computes per step.

    .venv/bin/python benchmarks/bench_method_speed.py --size 96 --batch 16 --methods supervised mean_teacher bcp cdma

Each method is `name[:key=value]...`; its model is the U-Net of `--features` (an MTNet of the same width for the
multi-branch methods). "images/s" counts the labelled and unlabelled images a step reads. `--layouts
channels_last contiguous` measures each method in both memory layouts, alternating (default: the model's own).
`--device cuda` times the same steps on a GPU (synchronised before each clock read; autocast bf16 where the GPU has
it, else float16 with a gradient scaler, as the trainer does) and adds the peak GPU memory per step. `--compile
MODE...` also times each method with its model under `torch.compile(mode=MODE)` ("default", "reduce-overhead" =
CUDA graphs on a GPU, "max-autotune"); a model that does not compile is reported with the error and measured eager.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from types import SimpleNamespace

import torch
import yaml

from medseg.config import load_config
from medseg.engine.device import autocast_dtype
from medseg.engine.distributed import Distributed
from medseg.engine.schedule import WarmupCosine
from medseg.engine.trainer import adamw, train_step
from medseg.methods import build_method
from medseg.resolve import resolve_config
from medseg.specs import parse_spec

MULTI_BRANCH = {"cdma": ["ca", "sa", "cbam"], "mcnet": ["none", "none", "none"], "cct": None}


def _config(method_text: str, features: list[int], size: int, batch: int, amp: bool, layout: str = "model"):
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


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
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
    cfg = _config(method_text, features, size, batch, amp, layout)
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
        _synchronize(device)
        started = time.perf_counter()
        train_step(state, batch_data, epoch=2)
        _synchronize(device)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", required=True)
    parser.add_argument("--features", type=yaml.safe_load, default=[16, 32, 64, 128, 256])
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--fp32", action="store_true", help="no bf16 autocast (as on a CPU without native bf16)")
    parser.add_argument("--jsonl", type=Path, help="append one JSON line per method here")
    parser.add_argument("--layouts", nargs="+", default=["model"], choices=["model", "channels_last", "contiguous"])
    parser.add_argument("--repeats", type=int, default=1, help="measure every method × layout this many times")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (a GPU)")
    parser.add_argument("--compile", nargs="*", default=[], help="also under torch.compile in these modes")
    args = parser.parse_args()
    device = torch.device(args.device)
    amp = autocast_dtype(device, not args.fp32)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(
        f"# {where}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, "
        f"U-Net {args.features} at {args.size}², batch {args.batch} (+{args.batch} unlabelled), autocast {amp}"
    )
    print("| method | s/step | steps/s | images/s | × supervised |")
    print("|---|---|---|---|---|")
    base = None
    modes = [None, *args.compile]
    runs = [
        (text, layout, mode)
        for _ in range(args.repeats)
        for text in args.methods
        for layout in args.layouts
        for mode in modes
    ]
    for text, layout, mode in runs:
        row = measure(text, args.features, args.size, args.batch, args.steps, not args.fp32, layout, device, mode)
        base = base or row["seconds_per_step"]
        label = text if layout == "model" else f"{text} ({layout})"
        label += f" [compile {row['compile']}]" if mode else ""
        print(
            f"| {label} | {row['seconds_per_step']:.3f} | {row['steps_per_s']:.2f} | {row['images_per_s']:.1f} "
            f"| {row['seconds_per_step'] / base:.2f} |",
            flush=True,
        )
        if args.jsonl:
            with args.jsonl.open("a") as handle:
                extra = {"size": args.size, "batch": args.batch, "amp": str(amp), "device": where}
                handle.write(json.dumps({**row, **extra}) + "\n")


if __name__ == "__main__":
    main()
