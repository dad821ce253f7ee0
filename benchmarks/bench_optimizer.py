"""Time of one AdamW step on a model's parameters, torch's kernels side by side in one run: the per-tensor
loop (the CPU default), `foreach` and `fused` (what the trainer uses).

    .venv/bin/python benchmarks/bench_optimizer.py --model "unet:features=[16,32,64,128,256]:pyramid=3"
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from medseg.models import build_model
from medseg.specs import parse_spec

KERNELS = {"loop (CPU default)": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def step_ms(parameters: list[torch.Tensor], options: dict, steps: int) -> float:
    optimizer = torch.optim.AdamW(parameters, lr=1e-3, weight_decay=1e-4, **options)
    for _ in range(5):
        optimizer.step()
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.step()
    return (time.perf_counter() - start) / steps * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="unet:features=[16,32,64,128,256]:pyramid=3")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model = build_model({**parse_spec(args.model), "in_channels": 1}).to(memory_format=torch.channels_last)
    parameters = list(model.parameters())
    for parameter in parameters:
        parameter.grad = torch.randn_like(parameter)
    count = sum(p.numel() for p in parameters)
    print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"{args.model}: {len(parameters)} tensors, {count / 1e6:.2f} M parameters; median of {args.repeats} runs")
    print("| kernel | ms per step |\n|---|---|")
    # interleaved repeats, so that machine noise hits every kernel alike
    times = {name: [] for name in KERNELS}
    for _ in range(args.repeats):
        for name, options in KERNELS.items():
            times[name].append(step_ms(parameters, options, args.steps))
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values):.2f} |")


if __name__ == "__main__":
    main()
