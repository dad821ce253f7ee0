"""INT8 CPU inference: post-training static quantisation of an exported model with ONNX Runtime's quantiser.

Weights are quantised per output channel to int8, activations to uint8 with ranges calibrated on images spread
evenly over the run's own training split, labelled and unlabelled (preprocessed as in training), in the QDQ format
that ONNX Runtime runs with integer kernels (VNNI where the CPU has it). The quantised file carries the run's config
like the float one, so `medseg predict --onnx` takes either.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from medseg.atomic import atomic_path
from medseg.errors import DataError

__all__ = ["quantize_onnx", "calibration_images", "PRECISION_KEY"]

PRECISION_KEY = "medseg_precision"


def calibration_images(run_dir: str | Path, count: int, batch: int = 8) -> Iterator[np.ndarray]:
    """Up to `count` preprocessed images `(B, C, H, W)` float32 spread evenly over the run's training images (the
    labelled training cases and the unlabelled ones; no mask is read), in batches of `batch`. Spread, not the first
    `count`: those are a few neighbouring slices of one or two patients, whose ranges miss the others'.

    Raises:
        DataError: the run's training split holds no image.
    """
    from medseg.data.dataset import iterate_batches, prepare_dataset
    from medseg.run_folder import RunFolder

    run = RunFolder(run_dir)
    cfg = run.config
    dataset = prepare_dataset(cfg.data.model_copy(update={"mask_override": None}), cfg.seed, run.splits())
    pool = np.concatenate([dataset.rows("train"), dataset.rows("unlabeled")])
    rows = pool[np.unique(np.linspace(0, len(pool) - 1, min(count, len(pool))).astype(int))] if len(pool) else pool
    if not len(rows):
        raise DataError(run.path, "its training split holds no image to calibrate the INT8 ranges on")
    for part in iterate_batches(dataset.store, rows, batch):
        yield part["image"].numpy().astype(np.float32)


def quantize_onnx(model: str | Path, out: str | Path, images: Iterator[np.ndarray]) -> Path:
    """Quantise the float ONNX file `model` to `out` (written atomically), calibrating activation ranges on
    `images` (batches `(B, C, H, W)` float32), and mark it `int8` in its metadata (the config entry is kept).

    Raises:
        DataError: no calibration image.
    """
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    batches = list(images)
    if not batches:
        raise DataError(model, "no calibration image for the INT8 ranges")

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.pending = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.pending, None)
            return None if batch is None else {"image": batch}

    out = Path(out)
    with tempfile.TemporaryDirectory() as scratch:
        prepared, quantised = Path(scratch) / "prepared.onnx", Path(scratch) / "int8.onnx"
        quant_pre_process(str(model), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(quantised),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
        proto = onnx.load(str(quantised))
        source = onnx.load(str(model), load_external_data=False)
        del proto.metadata_props[:]
        for entry in source.metadata_props:
            if entry.key != PRECISION_KEY:
                proto.metadata_props.add(key=entry.key, value=entry.value)
        proto.metadata_props.add(key=PRECISION_KEY, value="int8")
        with atomic_path(out, suffix=".onnx") as tmp:
            onnx.save_model(proto, str(tmp))
    return out
