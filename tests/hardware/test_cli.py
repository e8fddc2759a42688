"""The hardware commands through `main([...])`: exit codes and output."""

from __future__ import annotations

import json

import pytest
import yaml

from edgefit.cli.main import main


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEFIT_CACHE_DIR", str(tmp_path / "cache"))


def test_devices(capsys):
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    for name in ("stm32f746", "jetson_orin_nano", "edgetpu", "eyeriss", "a100", "host"):
        assert name in out


def test_devices_json(capsys):
    assert main(["devices", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    stm = next(d for d in data if d["name"] == "stm32f746")
    assert stm["sram_bytes"] == 327680 and "DS10916" in stm["sources"]["sram_bytes"]


def test_roofline_stm32_does_not_fit(capsys, tmp_path):
    plot, bars = tmp_path / "r.png", tmp_path / "b.png"
    code = main(
        [
            "roofline",
            "zoo:lenet5",
            "--device",
            "stm32f746",
            "--plot",
            str(plot),
            "--bars",
            str(bars),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "memory-bound" in out and "spent moving data" in out and "fits:" in out
    assert plot.read_bytes()[:4] == b"\x89PNG" and bars.read_bytes()[:4] == b"\x89PNG"


def test_roofline_json_and_fit_message(capsys):
    assert main(["roofline", "zoo:alexnet", "--device", "stm32f746", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["totals"]["fits"] is False
    assert data["totals"]["fit_message"].startswith(
        "does not fit: weights need 233 MB, STM32F746 has 1 MB of flash"
    )  # with biases: 61.1 M params x 4 B
    assert data["layers"][0]["bound"] in ("memory", "compute")


def test_user_device_file(capsys, tmp_path):
    from edgefit.hardware import get_device

    data = yaml.safe_load(open(get_device("jetson_nano").path).read())
    data["name"], data["display_name"] = "mine", "My board"
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["roofline", "zoo:lenet5", "--device", str(path)]) == 0
    assert "My board" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv,message",
    [
        (
            ["roofline", "zoo:lenet5", "--device", "stm32f74"],
            "unknown device 'stm32f74'. Did you mean: stm32f746?",
        ),
        (
            ["roofline", "zoo:lenet5", "--device", "nope.yaml"],
            "device file nope.yaml does not exist",
        ),
        (
            ["roofline", "zoo:lenet5", "--device", "edgetpu", "--precision", "fp32"],
            "does not run fp32",
        ),
        (["roofline", "zoo:lenet5", "--device", "stm32f746", "--plot", "x.txt"], "use a .png"),
        (["roofline", "zoo:lenet5", "--device", "stm32f746", "--top", "-1"], "--top must be >= 0"),
        (
            ["roofline", "zoo:lenet5", "--device", "stm32f746", "--plot", "/dev/null/x.png"],
            "cannot write a plot to /dev/null/x.png",
        ),
        (["bench", "zoo:lenet5", "--batch-sizes", "1,a"], "--batch-sizes '1,a'"),
        (["bench", "zoo:lenet5", "--runs", "0"], "--runs and --sweep-runs must be >= 1"),
        (["predict", "zoo:lenet5", "--device", "stm32f746"], "use --device host"),
    ],
)
def test_errors_are_one_line(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_bench_small(capsys):
    code = main(
        [
            "bench",
            "zoo:lenet5",
            "--runs",
            "3",
            "--warmup",
            "1",
            "--batch-sizes",
            "1,4",
            "--sweep-runs",
            "2",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "median" in out and "p90" in out and "roofline" in out
    assert out.count("items") >= 1 and "\n      4" in out


@pytest.mark.slow
def test_predict_small(capsys):
    assert main(["predict", "zoo:lenet5", "--runs", "3", "--no-calibrate"]) == 0
    out = capsys.readouterr().out
    assert (
        "predicted (lookup table)" in out
        and "measured" in out
        and "new layer configurations" in out
    )
    assert (
        main(
            ["predict", "zoo:lenet5", "--runs", "3", "--json", "--no-speed-gate", "--no-calibrate"]
        )
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data["measured_configs"] == 0 and data["cached_configs"] > 0  # reused from the first run


@pytest.mark.slow
def test_predict_prints_the_interval_and_the_budget_verdict(capsys):
    """With a stored host correction the CLI prints its interval, host state and budget verdict."""
    import torch

    from edgefit.measure import LatencyTable
    from edgefit.measure.correction import HostCorrection, correction_key

    corr = HostCorrection("hot", 2.0, (-0.1, 0.0, 0.2), networks=("a", "b", "c"))
    LatencyTable().put_text(correction_key("hot", torch.get_num_threads()), corr.to_json())
    argv = ["predict", "zoo:lenet5", "--runs", "3", "--no-speed-gate", "--no-calibrate"]
    assert main([*argv, "--json", "--budget-ms", "1000"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["predicted_s"] == pytest.approx(2 * data["table_s"])
    assert data["interval_s"] == pytest.approx(list(corr.interval(data["predicted_s"], 0.9)))
    assert data["budget_met"] is True and data["correction"]["factor"] == 2.0
    assert main([*argv, "--budget-ms", "0.000001"]) == 0
    out = capsys.readouterr().out
    assert "90% interval" in out and "met with 90% confidence: no" in out
    assert "hot correction from 3 random networks" in out
    LatencyTable().put_text(correction_key("hot", torch.get_num_threads()), "{}")
    assert main(argv) == 2  # a broken stored correction: one line, exit 2


def test_demo_section():
    from edgefit.cli.hardware_cmd import demo_section

    lines = []
    demo_section(lines.append)
    text = "\n".join(lines)
    assert "STM32F746" in text and "Jetson Orin Nano" in text
    assert "does not fit: weights need" in text and "fits: weights" in text
