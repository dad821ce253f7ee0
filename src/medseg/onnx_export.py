"""ONNX deployment: export a trained run's inference (probabilities, with the method's own head averaging and
the chosen U-Net++ pruning) to one `.onnx` file carrying the run's config, and predict from it with
onnxruntime. `OnnxPredictor` imports no model, method or training code.

The graph has dynamic batch, height and width: `image (B, C, H, W)` float32, preprocessed as in training →
`probabilities (B, K, H, W)` (K = 1: the foreground probability).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medseg.atomic import atomic_path
from medseg.config import Config
from medseg.errors import DataError
from medseg.locking import remove_temporary_copies
from medseg.postprocess import average_over_flips, masks_from_probabilities
from medseg.windows import window_probabilities, window_size

__all__ = ["export_onnx", "OnnxPredictor", "CONFIG_KEY"]

CONFIG_KEY = "medseg_config"


class _Probabilities(torch.nn.Module):
    """The method's inference as one module: `(B, C, H, W)` → `(B, K, H, W)` float32 probabilities."""

    def __init__(self, method, model: torch.nn.Module) -> None:
        super().__init__()
        self.method, self.model = method, model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.method.predict(self.model, images).float()


def export_onnx(
    target: str | Path,
    out: str | Path,
    mode: str | None = None,
    which: str | None = None,
    int8_calibration: int | None = None,
) -> Path:
    """Export `target` (a run folder or checkpoint) to `out`, written atomically.

    Args:
        which: a run folder's "best" or "last" checkpoint; None: the run's `eval.checkpoint`.
        mode: inference mode of a multi-head model ("ensemble", "prune=L", "head=K").
        int8_calibration: quantise to INT8 (`medseg.onnx_int8`), calibrated on this many training images of the
            run; None: float32.

    Raises:
        ValueError: the model or method cannot be exported (the message names it and why), or INT8 asked of a
            checkpoint file (its calibration reads the run folder's training split).
    """
    if int8_calibration is not None and not Path(target).is_dir():
        raise ValueError(f"{target}: INT8 calibrates on the run's training images: give the run folder")
    import onnx

    from medseg.inference import Predictor

    predictor = Predictor.load(target, which, device="cpu", mode=mode)
    module = _Probabilities(predictor.method, predictor.model.float().to(memory_format=torch.contiguous_format)).eval()
    size, channels = predictor.cfg.data.size, predictor.cfg.data.channels
    example = torch.randn(2, channels, size, size)
    dynamic = {"images": {0: torch.export.Dim.AUTO, 2: torch.export.Dim.AUTO, 3: torch.export.Dim.AUTO}}
    try:
        program = torch.onnx.export(
            module,
            (example,),
            dynamo=True,
            input_names=["image"],
            output_names=["probabilities"],
            dynamic_shapes=dynamic,
            verbose=False,
        )
    except Exception as error:  # the exporter raises many types; name the model and method instead
        name, method = predictor.cfg.model["name"], predictor.cfg.method["name"]
        raise ValueError(f"{target}: model {name!r} with method {method!r} could not be exported: {error}") from error
    proto = program.model_proto
    config = predictor.cfg.model_dump(mode="json")
    entry = proto.metadata_props.add()
    entry.key, entry.value = CONFIG_KEY, json.dumps(config)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_temporary_copies(out)  # what a killed export of this file left
    with atomic_path(out, suffix=".onnx") as tmp:
        onnx.save_model(proto, str(tmp))
        if int8_calibration is not None:
            from medseg.onnx_int8 import calibration_images, quantize_onnx

            quantize_onnx(tmp, tmp, calibration_images(target, int8_calibration))
    return out


@dataclass
class OnnxPredictor:
    """An exported model in onnxruntime, with the same `probabilities` / `masks_from` as `Predictor`."""

    cfg: Config
    session: object

    @classmethod
    def load(cls, path: str | Path, threads: int | None = None) -> OnnxPredictor:
        """Args:
            threads: onnxruntime's intra-op threads (default: its own choice, one per core).

        Raises:
            DataError: the file is missing, not an ONNX model, or not exported by medseg.
        """
        import onnxruntime

        path = Path(path)
        if not path.is_file():
            raise DataError(path, "ONNX model not found")
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        try:
            session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:
            raise DataError(path, f"not a readable ONNX model ({error})") from None
        meta = session.get_modelmeta().custom_metadata_map
        if CONFIG_KEY not in meta:
            raise DataError(path, "this ONNX model was not exported by `medseg export` (no medseg config inside)")
        try:
            cfg = Config.model_validate(json.loads(meta[CONFIG_KEY]))
        except (ValueError, RecursionError) as error:  # JSONDecodeError and pydantic's ValidationError are ValueErrors
            problem = "nested too deeply" if isinstance(error, RecursionError) else str(error).splitlines()[0]
            message = f"the medseg config inside is not readable ({problem}): export the run again"
            raise DataError(path, message) from None
        channels = session.get_inputs()[0].shape[1]
        if isinstance(channels, int) and channels != cfg.data.channels:
            raise DataError(
                path, f"its config says data.channels={cfg.data.channels} but the graph takes {channels}: export again"
            )
        return cls(cfg, session)

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """`(B, C, H, W)` preprocessed images → `(B, K, H, W)` float32 probabilities (flip TTA per `eval.tta`)."""

        def predict(batch: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(self.session.run(None, {"image": batch.contiguous().numpy()})[0])

        window = window_size(self.cfg)
        if window is not None:
            whole = predict
            predict = lambda batch: window_probabilities(whole, batch, window, self.cfg.eval.overlap)  # noqa: E731
        return average_over_flips(predict, images.float(), self.cfg.eval.tta)

    def masks_from(self, probs: torch.Tensor) -> np.ndarray:
        return masks_from_probabilities(probs, self.cfg.eval.threshold, self.cfg.eval.largest_component)
