"""Training methods, one per supervision regime, registered by name."""

from medseg.methods import (  # noqa: E402, F401, I001  (registration, after the registry exists)
    bcp,
    cct,
    cdma,
    classification,
    cps,
    entropy_minimization,
    fixmatch,
    mcnet,
    mean_teacher,
    msga,
    supervised,
    ua_mt,
    urpc,
    wsr,
)
from medseg.methods.base import METHODS, Method, build_method, complete_method_spec, register_method

__all__ = ["METHODS", "Method", "build_method", "complete_method_spec", "register_method"]
