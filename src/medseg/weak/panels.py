"""Pictures of what the weakly supervised path did on a few test slices, for the run's report: the image, the
classifier's map, the refined pseudo-mask the thresholds make of it, the segmentation network's prediction, the
true mask."""

from __future__ import annotations

import json

import numpy as np
import torch

from medseg.atomic import atomic_path
from medseg.data.dataset import prepare_dataset
from medseg.inference import Predictor
from medseg.methods.classification import image_labels
from medseg.overlay import to_display
from medseg.run_folder import RunFolder
from medseg.weak.seeds import batch_maps, pseudo_masks_of

__all__ = ["write_panels"]


def write_panels(run: RunFolder, cfg, count: int = 4) -> list:
    """`<run>/weak_panels/panel_<k>_<case>.png` for the `count` test slices with the largest lesions and one
    without; returns the files written (replacing earlier ones)."""
    folder = run.weak_panels_path
    for old in folder.glob("*.png"):
        old.unlink()
    classifier = Predictor.load(run.classifier.path, "best")
    segmenter = Predictor.load(run.path)
    data = segmenter.cfg.data.model_copy(update={"mask_override": None})
    dataset = prepare_dataset(data, segmenter.cfg.seed, run.splits())
    rows = dataset.rows("test")
    sizes = np.array([int((dataset.store.mask(r) == 1).sum()) for r in rows])
    chosen = [*rows[np.argsort(-sizes)[:count]], *rows[sizes == 0][:1]]
    thresholds = json.loads(run.weak_path.read_text())["stage1"]["thresholds"]
    written = []
    for k, row in enumerate(chosen):
        image = torch.from_numpy(dataset.store.image(row).astype(np.float32))[None]
        batch = {"image": image, "mask": torch.from_numpy(dataset.store.mask(row).astype(np.int64))[None]}
        batch["label"] = torch.from_numpy(dataset.labels[[row]])
        labels = image_labels(batch, classifier.method.label_from, classifier.method.classes)
        maps = batch_maps(classifier, image.to(classifier.device), labels.to(classifier.device), cfg)
        split = {"maps": maps, "labels": labels}
        pseudo = pseudo_masks_of(split, cfg, thresholds["foreground"], thresholds["background"])[0]
        prediction = segmenter.masks(image)[0]
        path = folder / f"panel_{k}_{dataset.store.ids[row].replace('/', '__')}.png"
        _figure(path, image[0].numpy(), maps[0, 0].numpy(), pseudo, prediction, batch["mask"][0].numpy())
        written.append(path)
    return written


def _figure(path, image, weights, pseudo, prediction, truth) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    shown = to_display(image)
    figure, axes = plt.subplots(1, 5, figsize=(11, 2.5), dpi=100, constrained_layout=True)
    panels = [
        ("image", None),
        ("map", weights),
        ("pseudo-mask (grey: unknown)", np.where(pseudo == 255, 0.5, pseudo.astype(np.float32))),
        ("prediction", prediction.astype(np.float32)),
        ("truth", (truth > 0).astype(np.float32)),
    ]
    for axis, (title, values) in zip(axes, panels, strict=True):
        axis.imshow(shown)
        if values is not None:
            axis.imshow(values, cmap="jet" if title == "map" else "magma", alpha=0.5, vmin=0, vmax=1)
        axis.set_title(title, fontsize=8)
        axis.axis("off")
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, format="png")
    plt.close(figure)
