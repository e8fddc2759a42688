"""The lookup table's second take: an entry timed once is timed again later and the faster take kept.

A fake timer gives every take an exact value (its step, a power of two) and the
table's wall clock (``time.time`` as lut reads it) is set by hand: nothing is timed.
"""

from __future__ import annotations

import sqlite3
from types import SimpleNamespace

import pytest
from torch import nn

from edgefit.errors import ConfigError
from edgefit.measure import LatencyTable, lut, predict_latency


class StepTimer:
    """Each call advances the clock by ``step`` seconds, so every take measures ``step``."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


@pytest.fixture
def wall(monkeypatch):
    """The wall clock lut stores and compares entry times with: ``wall.now`` seconds."""
    clock = SimpleNamespace(now=1000.0)
    monkeypatch.setattr(lut, "time", SimpleNamespace(time=lambda: clock.now))
    return clock


def _table(path, timer, after=60.0):
    return LatencyTable(
        path, timer=timer, runs=1, warmup=0, min_sample_s=0, second_take_after_s=after
    )


def _takes(path, key="k"):
    with sqlite3.connect(path) as db:
        return db.execute("SELECT seconds, takes, created FROM latency WHERE key = ?", (key,)).fetchone()


def _calls():
    calls = []
    return calls, lambda: calls.append(1)


def test_an_old_single_take_is_timed_again_once_and_the_minimum_kept(tmp_path, wall):
    timer = StepTimer(4.0)
    table, (calls, fn) = _table(tmp_path / "l.sqlite", timer), _calls()
    assert table.lookup_or_measure("k", fn) == (4.0, False)
    assert _takes(tmp_path / "l.sqlite") == (4.0, 1, 1000.0)
    wall.now, timer.step = 1060.0, 1.0  # 60 s later the host runs the layer in 1 s
    assert table.lookup_or_measure("k", fn) == (1.0, True)
    assert _takes(tmp_path / "l.sqlite") == (1.0, 2, 1000.0)  # created: the first take's time
    assert (table.measured, table.hits, table.second_takes) == (1, 1, 1)
    assert table.second_take_ratios == [0.25]
    timer.step, wall.now = 0.5, 5000.0  # two takes: never timed again by this rule
    assert table.lookup_or_measure("k", fn) == (1.0, True)
    assert len(calls) == 2 and table.second_takes == 1 and table.hits == 2


def test_a_faster_first_take_is_kept_over_a_slower_second(tmp_path, wall):
    timer = StepTimer(1.0)
    table, (_calls_made, fn) = _table(tmp_path / "l.sqlite", timer), _calls()
    table.lookup_or_measure("k", fn)
    wall.now, timer.step = 2000.0, 2.0
    assert table.lookup_or_measure("k", fn) == (1.0, True)
    assert _takes(tmp_path / "l.sqlite")[:2] == (1.0, 2)
    assert table.second_takes == 1 and table.second_take_ratios == [2.0]


def test_young_entries_and_none_are_not_timed_again(tmp_path, wall):
    timer = StepTimer(2.0)
    table, (calls, fn) = _table(tmp_path / "l.sqlite", timer), _calls()
    table.lookup_or_measure("k", fn)
    wall.now, timer.step = 1059.5, 1.0  # 59.5 s: younger than the threshold
    assert table.lookup_or_measure("k", fn) == (2.0, True)
    never = _table(tmp_path / "l.sqlite", timer, after=None)
    wall.now = 10**6
    assert never.lookup_or_measure("k", fn) == (2.0, True)
    assert len(calls) == 1 and table.second_takes == never.second_takes == 0
    assert _takes(tmp_path / "l.sqlite")[:2] == (2.0, 1)


def test_put_writes_one_take_unless_told_and_two_takes_are_left_alone(tmp_path, wall):
    table, (calls, fn) = _table(tmp_path / "l.sqlite", StepTimer(1.0), after=0.0), _calls()
    table.put("k", 3.0, 5, takes=2)
    table.put("j", 3.0, 5)
    assert table.entry("k") == (3.0, 5, 1000.0, 2) and table.entry("j")[3] == 1
    assert table.lookup_or_measure("k", fn) == (3.0, True) and calls == []
    assert table.lookup_or_measure("j", fn) == (1.0, True) and len(calls) == 1  # 0 s: the next lookup


def test_rescale_keeps_the_takes(tmp_path, wall):
    table = _table(tmp_path / "l.sqlite", StepTimer(1.0))
    key = '{"method": "hot-v3"}'
    table.put(key, 2.0, 1, takes=2)
    assert table.rescale(["hot-v3"], 1.5) == 1 and table.entry(key)[::3] == (3.0, 2)


OLD_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS latency (key TEXT PRIMARY KEY, seconds REAL NOT NULL, "
    "runs INTEGER NOT NULL, created REAL NOT NULL)"
)


def test_an_old_schema_database_is_migrated_in_place(tmp_path, wall):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(OLD_SCHEMA)
        db.execute("INSERT INTO latency VALUES ('k', 4.0, 10, 100.0)")
    timer = StepTimer(1.0)
    table, (_calls_made, fn) = _table(path, timer), _calls()
    with sqlite3.connect(path) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(latency)")]
    assert columns == ["key", "seconds", "runs", "created", "takes"]
    assert table.entry("k") == (4.0, 10, 100.0, 1) and table.get("k") == 4.0
    assert table.lookup_or_measure("k", fn) == (1.0, True)  # 900 s old: its second take
    assert _takes(path) == (1.0, 2, 100.0)
    _table(path, timer)  # opening a migrated table again changes nothing
    assert table.entry("k") == (1.0, 10, 100.0, 2)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), "soon"])
def test_bad_second_take_after_is_one_config_error(tmp_path, bad):
    with pytest.raises(ConfigError, match="second_take_after_s must be") as err:
        _table(tmp_path / "l.sqlite", StepTimer(1.0), after=bad)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "l.sqlite").exists()  # checked before the file is made


def test_the_prediction_notes_its_second_takes(tmp_path, wall):
    model = nn.Sequential(nn.Linear(8, 4), nn.ReLU())
    timer = StepTimer(2.0)
    table = _table(tmp_path / "l.sqlite", timer, after=300.0)

    def predict():
        return predict_latency(
            model, input_shape=(1, 8), table=table, measure=False, call_overhead=False,
            leaf_context=False, correction=False, steady=False,
        )

    first = predict()
    assert (first.measured_configs, first.seconds) == (2, 4.0)
    assert not any("second" in n for n in first.notes)
    wall.now, timer.step = 1300.0, 1.0
    again = predict()
    assert (again.measured_configs, again.cached_configs, again.seconds) == (0, 2, 2.0)
    assert "2 table entries timed a second time, at least 300 s after the first; the faster take kept" in again.notes
    assert again.to_dict()["notes"] == list(again.notes)
    third = predict()
    assert third.seconds == 2.0 and not any("second" in n for n in third.notes)


def test_a_third_take_comes_twice_the_delay_after_the_first_when_allowed(tmp_path, wall):
    timer = StepTimer(4.0)
    path = tmp_path / "l.sqlite"
    table = LatencyTable(path, timer=timer, runs=1, warmup=0, min_sample_s=0, second_take_after_s=60.0,
                         max_takes=3)
    calls, fn = _calls()
    assert table.lookup_or_measure("k", fn) == (4.0, False)
    wall.now, timer.step = 1060.0, 2.0  # the second take: 60 s after the first
    assert table.lookup_or_measure("k", fn) == (2.0, True) and _takes(path) == (2.0, 2, 1000.0)
    wall.now, timer.step = 1119.0, 1.0  # 119 s after the first: the third is not due yet
    assert table.lookup_or_measure("k", fn) == (2.0, True) and len(calls) == 2
    wall.now = 1120.0  # 120 s: due; the fastest of the three kept
    assert table.lookup_or_measure("k", fn) == (1.0, True) and _takes(path) == (1.0, 3, 1000.0)
    wall.now, timer.step = 10**6, 0.5  # three takes: never again
    assert table.lookup_or_measure("k", fn) == (1.0, True) and len(calls) == 3
    assert table.second_takes == 2 and table.second_take_ratios == [0.5, 0.5]
    two = _table(tmp_path / "two.sqlite", StepTimer(1.0))  # the default: two takes at most
    assert two.max_takes == 2
    for bad in (0, -1, 2.5, True, "3"):
        with pytest.raises(ConfigError, match="max_takes"):
            LatencyTable(path, max_takes=bad)
