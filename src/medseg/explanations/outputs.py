"""`medseg explain`: explanation figures (image beside the map, with a colour bar) and raw maps (`.npy`)
for 2-D input images, written atomically."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from medseg.atomic import atomic_path
from medseg.data.dataset import preprocessing_of
from medseg.data.store import preprocess_image
from medseg.errors import DataError
from medseg.explain import EXPLAINERS, Request
from medseg.explain.targets import class_target, normalise, region_target
from medseg.inference import Predictor
from medseg.models.classifier import Classifier
from medseg.overlay import explanation_figure
from medseg.predict import output_settings, plan_outputs, read_input

REGIONS = ("predicted", "all")

__all__ = ["explain_paths", "explain_image"]


def _layer(model: torch.nn.Module, name: str | None) -> tuple[torch.nn.Module, ...] | None:
    if name is None:
        return None
    modules = dict(model.named_modules())
    if name not in modules:
        raise ValueError(f"--layer {name!r} is not a module of {type(model).__name__}; e.g. {list(modules)[1:6]}")
    return (modules[name],)


def explain_image(
    predictor: Predictor,
    image: torch.Tensor,
    method: str,
    class_index: int | None = None,
    layer: str | None = None,
    region: str = "predicted",
) -> dict[str, torch.Tensor]:
    """Maps `{name: (1, 1, S, S)}` in [0, 1] for one preprocessed image `(1, C, S, S)` on the model's device.

    Args:
        method: a registered explanation method (`medseg.explain.EXPLAINERS`).
        class_index: the class explained (default: a classifier's top class; a segmentation model's
            foreground channel).
        layer: module name the method reads (default: the method's deepest encoder stages).
        region: for segmentation models, "predicted" (the class logit summed over the predicted mask) or
            "all" (over every pixel).

    Raises:
        ValueError: an unknown method, or one the model cannot give (CAM needs a classifier; ACAM its attention
            pooling; attention maps an attention block).
    """
    model = predictor.model
    if region not in REGIONS:
        raise ValueError(f"--region must be one of {list(REGIONS)}, got {region!r}")
    explainer = EXPLAINERS[method]()
    explainer.check(model)
    if isinstance(model, Classifier):
        with torch.no_grad():
            index = _class(class_index, model(image))
        target = class_target(index)
    else:
        with torch.no_grad():
            probs = predictor.probabilities(image)
        index = _class(class_index, probs, default=0 if probs.shape[1] == 1 else 1)
        mask = torch.from_numpy(predictor.masks_from(probs)).to(image.device)
        chosen = (mask == (1 if probs.shape[1] == 1 else index)).float()
        target = region_target(index, chosen if region == "predicted" and chosen.any() else None)
    request = Request(model, image.float(), target, index, _layer(model, layer))
    maps = explainer.named_maps(request)
    return maps if not explainer.single_map else {name: normalise(m) for name, m in maps.items()}


def _class(class_index: int | None, outputs: torch.Tensor, default: int | None = None) -> int:
    """The class explained: `class_index`, checked against the model's `outputs` `(B, K, ...)`, else `default`
    (else the top class of the first image).

    Raises:
        ValueError: a class the model has no output for.
    """
    classes = outputs.shape[1]
    if class_index is None:
        return default if default is not None else int(outputs.argmax(1)[0])
    if not 0 <= class_index < classes:
        raise ValueError(f"--class {class_index}: this model has {classes} output channel(s), 0 to {classes - 1}")
    return class_index


def explain_paths(
    target: str | Path,
    inputs: list[str | Path],
    out_dir: str | Path,
    method: str = "attention",
    class_index: int | None = None,
    layer: str | None = None,
    region: str = "predicted",
) -> Iterator[Path]:
    """For every 2-D input, `<name>_<map>.png` (the image beside its map) and `<name>_<map>.npy` (the map,
    `(S, S)` float32 in [0, 1] at the model's input size) per map; yields each PNG written. `<name>` is named as
    `medseg predict` names its outputs (`medseg.predict.plan_outputs`): the input's path under its folder argument,
    mirrored under `out_dir`.

    Raises:
        DataError: a NIfTI volume among the inputs (explain slices instead).
        ValueError: a method the run's model cannot give.
    """
    if region not in REGIONS:
        raise ValueError(f"--region must be one of {list(REGIONS)}, got {region!r}")
    predictor = Predictor.load(target)
    predictor.cfg.eval.tta = False
    settings = preprocessing_of(predictor.cfg.data)
    out_dir = Path(out_dir)
    # predict's naming: each input's path relative to its folder argument, mirrored under out_dir, no two inputs
    # sharing a name (a/x.png and b/x.png stay apart); out_dir's contents are never inputs
    for planned in plan_outputs(inputs, out_dir):
        path = planned.source
        if planned.unit.volume:
            raise DataError(path, "explain draws 2-D images; pass slices (PNG/TIFF/.mat), not a volume")
        (raw,) = read_input(planned.unit, output_settings(predictor.cfg))
        image = preprocess_image(raw, settings, str(path))  # (C, S, S)
        batch = torch.from_numpy(image)[None].to(predictor.device)
        base = str(planned.stem)
        for name, weights in explain_image(predictor, batch, method, class_index, layer, region).items():
            stem = f"{base}_{name.replace('.', '-').replace('+', 'p')}"
            values = weights[0, 0].cpu().numpy().astype(np.float32)
            with atomic_path(Path(f"{stem}.npy"), suffix=".npy") as tmp:
                np.save(tmp, values)
            explanation_figure(Path(f"{stem}.png"), image, values, f"{method}: {name}")
            yield Path(f"{stem}.png")
