"""Training methods, one per supervision regime, registered by name."""

from medseg.methods import (  # noqa: F401  (registration)
    cdma,
    classification,
    cps,
    entropy_minimization,
    mcnet,
    mean_teacher,
    supervised,
    ua_mt,
    wsr,
)
from medseg.methods.base import METHODS, Method, register_method

__all__ = ["METHODS", "Method", "register_method"]
