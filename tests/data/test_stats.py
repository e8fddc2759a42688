"""Mean and spread over seeds, against hand-computed values."""

import math

import pytest

from edgefit.data.stats import Spread
from edgefit.errors import ConfigError


def test_spread_of_three_accuracies():
    # 351, 353, 352 of 360 test images
    s = Spread.of([351 / 360, 353 / 360, 352 / 360])
    assert s.n == 3
    assert s.mean == pytest.approx(352 / 360)
    assert (s.min, s.max) == (351 / 360, 353 / 360)
    # sample std of (-1, +1, 0) images = 1 image = 1/360
    assert s.std == pytest.approx(1 / 360)
    assert s.percent() == "97.78% (97.50..98.06, std 0.28, 3 seeds)"


def test_spread_of_one_value_has_no_std():
    s = Spread.of([0.5])
    assert s.std == 0.0 and s.percent() == "50.00% (50.00..50.00, std 0.00, 1 seed)"


def test_mean_is_exact_summation():
    assert Spread.of([0.1] * 10).mean == 0.1
    assert math.isclose(Spread.of([1e16, 1.0, -1e16]).mean, 1 / 3)


def test_empty_spread_is_an_error():
    with pytest.raises(ConfigError, match="at least one value"):
        Spread.of([])
