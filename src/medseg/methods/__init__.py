"""Training methods, one per supervision regime, registered by name."""

from medseg.methods import (  # noqa: F401  (registration)
    cct,
    cdma,
    classification,
    cps,
    entropy_minimization,
    mcnet,
    mean_teacher,
    supervised,
    ua_mt,
    urpc,
    wsr,
)
from medseg.methods.base import METHODS, Method, register_method

__all__ = ["METHODS", "Method", "register_method"]
