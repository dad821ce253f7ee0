"""Explanation figures for a run's report: the evaluated split's best and worst cases, explained the way the
model allows (its attention blocks' maps where it has them, else ACAM / CAM for a classifier, else Grad-CAM of
the predicted region)."""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from medseg.csv_cells import read_cell
from medseg.data.dataset import prepare_dataset
from medseg.explain.attention_maps import spatial_attention_maps
from medseg.explanations.outputs import explain_image
from medseg.inference import Predictor
from medseg.models.classifier import Classifier
from medseg.overlay import explanation_figure
from medseg.run_folder import RunFolder

__all__ = ["write_gallery", "gallery_method"]


def gallery_method(predictor: Predictor, image: torch.Tensor) -> str:
    """attention | acam | cam | gradcam: what explains this model best for one image `(1, C, S, S)`."""
    model = predictor.model
    if isinstance(model, Classifier):
        return "acam" if model.pool == "attention" else "cam"
    try:
        with torch.no_grad():
            return "attention" if spatial_attention_maps(model, image) else "gradcam"
    except ValueError:  # no block with a spatial map
        return "gradcam"


def write_gallery(run_dir: str | Path, split: str = "test", count: int = 2, mode: str | None = None) -> list[Path]:
    """Figures for the `count` best and worst cases of `eval/<split>/cases.csv` (for a classifier: the first
    cases of the split) into `eval/<split>/explain/`, explaining the model in inference `mode` (as evaluated);
    returns the PNGs written (replacing earlier ones)."""
    run = RunFolder(run_dir)
    folder = run.eval_dir(split) / "explain"
    for old in folder.glob("*.png"):
        old.unlink()
    predictor = Predictor.load(run.path, mode=mode)
    predictor.cfg.eval.tta = False
    cfg = predictor.cfg
    dataset = prepare_dataset(cfg.data.model_copy(update={"mask_override": None}), cfg.seed, run.splits())
    cases = run.cases_path(split)
    if predictor.method.task == "segmentation" and cases.is_file():
        with cases.open() as handle:
            ranked = sorted(csv.DictReader(handle), key=lambda row: float(row["dice"]))
        chosen = [("worst", read_cell(r["id"])) for r in ranked[:count]]
        chosen += [("best", read_cell(r["id"])) for r in ranked[::-1][:count]]
    else:
        chosen = [("case", dataset.store.ids[int(r)]) for r in dataset.rows(split)[: 2 * count]]
    written = []
    for kind, case_id in chosen:
        row = dataset.store.position[case_id]
        image = torch.from_numpy(dataset.store.image(row).astype("float32"))[None].to(predictor.device)
        method = gallery_method(predictor, image)
        maps = list(explain_image(predictor, image, method).items())
        for name, weights in maps[-2:]:  # with many attention blocks, the two deepest decoder-side ones
            label = name.replace(".", "-").replace("+", "p")
            path = folder / f"{kind}_{case_id.replace('/', '__')}_{label}.png"
            explanation_figure(path, image[0].cpu().numpy(), weights[0, 0].cpu().numpy(), f"{method}: {name}")
            written.append(path)
    return written
