"""The registered selection strategies, one file each."""

from medseg.selection.strategies import (  # noqa: F401  (registration)
    diversity,
    foreground_random,
    random_draw,
    stratified,
    uncertain_diverse,
    uncertainty,
)
