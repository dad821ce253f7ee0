"""Which cases to annotate next: selection strategies (one file each in `strategies/`, in the `STRATEGIES`
registry), one selection round (`select`, `medseg select`) and the simulated annotation loop (`loop`,
`medseg budget --select`)."""

from medseg.selection.base import STRATEGIES, Strategy, register_strategy
from medseg.selection.pool import Budget, Pick, Pool, Unit

__all__ = ["STRATEGIES", "Strategy", "register_strategy", "Pool", "Pick", "Unit", "Budget"]
