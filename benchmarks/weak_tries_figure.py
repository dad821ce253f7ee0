"""What each classifier try of a weak run looks at: for a few validation lesion slices, the image with its true
outline, then each try's map (the run's `weak.maps`, without the CRF or the body prior, so that the classifier's
own evidence shows). Each row's title is the validation pointing game weak.json recorded for the try, measured on
the recipe's maps (with its CRF and body prior where it has them).

    .venv/bin/python benchmarks/weak_tries_figure.py runs/bench-weak/lgg/seed1/weak --out benchmarks/weak-tries-lgg.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib
import numpy as np
import torch

from medseg.config import load_config
from medseg.data.dataset import iterate_batches
from medseg.inference import Predictor
from medseg.resolve import resolve_config
from medseg.run_folder import RunFolder
from medseg.weak.seeds import batch_maps
from medseg.weak.stages import true_dataset

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a weak run folder with classifier_tries in its weak.json")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--slices", type=int, default=8)
    args = parser.parse_args()
    run = RunFolder(args.run)
    cfg = resolve_config(load_config(run.weak_config_path))
    cfg = cfg.model_copy(update={"weak": cfg.weak.model_copy(update={"refine": "none", "body_margin": None})})
    tries = json.loads(run.weak_path.read_text())["classifier_tries"]
    figure, axes = plt.subplots(1 + len(tries), args.slices, figsize=(2 * args.slices, 2.1 * (1 + len(tries))))
    for row, attempt in enumerate(tries, start=1):
        classifier = RunFolder(args.run / attempt["folder"])
        predictor, dataset = Predictor.load(classifier.path, "best"), true_dataset(cfg, classifier)
        lesion = [r for r in dataset.rows("val") if (dataset.store.mask(r) == 1).any()]
        rows = np.array(lesion[:: max(1, len(lesion) // args.slices)][: args.slices])
        batch = next(iterate_batches(dataset.store, rows, len(rows), labels=dataset.labels))
        images, labels = batch["image"].to(predictor.device), torch.ones(len(rows), dtype=torch.long)
        maps = batch_maps(predictor, images, labels.to(predictor.device), cfg)
        for k in range(len(rows)):
            truth = batch["mask"][k].numpy() == 1
            if row == 1:
                axes[0, k].imshow(batch["image"][k, :3].permute(1, 2, 0).numpy().clip(0, 1).squeeze())
                axes[0, k].contour(truth, colors="r", linewidths=0.6)
            axes[row, k].imshow(maps[k, 0].numpy(), cmap="jet", vmin=0, vmax=1)
            axes[row, k].contour(truth, colors="w", linewidths=0.6)
        axes[row, 0].set_title(
            f"{attempt['folder']} (seed {attempt['seed']}): validation pointing {attempt['val_pointing_game']:.2f}",
            loc="left",
            fontsize=9,
        )
    for axis in axes.flat:
        axis.axis("off")
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=50)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
