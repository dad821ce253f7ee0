"""medseg's CUDA paths, checked on a GPU machine in one short run, and the GPU's training speed per method.

1. bf16 autocast, end to end: `medseg train` on phantoms on the GPU, killed after a few epochs (as a lost job
   is), continued with `--resume`, then evaluated with its report and Grad-CAM gallery, all on the GPU;
2. float16 autocast with the gradient scaler (what a GPU without bf16 gets): the same training in-process with
   bf16 reported unsupported; the checkpoint must hold the scaler's state and the run must still segment;
3. nccl: a one-process "cpu:gloo,cuda:nccl" group (what `setup_distributed` opens under torchrun on GPUs); the
   engine's gradient all-reduce, weight broadcast and `nn.SyncBatchNorm` on CUDA tensors. Two processes on one
   GPU are not possible with nccl, so more than one rank needs a machine with more GPUs;
4. optimiser steps and images per second of each method (`medseg.sweep.step_speed.measure_method_step` on the GPU);
5. with `--tests SECONDS`: the test suite, where `train.device: auto` means the GPU, in parallel workers of one
   thread each (several workers of 16 threads each starve one another), stopped after SECONDS; the failed tests
   and their messages go into the check's line, the whole log to OUT/pytest.log.

    python3 benchmarks/cuda_check.py --out OUT [--tests 240]   # OUT/cuda_check.jsonl; exit status 1 if a check failed

A check fails on an exception or when a trained phantom run's test Dice is below 0.8 (12 CPU epochs reach 0.98).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "phantoms-unet.yaml"
MIN_DICE = 0.8
SPEED_METHODS = ["supervised", "mean_teacher", "bcp", "cps", "fixmatch:feature_perturbation=0.5", "cdma"]


def _epochs_logged(run: Path) -> int:
    metrics = run / "metrics.csv"
    return max(len(metrics.read_text().splitlines()) - 1, 0) if metrics.is_file() else 0


def _test_dice(run: Path) -> float:
    return json.loads((run / "eval" / "test" / "summary.json").read_text())["metrics"]["dice"]["mean"]


def check_bf16_resume(work: Path, device: str) -> dict:
    run = work / "bf16"
    medseg = [sys.executable, "-m", "medseg.cli", "train"]
    args = [str(CONFIG), f"train.device={device}", "train.epochs=30", f"output_dir={work}"]
    job = subprocess.Popen([*medseg, *args, "--run-dir", str(run), "--quiet", "--no-evaluate"], cwd=REPO)
    while _epochs_logged(run) < 5 and job.poll() is None:
        time.sleep(0.2)
    job.send_signal(signal.SIGKILL)
    job.wait()
    killed_at = _epochs_logged(run)
    if killed_at >= 30:
        raise RuntimeError("the run finished before it could be interrupted")
    started = time.perf_counter()
    subprocess.run([*medseg, str(run), "--resume", "--quiet"], cwd=REPO, check=True)
    checkpoint = torch.load(run / "last.pt", map_location="cpu", weights_only=False)
    dice = _test_dice(run)
    return {
        "killed_after_epochs": killed_at,
        "epochs_after_resume": _epochs_logged(run),
        "resumed_minutes": (time.perf_counter() - started) / 60,
        "scaler_saved": "scaler" in checkpoint,
        "report": (run / "report.html").is_file(),
        "test_dice": dice,
        "ok": dice >= MIN_DICE and _epochs_logged(run) == 30 and (run / "report.html").is_file(),
    }


def check_float16(work: Path) -> dict:
    from medseg.engine.device import autocast_dtype
    from medseg.engine.trainer import train
    from medseg.evaluation import evaluate_run
    from medseg.resolve import load_resolved

    torch.cuda.is_bf16_supported = lambda *args, **kwargs: False  # as on a GPU without bf16 (pre-Ampere)
    if autocast_dtype(torch.device("cuda"), True) != torch.float16:
        raise RuntimeError("autocast did not fall back to float16")
    run = work / "fp16"
    cfg = load_resolved(str(CONFIG), ["train.device=cuda", f"output_dir={work}"])
    result = train(cfg, run, show_progress=False)
    checkpoint = torch.load(run / "last.pt", map_location="cpu", weights_only=False)
    dice = evaluate_run(run, "test")["metrics"]["dice"]["mean"]
    scale = checkpoint.get("scaler", {}).get("scale")
    return {
        "minutes": result.seconds / 60,
        "scaler_scale": scale,
        "test_dice": dice,
        "ok": scale is not None and dice >= MIN_DICE,
    }


def check_collectives(device: torch.device) -> dict:
    import torch.distributed as dist
    from torch import nn

    from medseg.engine.distributed import (
        DistributedBatchNorm2d,
        average_gradients,
        broadcast_weights,
        sync_batchnorm,
    )
    from medseg.models import build_model

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29517")
    dist.init_process_group("cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo", rank=0, world_size=1)
    try:
        model = build_model({"name": "unet", "features": [8, 16, 32, 64, 128]}).to(device)
        model = sync_batchnorm(model, device)
        batch_norms = sum(isinstance(m, nn.SyncBatchNorm | DistributedBatchNorm2d) for m in model.modules())
        broadcast_weights(model)
        model.train()
        model(torch.randn(4, 1, 64, 64, device=device)).float().square().mean().backward()
        before = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        average_gradients(model, 1)
        after = [p.grad for p in model.parameters() if p.grad is not None]
        unchanged = all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
        flag = torch.ones(1, device=device)
        dist.all_reduce(flag)
        return {
            "backend": str(dist.get_backend()),
            "sync_batchnorm_layers": batch_norms,
            "gradients_unchanged_by_world_1_average": unchanged,
            "ok": unchanged and batch_norms > 0 and flag.item() == 1.0,
        }
    finally:
        dist.destroy_process_group()


def check_speed(size: int, batch: int, device: torch.device, steps: int) -> dict:
    from medseg.sweep.step_speed import measure_method_step

    rows = [
        measure_method_step(text, [16, 32, 64, 128, 256], size, batch, steps, True, device=device)
        for text in SPEED_METHODS
    ]
    base = rows[0]["seconds_per_step"]
    for row in rows:
        row["x_supervised"] = row["seconds_per_step"] / base
    return {"size": size, "batch": batch, "rows": rows, "ok": True}


def check_tests(out: Path, seconds: int, tests: list[str]) -> dict:
    import xml.etree.ElementTree as ElementTree

    report = out / "pytest.xml"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout=300", f"--junitxml={report}"]
    if importlib.util.find_spec("xdist"):  # pytest-xdist: as many one-thread workers as cores, up to 14
        command += ["-n", str(min(os.cpu_count() or 1, 14))]
    command += [*tests]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with (out / "pytest.log").open("w") as log:
        try:
            subprocess.run(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=seconds)
        except subprocess.TimeoutExpired:
            return {"finished": False, "ok": False}
    cases = ElementTree.parse(report).getroot().iter("testcase")
    failed = {}
    for case in cases:
        for problem in [*case.iter("failure"), *case.iter("error")]:
            failed[f"{case.get('classname')}::{case.get('name')}"] = (problem.get("message") or "")[:300]
    return {"finished": True, "failed": failed, "ok": not failed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cpu-dry-run", action="store_true", help="the same checks on the CPU (float16 left out)")
    parser.add_argument("--tests", type=int, metavar="SECONDS", help="also run the test suite, for at most SECONDS")
    parser.add_argument("--test-paths", nargs="+", default=["tests"], help="what --tests runs (pytest arguments)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    device = torch.device("cpu" if args.cpu_dry_run else "cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("no CUDA device here")
    env = {"torch": torch.__version__, "cuda": torch.version.cuda, "cpu_threads": torch.get_num_threads()}
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(0)
        env |= {
            "gpu": properties.name,
            "capability": f"{properties.major}.{properties.minor}",
            "memory_gib": properties.total_memory / 2**30,
            "bf16": torch.cuda.is_bf16_supported(),
        }
    print(json.dumps(env), flush=True)
    work = Path(tempfile.mkdtemp(prefix="medseg-cuda-"))
    steps = 2 if args.cpu_dry_run else 20
    checks = [
        ("bf16_train_kill_resume_evaluate", lambda: check_bf16_resume(work, device.type)),
        ("nccl_collectives", lambda: check_collectives(device)),
        ("speed_96_batch16", lambda: check_speed(96, 16, device, steps)),
        ("speed_256_batch16", lambda: check_speed(256, 16, device, steps)),
    ]
    if args.tests:  # in its own processes, before the float16 check patches bf16 support away in this one
        checks.append(("test_suite", lambda: check_tests(args.out, args.tests, args.test_paths)))
    if device.type == "cuda":
        checks.append(("float16_gradscaler_train_evaluate", lambda: check_float16(work)))
    failed = 0
    for name, check in checks:
        started = time.perf_counter()
        try:
            row = check()
        except Exception:  # noqa: BLE001 - every check runs and reports, whatever the one before did
            row = {"ok": False, "error": traceback.format_exc()}
        row = {"check": name, "seconds": time.perf_counter() - started, **env, **row}
        failed += not row["ok"]
        print(json.dumps(row), flush=True)
        with (args.out / "cuda_check.jsonl").open("a") as handle:
            handle.write(json.dumps(row) + "\n")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
