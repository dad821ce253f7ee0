"""Segmentation networks, registered by name: `build_model({"name": "unet", ...})`."""

from medseg.models import classifier, msga, mtnet, unet, unetpp  # noqa: F401  (registration)
from medseg.models.base import (
    MODELS,
    build_model,
    check_model_spec,
    complete_model_spec,
    prefers_channels_last,
    register_model,
)
from medseg.models.capabilities import DeepSupervised, MultiBranch, Prunable, inference_modes

__all__ = [
    "MODELS",
    "DeepSupervised",
    "MultiBranch",
    "Prunable",
    "build_model",
    "check_model_spec",
    "complete_model_spec",
    "inference_modes",
    "prefers_channels_last",
    "register_model",
]
