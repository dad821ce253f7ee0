"""U-Net++ speed: inference latency per slice for U-Net, U-Net++ (ensemble) and each pruned level, parameters and
GFLOPs; training throughput beside MONAI's BasicUNet / BasicUNetPlusPlus at equal widths; achieved GFLOP/s of a
training step against a plain matmul. Everything side by side in one run.

    .venv/bin/python benchmarks/bench_unetpp_speed.py [--sizes 256 512] [--repeats 10]
"""

from __future__ import annotations

import argparse
import platform

import torch
import torch.nn.functional as F
from monai.networks.nets import BasicUNet, BasicUNetPlusPlus

from medseg.models import build_model
from medseg.sweep.timing import count_flops, matmul_gflops, median_seconds

FEATURES = (32, 64, 128, 256, 512)


def inference_rows(sizes: list[int], repeats: int) -> list[str]:
    unet = build_model({"name": "unet", "features": FEATURES}).eval()
    unetpp = build_model({"name": "unetpp", "features": FEATURES}).eval()
    variants = [("U-Net", lambda x: unet(x), unet)]
    variants.append(("U-Net++ ensemble (all nodes, 4 heads)", lambda x: unetpp(x), unetpp))
    for level in (4, 3, 2, 1):
        variants.append((f"U-Net++ pruned L{level}", lambda x, level=level: unetpp(x, prune=level), unetpp))
    rows = []
    with torch.inference_mode():
        for size in sizes:
            x = torch.randn(1, 1, size, size).contiguous(memory_format=torch.channels_last)
            for model in (unet, unetpp):
                model.to(memory_format=torch.channels_last)
            reference = None
            for name, run, model in variants:
                seconds = median_seconds(lambda run=run, x=x: run(x), repeats)
                gflops = count_flops(lambda run=run, x=x: run(x)) / 1e9
                if name.startswith("U-Net++ ensemble"):
                    reference = seconds
                faster = f"{100 * (1 - seconds / reference):.0f}%" if reference and "pruned" in name else ""
                params = sum(p.numel() for p in model.parameters()) / 1e6
                rows.append(f"| {size}² | {name} | {seconds * 1000:.1f} | {faster} | {gflops:.1f} | {params:.2f} |")
    return rows


def train_rows(size: int, batch: int, steps: int) -> list[str]:
    ceiling = {torch.float32: matmul_gflops(torch.float32), torch.bfloat16: matmul_gflops(torch.bfloat16)}
    widths = (*FEATURES, FEATURES[0])
    candidates = [
        ("MONAI BasicUNet", lambda: BasicUNet(2, 1, 1, features=widths)),
        (
            "MONAI BasicUNetPlusPlus (deep supervision)",
            lambda: BasicUNetPlusPlus(2, 1, 1, features=widths, deep_supervision=True),
        ),
        ("medseg unet", lambda: build_model({"name": "unet", "features": FEATURES})),
        ("medseg unetpp (deep supervision)", lambda: build_model({"name": "unetpp", "features": FEATURES})),
    ]
    rows = []
    x = torch.randn(batch, 1, size, size)
    y = (torch.rand(batch, 1, size, size) > 0.8).float()
    for dtype in (torch.float32, torch.bfloat16):
        for name, make in candidates:
            torch.manual_seed(0)
            model = make().train().to(memory_format=torch.channels_last)
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
            xc = x.contiguous(memory_format=torch.channels_last)

            def outputs(model=model, xc=xc):
                if hasattr(model, "forward_heads"):
                    return model.forward_heads(xc)
                out = model(xc)
                return list(out) if isinstance(out, (list, tuple)) else [out]

            def step(model=model, optimizer=optimizer, outputs=outputs, dtype=dtype):
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
                    heads = outputs()
                loss = sum(F.binary_cross_entropy_with_logits(h.float(), y) for h in heads)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

            flops = count_flops(lambda: sum(F.binary_cross_entropy_with_logits(h, y) for h in outputs()).backward())
            seconds = median_seconds(step, steps)
            img_s = batch / seconds
            achieved = flops / seconds / 1e9
            rows.append(
                (str(dtype).removeprefix("torch."), name, img_s, flops / 1e9, achieved, 100 * achieved / ceiling[dtype])
            )
    lines = [f"matmul 2048² ceiling: fp32 {ceiling[torch.float32]:.0f} GFLOP/s, bf16 {ceiling[torch.bfloat16]:.0f}"]
    for dtype, name, img_s, gflop, achieved, share in rows:
        lines.append(f"| {dtype} | {name} | {img_s:.1f} | {gflop:.1f} | {achieved:.0f} | {share:.0f}% |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--train-size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    print(f"# {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, widths {FEATURES}")
    print("| input | model | latency ms/slice (median) | faster than ensemble | GFLOPs | params (M) |")
    print("|---|---|---|---|---|---|")
    print("\n".join(inference_rows(args.sizes, args.repeats)))
    print()
    print(f"# training step, batch {args.batch}×1×{args.train_size}², channels_last, AdamW")
    lines = train_rows(args.train_size, args.batch, args.steps)
    print(f"# {lines[0]}")
    print("| precision | model | train img/s | GFLOP/step | achieved GFLOP/s | % of matmul |")
    print("|---|---|---|---|---|---|")
    print("\n".join(lines[1:]))


if __name__ == "__main__":
    main()
