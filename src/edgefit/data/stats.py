"""Figures over several seeds: a mean with its spread.

On the digits test split one image is 0.28 percentage points, and two CPUs running
the same seeded recipe can round differently and land a few images apart. A single
run's accuracy is therefore not a claim; edgefit reports the mean over at least three
seeds with its min..max and standard deviation, and judges targets on the mean.

>>> s = Spread.of([0.975, 0.9806, 0.9778])
>>> round(s.mean, 4), s.min, s.max, s.n
(0.9778, 0.975, 0.9806, 3)
>>> s.percent()
'97.78% (97.50..98.06, std 0.28, 3 seeds)'
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from edgefit.errors import ConfigError

MIN_SEEDS = 3


@dataclass(frozen=True)
class Spread:
    """Values of one figure over seeds.

    Attributes:
        values: one value per seed, in seed order.
    """

    values: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.values:
            raise ConfigError("a spread needs at least one value")

    @classmethod
    def of(cls, values: Iterable[float]) -> Spread:
        return cls(tuple(float(v) for v in values))

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return math.fsum(self.values) / self.n

    @property
    def min(self) -> float:
        return min(self.values)

    @property
    def max(self) -> float:
        return max(self.values)

    @property
    def std(self) -> float:
        """Sample standard deviation (``n - 1``); 0 for one value."""
        if self.n < 2:
            return 0.0
        m = self.mean
        return math.sqrt(math.fsum((v - m) ** 2 for v in self.values) / (self.n - 1))

    def percent(self, scale: float = 100.0, unit: str = "%") -> str:
        """``mean (min..max, std s, n seeds)`` of fractions shown as percentages."""
        return (f"{scale * self.mean:.2f}{unit} ({scale * self.min:.2f}..{scale * self.max:.2f}, "
                f"std {scale * self.std:.2f}, {self.n} seed{'s' if self.n != 1 else ''})")
