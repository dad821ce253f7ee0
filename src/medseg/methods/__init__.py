"""Training methods, one per supervision regime, registered by name."""

from medseg.methods import cdma, classification, mean_teacher, supervised, wsr  # noqa: F401  (registration)
from medseg.methods.base import METHODS, Method, register_method

__all__ = ["METHODS", "Method", "register_method"]
