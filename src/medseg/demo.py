"""`medseg demo`: phantoms → train a U-Net → evaluate → predict new slices → report, from the packaged
`configs/phantoms-unet.yaml` (the repository's `configs/phantoms-unet.yaml` is the same file)."""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

import numpy as np

from medseg.data.readers.phantoms import make_phantom
from medseg.engine.trainer import train
from medseg.evaluation import evaluate_run
from medseg.inference import Predictor
from medseg.overlay import save_png
from medseg.predict import predict_paths
from medseg.report import write_report
from medseg.resolve import load_resolved
from medseg.ui import console, labelled

__all__ = ["demo_config_path", "run_demo"]


def demo_config_path() -> Path:
    """The demo's config, shipped inside the package."""
    return Path(str(resources.files("medseg") / "configs" / "phantoms-unet.yaml"))


def run_demo(out: str | Path, epochs: int = 12) -> dict:
    """Run the whole path on synthetic data into `out` (its run folder is replaced); returns the test summary."""
    out = Path(out)
    started = time.perf_counter()
    cfg = load_resolved(demo_config_path(), [f"train.epochs={epochs}", f"data.cache_dir={out / 'cache'}"])
    run_dir = out / "run"
    console.print(labelled("1/4 training", "bold", f"a U-Net on {cfg.data.source['count']} phantom slices → {run_dir}"))
    result = train(cfg, run_dir, overwrite=True)
    checkpoint = f"{cfg.eval.checkpoint}.pt"
    console.print(
        labelled("2/4 evaluating", "bold", f"{checkpoint} (val Dice {result.best_val_score:.3f}) on the test split")
    )
    summary = evaluate_run(run_dir, "test")
    dice = summary["metrics"]["dice"]
    console.print(f"    test Dice {dice['mean']:.3f} ± {dice['std']:.3f} over {summary['cases']} slices")
    new_images = out / "new-slices"
    for index in range(4):  # slices the model never saw (another seed)
        image, _ = make_phantom(seed=1, index=index, size=128)
        save_png(new_images / f"new_{index}.png", (np.clip(image, 0, 1) * 255).astype(np.uint8))
    predictions = out / "predictions"
    console.print(labelled("3/4 predicting", "bold", f"{new_images} → {predictions}"))
    written = list(predict_paths(Predictor.load(run_dir), [new_images], predictions, overwrite=True))
    report = write_report(run_dir)
    console.print(labelled("4/4 report", "bold", f"written in {time.perf_counter() - started:.0f} s"))
    console.print(f"  report:            {report}")
    console.print(f"  test overlays:     {run_dir / 'eval' / 'test' / 'overlays'}")
    console.print(f"  predicted masks:   {predictions} ({len(written)} masks + overlays)")
    return summary
