"""Segmentation networks, registered by name: `build_model({"name": "unet", ...})`."""

from medseg.models.registry import MODELS, build_model, check_model_spec, register_model
from medseg.models import unet  # noqa: F401  (registration)

__all__ = ["MODELS", "build_model", "check_model_spec", "register_model"]
