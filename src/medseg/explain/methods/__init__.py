"""One file per explanation method; importing this package registers them all."""

from medseg.explain.methods import (  # noqa: F401  (registration)
    acam,
    attention,
    cam,
    eigencam,
    gradcam,
    gradcam_pp,
    hirescam,
    layercam,
    scorecam,
    xgradcam,
)
