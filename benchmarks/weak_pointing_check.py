"""Where does a weak run's classifier point? The pointing game of simple variants of its class map, beside a
map-free baseline (the image's brightest smoothed region), on the first `--rows` slices of the training and
validation splits; single view, deepest stage. For a classifier whose maps do not localise (figshare's tumour
types), it tells whether another map of the same classifier would.

    .venv/bin/python benchmarks/weak_pointing_check.py runs/bench-weak/figshare/seed0/weak --rows 300
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from scipy import ndimage

from medseg.config import load_config
from medseg.data.dataset import iterate_batches
from medseg.explain.maps import pointing_hits
from medseg.explain.targets import to_input_size
from medseg.inference import Predictor
from medseg.methods.classification import image_labels
from medseg.run_folder import RunFolder
from medseg.weak.body import body_regions
from medseg.weak.stages import true_dataset


def variant_maps(model, images: torch.Tensor, labels: torch.Tensor, classes: int) -> dict[str, torch.Tensor]:
    """`(B, C, S, S)` images, `(B,)` class indices → each variant's `(B, 1, S, S)` map."""
    size, index = images.shape[-2:], torch.arange(len(labels))
    with torch.no_grad():
        raw = torch.stack([model.class_activation_map(images, c, weighted=False)[:, 0] for c in range(classes)], 1)
    own = raw[index, labels]
    others = raw.clone()
    others[index, labels] = float("-inf")
    mean_others = (raw.sum(1) - own) / max(classes - 1, 1)
    up = lambda m: to_input_size(m[:, None], *size)  # noqa: E731
    cam = up(torch.relu(own))
    smoothed = ndimage.gaussian_filter(images.float().mean(1).numpy(), (0, 3, 3))
    maps = {"cam": cam, "cam inside the head": cam * body_regions(images, 0.05)}
    if classes > 1:  # class-contrastive maps: what sets the slice's own class apart from the others
        maps["own minus strongest other"] = up(torch.relu(own - others.amax(1)))
        maps["own minus mean other"] = up(torch.relu(own - mean_others))
    return {**maps, "brightest region (no classifier)": torch.from_numpy(smoothed)[:, None]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weak_run", type=Path)
    parser.add_argument("--rows", type=int, default=300)
    args = parser.parse_args()
    run = RunFolder(args.weak_run)
    cfg, classifier = load_config(run.weak_config_path), run.classifier
    predictor = Predictor.load(classifier.path, "best")
    dataset = true_dataset(cfg, classifier)
    classes = predictor.cfg.model["out_channels"]
    for split in ("train", "val"):
        hits: dict[str, list[torch.Tensor]] = {}
        for batch in iterate_batches(dataset.store, dataset.rows(split)[: args.rows], 32, labels=dataset.labels):
            labels = image_labels(batch, predictor.method.label_from, predictor.method.classes)
            if classes == 1:  # "lesion present": its one logit
                labels = torch.zeros_like(labels)
            lesion = (batch["mask"] == 1).flatten(1).any(1)  # the pointing game is played on lesion slices
            images, labels, masks = batch["image"][lesion].float(), labels[lesion], batch["mask"][lesion]
            for name, maps in variant_maps(predictor.model.eval(), images, labels, classes).items():
                hits.setdefault(name, []).append(pointing_hits(maps, masks))
        print(split, {name: round(float(torch.cat(h).mean()), 3) for name, h in hits.items()})


if __name__ == "__main__":
    main()
