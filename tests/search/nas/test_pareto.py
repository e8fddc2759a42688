import pytest

from edgefit.errors import ConfigError
from edgefit.search.nas.pareto import domination_counts, hypervolume_2d, pareto_front

MAX_MIN = ("maximize", "minimize")
# (accuracy, latency) made by hand: b, d and f are dominated
POINTS = [
    (0.95, 5.0),  # a: front (most accurate)
    (0.90, 6.0),  # b: dominated by a and by c (same accuracy, faster)
    (0.90, 3.0),  # c: front
    (0.80, 3.0),  # d: dominated by c
    (0.70, 1.0),  # e: front (fastest)
    (0.60, 2.0),  # f: dominated by e only (c and d are slower)
]


def test_front_of_hand_made_set():
    assert pareto_front(POINTS, MAX_MIN) == [0, 2, 4]
    assert domination_counts(POINTS, MAX_MIN) == [0, 2, 0, 1, 0, 1]


def test_directions_matter_and_ties_are_kept():
    assert pareto_front([(1.0, 1.0), (2.0, 2.0)], ("minimize", "minimize")) == [0]
    assert pareto_front([(1.0, 1.0), (2.0, 2.0)], ("maximize", "maximize")) == [1]
    assert pareto_front([(1.0, 1.0), (1.0, 1.0)], ("minimize", "minimize")) == [0, 1]


def test_hypervolume_by_hand():
    # reference (accuracy 0.5, latency 7): front a, c, e as cost rectangles
    # a: (0.45 x 2) ; c adds (0.40 x 2) below latency 5 ; e adds (0.20 x 2) below latency 3
    assert hypervolume_2d(POINTS, MAX_MIN, (0.5, 7.0)) == pytest.approx(0.9 + 0.8 + 0.4)
    # dominated points add nothing
    front = [POINTS[i] for i in (0, 2, 4)]
    assert hypervolume_2d(front, MAX_MIN, (0.5, 7.0)) == hypervolume_2d(POINTS, MAX_MIN, (0.5, 7.0))
    assert hypervolume_2d([(0.4, 1.0)], MAX_MIN, (0.5, 7.0)) == 0.0
    with pytest.raises(ConfigError):
        hypervolume_2d([(1, 2, 3)], ("minimize",) * 3, (0, 0, 0))
