"""The drift check: reference layers measured again, the table rescaled when the host moved."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from edgefit.errors import ConfigError
from edgefit.measure import LatencyTable, predict_latency
from edgefit.measure.drift import (
    REFERENCE_LAYERS,
    DriftCheck,
    check_drift,
    drift_note,
    drift_scale,
    persistent_scale,
)

from .test_lut import FakeTimer


def _hot_table(path, step, **kw):
    """Layers timed hot only (no rotation): every sample one fake step."""
    return LatencyTable(path, timer=FakeTimer(step), runs=1, warmup=0, min_sample_s=0, rotate_bytes=0, **kw)


def _key(method):
    return json.dumps({"kind": "X", "method": method})


def test_drift_scale_is_the_median_beyond_the_noise():
    assert drift_scale([0.8, 0.8, 0.8]) == pytest.approx(0.8)
    assert drift_scale([1.2, 1.25, 1.3, 1.25, 1.2]) == pytest.approx(1.25)
    assert drift_scale([1.02, 1.02, 1.02]) == 1.0  # 2% is noise
    assert drift_scale([0.8, 0.8]) == 1.0  # too few references
    # logs of 0.5, 0.9, 2.0: median log(0.9) = -0.105; sd 0.69 -> 2 * 1.2533 * 0.69 / sqrt(3) = 1.0
    assert drift_scale([0.5, 0.9, 2.0]) == 1.0


def test_table_rescales_one_method_only(tmp_path):
    table = _hot_table(tmp_path / "l.sqlite", 0.001)
    table.put(_key("hot-v3"), 2.0, 1)
    table.put(_key("rotated-v4"), 3.0, 1)
    assert table.rescale(["hot-v3"], 0.5) == 1
    assert table.get(_key("hot-v3")) == pytest.approx(1.0) and table.get(_key("rotated-v4")) == 3.0
    with pytest.raises(ConfigError):
        table.rescale(["hot-v3"], 0.0)


def test_first_check_stores_the_baseline_then_a_faster_reading_restores_only_the_references(tmp_path):
    path = tmp_path / "l.sqlite"
    first = check_drift(_hot_table(path, 0.002))
    assert [c.method for c in first] == ["hot"] and first[0].ratios == ()  # baseline
    table = _hot_table(path, 0.002)
    table.put(_key("hot-v3"), 1.0, 1)
    table.put(_key("rotated-v4"), 1.0, 1)
    assert len(table) == len(REFERENCE_LAYERS) + 2
    # the same speed: nothing moves
    (same,) = check_drift(table)
    assert same.scale == 1.0 and same.ratios == pytest.approx((1.0,) * len(REFERENCE_LAYERS))
    # the references now run in 0.8 of their stored time: other jobs only add time, so their
    # stored baseline carried contention; the faster takes replace it, the other entries stay
    faster = _hot_table(path, 0.0016)
    (moved,) = check_drift(faster)
    assert moved.scale == 1.0 and moved.rescaled == 0 and moved.rebased == len(REFERENCE_LAYERS)
    assert moved.median == pytest.approx(0.8)
    assert faster.get(_key("hot-v3")) == 1.0 and faster.get(_key("rotated-v4")) == 1.0
    assert "10 reference entries stored again (baseline), the other entries kept" in drift_note(moved)
    (again,) = check_drift(_hot_table(path, 0.0016))  # the new baseline: nothing moves
    assert again.ratios == pytest.approx((1.0,) * len(REFERENCE_LAYERS)) and again.rebased == 0


def test_a_session_checks_once_before_its_first_prediction(tmp_path):
    path = tmp_path / "l.sqlite"
    model = nn.Sequential(nn.Linear(4, 4)).eval()
    kw = dict(input_shape=(1, 4), measure=False, correction=False, leaf_context=False)
    pred = predict_latency(model, table=_hot_table(path, 0.001, drift_check=True), **kw)
    assert "drift check (hot): reference entries stored (baseline)" in pred.notes
    session = _hot_table(path, 0.0005, drift_check=True)
    pred = predict_latency(model, table=session, **kw)
    assert session.drift[0].scale == 1.0 and session.drift[0].rebased == len(REFERENCE_LAYERS)
    assert pred.seconds == pytest.approx(0.001 + session.get(next(iter(_container_key(path)))))
    again = predict_latency(model, table=session, **kw)  # no second check in the same session
    assert not any("drift" in n for n in again.notes)
    off = predict_latency(model, table=_hot_table(path, 0.001), **kw)
    assert not any("drift" in n for n in off.notes)


def _container_key(path):
    import sqlite3

    with sqlite3.connect(path) as db:
        return [k for (k,) in db.execute("SELECT key FROM latency") if "__module_call__" in k]


def test_drift_check_record():
    d = DriftCheck("hot", (0.9, 1.0, 1.1), 1.0)
    assert d.median == 1.0 and d.to_dict()["ratios"] == [0.9, 1.0, 1.1]
    assert drift_note(d).endswith("within the noise, table kept")
    assert torch.get_num_threads() >= 1


class _Texts:
    """The table's text store alone (what `persistent_scale` reads and writes)."""

    def __init__(self):
        self.texts = {}

    def get_text(self, key):
        return self.texts.get(key)

    def put_text(self, key, value):
        self.texts[key] = value


