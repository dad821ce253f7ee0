"""Speed of model variants side by side in one run: parameters, forward GFLOPs, single-slice inference
latency and training throughput (bf16 autocast on CPUs that have it, AdamW, batch 8), in the channels_last or
the contiguous memory layout (`--layout both` measures each model in both, one after the other).

Models are `name[:key=value]...` as in bench_quality.py; each trains on its full training outputs (all
heads for U-Net++, all eight maps and the guidance losses for MSGA).

    .venv/bin/python benchmarks/bench_model_speed.py --size 96 --models unet:features=[16,32,64,128,256] ...
"""

from __future__ import annotations

import argparse
import platform

import torch

from medseg.engine.device import autocast_dtype
from medseg.methods import Method, build_method
from medseg.specs import parse_spec
from medseg.sweep.timing import count_flops, median_seconds


def _training_method(spec: dict) -> Method:
    """The method that trains the model as `medseg train` would: msga's loss (its eight maps, the guided and the
    reconstruction losses) for MSGA, supervised (every head of a deeply supervised model) for the others."""
    return build_method({"name": "msga" if spec["name"] == "msga" else "supervised"}, spec)


def measure(
    spec: dict,
    size: int,
    batch: int,
    steps: int,
    repeats: int,
    layout: torch.memory_format = torch.channels_last,
    amp: bool = True,
) -> tuple[float, float, float, float]:
    """(params M, forward GFLOPs per slice, latency ms per slice, training img/s) in memory `layout`, with bf16
    autocast where the CPU computes it natively (unless `amp` is False)."""
    torch.manual_seed(0)
    method = _training_method(spec)
    model = method.model = method.model.to(memory_format=layout)
    amp = autocast_dtype(torch.device("cpu"), amp)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    one = torch.randn(1, spec["in_channels"], size, size).contiguous(memory_format=layout)
    model.eval()
    with torch.inference_mode():
        gflops = count_flops(lambda: model(one)) / 1e9
        with torch.autocast("cpu", dtype=amp or torch.float32, enabled=amp is not None):
            latency = median_seconds(lambda: model(one), repeats) * 1000
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    images = torch.randn(batch, spec["in_channels"], size, size).contiguous(memory_format=layout)
    batch_data = {"image": images, "mask": (torch.rand(batch, size, size) > 0.9).long()}

    def step():
        with torch.autocast("cpu", dtype=amp or torch.float32, enabled=amp is not None):
            loss = method.training_step(batch_data)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return params, gflops, latency, batch / median_seconds(step, steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--layout", choices=["channels_last", "contiguous", "both"], default="channels_last")
    parser.add_argument("--fp32", action="store_true", help="no bf16 autocast (as on a CPU without native bf16)")
    args = parser.parse_args()
    layouts = ["channels_last", "contiguous"] if args.layout == "both" else [args.layout]
    amp = autocast_dtype(torch.device("cpu"), not args.fp32)
    print(
        f"# {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
        f"{args.channels}×{args.size}², autocast {amp}"
    )
    print("| model | layout | params (M) | GFLOPs/slice | latency (ms/slice) | train img/s |")
    print("|---|---|---|---|---|---|")
    for text in args.models:
        for layout in layouts:
            memory_format = torch.channels_last if layout == "channels_last" else torch.contiguous_format
            params, gflops, latency, img_s = measure(
                {**parse_spec(text), "in_channels": args.channels},
                args.size,
                args.batch,
                args.steps,
                args.repeats,
                memory_format,
                not args.fp32,
            )
            print(f"| {text} | {layout} | {params:.2f} | {gflops:.2f} | {latency:.1f} | {img_s:.1f} |", flush=True)


if __name__ == "__main__":
    main()
