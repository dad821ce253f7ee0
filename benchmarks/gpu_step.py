"""The GPU step, prepared for a lent GPU (issue 48, item 3): training steps and inference of the protocol's U-Net at
96² and 256², eager against `torch.compile` ("default", and "reduce-overhead", which replays CUDA graphs), side by
side in one process; a mode that does not compile is recorded with its error and measured eager.

    python3 benchmarks/gpu_step.py --out "$OUT"          # on the device machine; rows: $OUT/gpu_step.jsonl

Not a test and never run in CI; on a CPU (`--device cpu`) it runs the same code as a smoke check.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from medseg.engine.device import autocast_dtype
from medseg.models import build_model
from medseg.sweep.step_speed import measure_method_step
from medseg.sweep.timing import median_seconds

RECIPE = "fixmatch:feature_perturbation=0.5"


def inference_row(size: int, batch: int, mode: str | None, device: torch.device, repeats: int = 20) -> dict:
    """Median seconds of one eval-mode forward (autocast as the predictor uses it) of the protocol's U-Net."""
    model = build_model({"name": "unet", "features": [16, 32, 64, 128, 256]}).to(device).eval()
    run = model
    compiled: bool | str = True
    if mode:
        run = torch.compile(model, mode=mode)
    images = torch.randn(batch, 1, size, size, device=device)
    amp = autocast_dtype(device, True)
    with torch.inference_mode(), torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
        try:
            run(images)
        except Exception as error:  # compilation failed: measure eager and say why
            compiled, run = str(error).splitlines()[0][:200], model
        seconds = median_seconds(lambda: run(images), repeats, warmup=5, device=device)
    row = {"what": "inference", "size": size, "batch": batch, "mode": mode or "eager", "seconds": seconds}
    row["images_per_s"] = batch / seconds
    if mode and compiled is not True:
        row["compile"] = f"failed, eager: {compiled}"
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--sizes", type=int, nargs="+", default=[96, 256])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--modes", nargs="+", default=["default", "reduce-overhead"])
    args = parser.parse_args()
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    args.out.mkdir(parents=True, exist_ok=True)
    rows_file = args.out / "gpu_step.jsonl"
    features = [16, 32, 64, 128, 256]
    for size in args.sizes:
        for method in ("supervised", RECIPE):
            for mode in [None, *args.modes]:
                row = measure_method_step(method, features, size, args.batch, args.steps, True, "model", device, mode)
                row |= {"what": "training step", "size": size, "batch": args.batch, "mode": mode or "eager"}
                _write(rows_file, row, where)
        for mode in [None, *args.modes]:
            _write(rows_file, inference_row(size, args.batch, mode, device), where)


def _write(path: Path, row: dict, where: str) -> None:
    row = {**row, "device": where, "torch": torch.__version__}
    print(json.dumps(row), flush=True)
    with path.open("a") as handle:
        handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
