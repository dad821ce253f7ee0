"""`medseg explain`: attention-map overlays for 2-D input images, written atomically."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from medseg.data.dataset import preprocessing_of
from medseg.data.store import preprocess_image
from medseg.errors import DataError
from medseg.explain.attention_maps import spatial_attention_maps
from medseg.inference import Predictor
from medseg.overlay import heatmap, save_png
from medseg.predict import expand_inputs, read_slice

__all__ = ["explain_paths"]


def explain_paths(target: str | Path, inputs: list[str | Path], out_dir: str | Path) -> Iterator[Path]:
    """For every 2-D input, one `<stem>_<block>.png` per spatial attention map, drawn over the preprocessed
    image (at the model's input size); yields each file written.

    Raises:
        DataError: a NIfTI volume among the inputs (explain slices instead).
        ValueError: the run's model has no spatial attention.
    """
    predictor = Predictor.load(target)
    settings = preprocessing_of(predictor.cfg.data)
    out_dir = Path(out_dir)
    for path in expand_inputs(inputs):
        if path.name.endswith((".nii", ".nii.gz")):
            raise DataError(path, "explain draws 2-D images; pass slices (PNG/TIFF/.mat), not a volume")
        image = preprocess_image(read_slice(path), settings, str(path))  # (C, S, S)
        batch = torch.from_numpy(image)[None].to(predictor.device)
        for name, weights in spatial_attention_maps(predictor.model, batch).items():
            target_path = out_dir / f"{path.stem}_{name.replace('.', '-')}.png"
            save_png(target_path, heatmap(image, weights[0, 0].cpu().numpy().astype(np.float32)))
            yield target_path
