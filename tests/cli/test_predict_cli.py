"""`edgefit predict --second-take-after` and `--drift-check`: the flags reach the lookup table (no timing)."""

from __future__ import annotations

import pytest

import edgefit.measure
from edgefit.cli.main import main
from edgefit.errors import ConfigError


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEFIT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def built(monkeypatch):
    """The keyword arguments of every `LatencyTable` the command builds; the build then stops it."""
    seen = []

    def fake_table(*args, **kwargs):
        seen.append(kwargs)
        raise ConfigError("stopped after building the table")

    monkeypatch.setattr(edgefit.measure, "LatencyTable", fake_table)
    return seen


@pytest.mark.parametrize(
    ("flag", "expected"), [([], 300.0), (["--second-take-after", "90"], 90.0), (["--second-take-after", "0"], None)]
)
def test_second_take_after_reaches_the_table(built, flag, expected, capsys):
    assert main(["predict", "zoo:lenet5", "--no-calibrate", *flag]) == 2
    assert "stopped after building the table" in capsys.readouterr().err
    assert built == [{"gate": built[0]["gate"], "drift_check": True, "second_take_after_s": expected,
                      "max_takes": 2}]


def test_max_takes_reaches_the_table(built):
    assert main(["predict", "zoo:lenet5", "--no-calibrate", "--max-takes", "3"]) == 2
    assert built[0]["max_takes"] == 3


def test_max_takes_below_one_is_one_line(capsys):
    assert main(["predict", "zoo:lenet5", "--no-calibrate", "--max-takes", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "max_takes must be an integer >= 1, got 0" in err and "\n" not in err


def test_negative_second_take_after_is_one_line(capsys):
    assert main(["predict", "zoo:lenet5", "--no-calibrate", "--second-take-after", "-5"]) == 2
    err = capsys.readouterr().err.strip()
    assert "second_take_after_s must be finite seconds >= 0" in err and "\n" not in err


@pytest.mark.parametrize(("flag", "expected"), [([], True), (["--no-drift-check"], False)])
def test_drift_check_flag_reaches_the_table(built, flag, expected):
    assert main(["predict", "zoo:lenet5", "--no-calibrate", *flag]) == 2
    assert built[0]["drift_check"] is expected


@pytest.mark.parametrize(("flag", "expected"), [([], "factor"), (["--correction-model", "features"], "features")])
def test_correction_model_reaches_the_prediction(monkeypatch, flag, expected):
    seen = []

    def fake_predict(*args, **kwargs):
        seen.append(kwargs["correction_model"])
        raise ConfigError("stopped before predicting")

    monkeypatch.setattr(edgefit.measure, "predict_latency", fake_predict)
    assert main(["predict", "zoo:lenet5", "--no-calibrate", *flag]) == 2
    assert seen == [expected]


def test_unknown_correction_model_is_one_line(built, capsys):
    assert main(["predict", "zoo:lenet5", "--correction-model", "mean"]) == 2
    err = capsys.readouterr().err.strip()
    assert "correction model must be one of factor, features (got 'mean')" in err and "\n" not in err
    assert built == []  # nothing built or timed