def test_a_slower_reading_is_held_until_a_later_check_confirms_it():
    t = _Texts()
    assert persistent_scale(t, "hot", 1.4, confirm_after_s=60) == (1.0, 1.4)  # held, table kept
    first = json.loads(t.texts["drift-held:hot"])
    # a second slower reading too soon after the first: still held, the first reading's time kept
    assert persistent_scale(t, "hot", 1.2, confirm_after_s=60) == (1.0, 1.2)
    assert json.loads(t.texts["drift-held:hot"]) == first
    # late enough: the smaller of the two slower readings is applied and nothing stays held
    assert persistent_scale(t, "hot", 1.2, confirm_after_s=0) == (1.2, 1.0)
    assert not t.texts["drift-held:hot"]
    assert persistent_scale(t, "rotated", 1.3, confirm_after_s=0) == (1.0, 1.3)  # per method
    assert persistent_scale(t, "rotated", 1.5, confirm_after_s=0) == (1.3, 1.0)


def test_a_faster_or_unmoved_reading_clears_what_was_held():
    for now in (1.0, 0.8):
        t = _Texts()
        persistent_scale(t, "hot", 1.4)
        assert persistent_scale(t, "hot", now, confirm_after_s=0) == (now, 1.0)  # faster: applied at once
        assert persistent_scale(t, "hot", 1.3, confirm_after_s=0) == (1.0, 1.3)  # held anew, not applied


def test_check_drift_holds_a_slower_host_then_applies_it_when_confirmed(tmp_path):
    path = tmp_path / "l.sqlite"
    check_drift(_hot_table(path, 0.001))  # baseline
    _hot_table(path, 0.001).put(_key("hot-v3"), 1.0, 1)
    (held,) = check_drift(_hot_table(path, 0.0015), confirm_after_s=3600)
    assert held.scale == 1.0 and held.held == pytest.approx(1.5) and held.rescaled == 0
    assert "slower by 1.500, held until a later check confirms it" in drift_note(held)
    assert _hot_table(path, 0.001).get(_key("hot-v3")) == 1.0
    slower = _hot_table(path, 0.0015)
    (applied,) = check_drift(slower, confirm_after_s=0)
    assert applied.scale == pytest.approx(1.5) and applied.held == 1.0
    assert slower.get(_key("hot-v3")) == pytest.approx(1.5)


def test_a_damaged_held_record_counts_as_nothing_held():
    for text in ("{not json", '{"scale": "x", "at": 1}', '{"at": 1}', "[]", '{"scale": 0.5, "at": 1}'):
        t = _Texts()
        t.texts["drift-held:hot"] = text
        assert persistent_scale(t, "hot", 1.4, confirm_after_s=0) == (1.0, 1.4)  # held anew, not applied
        assert json.loads(t.texts["drift-held:hot"])["scale"] == 1.4
        t.texts["drift-held:hot"] = text
        assert persistent_scale(t, "hot", 0.9) == (0.9, 1.0)  # faster: applied regardless
