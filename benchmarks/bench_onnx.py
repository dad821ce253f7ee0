"""CPU inference latency: PyTorch (float32, and the run's autocast setting) vs onnxruntime on the exported
model, side by side in one process, for one slice and for a batch, at the run's image size.

    .venv/bin/python benchmarks/bench_onnx.py runs/figshare-final runs/bench-quality-figshare/unetpp-seed0 \
        --modes default prune=2 --threads 2

Each figure is the median of `--repeats` timed calls after warm-up. The exported file is written beside the
run (model*.onnx) and reused.
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

import torch

from medseg.engine.device import predict_probabilities
from medseg.inference import Predictor
from medseg.onnx_export import OnnxPredictor, export_onnx
from medseg.sweep.timing import median_seconds


def _median_ms(call, repeats: int) -> float:
    return 1000 * median_seconds(call, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--modes", nargs="+", default=["default"], help="default, or e.g. prune=2 (U-Net++ only)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"| run | model | inference | size | PyTorch fp32 ms/slice | PyTorch autocast ms/slice | onnxruntime ms/slice "
        f"| PyTorch fp32 ms/batch of {args.batch} | onnxruntime ms/batch | max abs diff |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for run in args.runs:
        for mode in args.modes:
            mode = None if mode == "default" else mode
            try:
                torch_predictor = Predictor.load(run, device="cpu", mode=mode)
            except ValueError:
                continue  # a mode this run's model does not have
            path = run / (f"model-{mode.replace('=', '')}.onnx" if mode else "model.onnx")
            if not path.is_file():
                export_onnx(run, path, mode)
            onnx_predictor = OnnxPredictor.load(path, threads=args.threads)
            torch_predictor.cfg.eval.tta = onnx_predictor.cfg.eval.tta = False  # one pass each
            print(_row(run, mode, torch_predictor, onnx_predictor, args), flush=True)


def _row(run: Path, mode: str | None, torch_predictor, onnx_predictor, args) -> str:
    cfg = torch_predictor.cfg
    one = torch.randn(1, cfg.data.channels, cfg.data.size, cfg.data.size)
    many = torch.randn(args.batch, cfg.data.channels, cfg.data.size, cfg.data.size)
    method, model, channels_last = torch_predictor.method, torch_predictor.model, cfg.train.channels_last
    fp32 = partial(predict_probabilities, method, model, amp=None, channels_last=channels_last)
    autocast = partial(predict_probabilities, method, model, amp=torch_predictor.amp, channels_last=channels_last)
    difference = (fp32(many) - onnx_predictor.probabilities(many)).abs().max().item()
    few = max(args.repeats // 4, 3)
    figures = [
        _median_ms(partial(fp32, one), args.repeats),
        _median_ms(partial(autocast, one), args.repeats),
        _median_ms(partial(onnx_predictor.probabilities, one), args.repeats),
        _median_ms(partial(fp32, many), few),
        _median_ms(partial(onnx_predictor.probabilities, many), few),
    ]
    cells = " | ".join(f"{v:.1f}" for v in figures)
    return f"| {run.name} | {cfg.model['name']} | {mode or 'default'} | {cfg.data.size} | {cells} | {difference:.1e} |"


if __name__ == "__main__":
    main()
