"""Training throughput of medseg's U-Net vs MONAI's BasicUNet at equal widths, side by side in one run.

Also reports each model's FLOPs per training step and the achieved GFLOP/s against a plain matmul's
GFLOP/s on the same machine (the practical ceiling).

    .venv/bin/python benchmarks/bench_unet_throughput.py [--size 128] [--batch 16] [--steps 8]
"""

from __future__ import annotations

import argparse
import platform

import torch
import torch.nn.functional as F
from monai.networks.nets import BasicUNet

from medseg.models import build_model
from medseg.sweep.timing import count_flops, matmul_gflops, median_seconds


def train_step(model, optimizer, x, y, bf16: bool) -> None:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits = model(x)
    loss = F.binary_cross_entropy_with_logits(logits.float(), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def step_flops(model, x, y) -> float:
    flops = count_flops(lambda: F.binary_cross_entropy_with_logits(model(x), y).backward())
    model.zero_grad(set_to_none=True)
    return flops


def measure(model, size: int, batch: int, steps: int, channels_last: bool, bf16: bool) -> dict[str, float]:
    torch.manual_seed(0)
    x = torch.randn(batch, 1, size, size)
    y = (torch.rand(batch, 1, size, size) > 0.8).float()
    flops = step_flops(model, x, y)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    seconds = median_seconds(lambda: train_step(model, optimizer, x, y, bf16), steps)
    return {"img_s": batch / seconds, "gflop_step": flops / 1e9, "gflop_s": flops / seconds / 1e9}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--features", type=str, default="32,64,128,256,512")
    args = parser.parse_args()
    features = tuple(int(f) for f in args.features.split(","))
    torch.set_num_threads(torch.get_num_threads())

    rows = []
    candidates = [
        ("MONAI BasicUNet (fp32)", lambda: BasicUNet(2, 1, 1, features=(*features, features[0])), False, False),
        (
            "MONAI BasicUNet (fp32, channels_last)",
            lambda: BasicUNet(2, 1, 1, features=(*features, features[0])),
            True,
            False,
        ),
        (
            "MONAI BasicUNet (bf16 autocast, channels_last)",
            lambda: BasicUNet(2, 1, 1, features=(*features, features[0])),
            True,
            True,
        ),
        ("medseg unet (fp32, channels_last)", lambda: build_model({"name": "unet", "features": features}), True, False),
        (
            "medseg unet (bf16 autocast, channels_last)",
            lambda: build_model({"name": "unet", "features": features}),
            True,
            True,
        ),
    ]
    for name, make, channels_last, bf16 in candidates:
        rows.append((name, measure(make(), args.size, args.batch, args.steps, channels_last, bf16)))
    ceiling32 = matmul_gflops(torch.float32)
    ceiling16 = matmul_gflops(torch.bfloat16)

    base = rows[0][1]["img_s"]
    print(
        f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    print(f"# input {args.batch}x1x{args.size}x{args.size}, features {features}, {args.steps} timed steps")
    print(f"# matmul 2048² ceiling: fp32 {ceiling32:.0f} GFLOP/s, bf16 {ceiling16:.0f} GFLOP/s")
    print("| model | train img/s | × MONAI fp32 | GFLOP/step | achieved GFLOP/s | % of matmul (same dtype) |")
    print("|---|---|---|---|---|---|")
    for name, r in rows:
        ceiling = ceiling16 if "bf16" in name else ceiling32
        print(
            f"| {name} | {r['img_s']:.1f} | {r['img_s'] / base:.2f} | {r['gflop_step']:.1f} | "
            f"{r['gflop_s']:.0f} | {100 * r['gflop_s'] / ceiling:.0f}% |"
        )


if __name__ == "__main__":
    main()
