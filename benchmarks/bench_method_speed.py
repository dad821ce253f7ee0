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
import os
import time
from pathlib import Path

import torch
import yaml

from medseg.engine.device import autocast_dtype
from medseg.provenance import machine
from medseg.sweep.step_speed import measure_method_step


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
    parser.add_argument("--note", help="what a reader of the rows must know (e.g. measured with training paused)")
    args = parser.parse_args()
    device = torch.device(args.device)
    amp = autocast_dtype(device, not args.fp32)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else str(machine()["cpu"])
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
        row = measure_method_step(
            text, args.features, args.size, args.batch, args.steps, not args.fp32, layout, device, mode
        )
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
                extra |= {"date": time.strftime("%Y-%m-%d"), "torch": torch.__version__}
                # oneDNN's instruction-set cap, when set, emulates an older CPU (AVX2 without AVX-512 or bf16)
                extra |= {"onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"), "note": args.note}
                handle.write(json.dumps({**row, **extra}) + "\n")


if __name__ == "__main__":
    main()
