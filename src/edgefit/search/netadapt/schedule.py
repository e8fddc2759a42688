"""The resource-reduction schedule of NetAdapt.

Iteration ``i`` (from 0) must cut each budgeted resource by
``delta_i = initial * decay**i * start`` below the previous network, where
``start`` is the unadapted network's value: the reference code's defaults are
``initial = 0.025`` (2.5%) and ``decay = 0.96``. The per-iteration target is
``max(previous - delta_i, budget)``, so the last iteration lands on the budget.

>>> [round(reduction(100.0, i), 4) for i in range(3)]
[2.5, 2.4, 2.304]
>>> targets(100.0, 95.0, 90.0, 0)   # 95 - 2.5
92.5
>>> targets(100.0, 91.0, 90.0, 1)   # 91 - 2.4 is below the budget
90.0
"""

from __future__ import annotations

INITIAL = 0.025
DECAY = 0.96


def reduction(start: float, iteration: int, *, initial: float = INITIAL, decay: float = DECAY) -> float:
    """``delta_i = initial * decay**iteration * start``: how much iteration ``iteration`` must cut."""
    return initial * decay**iteration * start


def targets(
    start: float, previous: float, budget: float, iteration: int, *, initial: float = INITIAL, decay: float = DECAY
) -> float:
    """The resource a proposal of ``iteration`` may use: ``max(previous - delta_i, budget)``."""
    return max(previous - reduction(start, iteration, initial=initial, decay=decay), budget)
