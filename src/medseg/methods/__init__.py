"""Training methods, one per supervision regime, registered by name."""

from medseg.methods.base import METHODS, Method, register_method
from medseg.methods import supervised  # noqa: F401  (registration)

__all__ = ["METHODS", "Method", "register_method"]
