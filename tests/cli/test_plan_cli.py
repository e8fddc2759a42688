"""`edgefit plan` through `main([...])`: the report, JSON, the picture, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgefit.cli.main import main

SMALL = ["zoo:mobilenet_v2", "--option", "width_mult=0.35", "--option", "resolution=144"]


def test_plan_report(capsys, tmp_path):
    png = tmp_path / "m.png"
    assert main(["plan", *SMALL, "--device", "stm32f746", "--bits", "8", "--layers", "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "today:  does not fit: weights need 1.6 MB" in out
    assert "+ 5x5 patches up to features.2 (+16.5% MACs)      92.8 KB  92.8 KB      +16.5%" in out
    assert "plan:   does not fit: weights need 1.6 MB, STM32F746 has 1 MB of flash" in out
    assert "at most 509 outputs in classifier.1" in out
    assert "features.2.conv.0.1" in out and "in-place saves" in out
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_plan_json_fits_with_fewer_classes(tmp_path):
    out = tmp_path / "plan.json"
    assert main(["plan", *SMALL, "--option", "num_classes=100", "--json", "-o", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["fits"] is True and d["arena_bytes"] == 94976 and d["peak_live_bytes"] == 497760
    assert d["patch"]["split"] == "features.2" and len(d["patch"]["tiles"]) == 25


def _device_without_sram(tmp_path: Path) -> Path:
    import edgefit.hardware as hw

    text = (Path(hw.__file__).parent / "devices" / "stm32f746.yaml").read_text()
    lines = [ln for ln in text.splitlines() if not ln.startswith(("sram_bytes", "activation_ram_bytes"))]
    path = tmp_path / "board.yaml"
    path.write_text("\n".join(lines).replace("name: stm32f746", "name: board"))
    return path


@pytest.mark.parametrize("extra,message", [
    (["--patches", "many"], "error: --patches 'many': give auto, none, or patches per side (e.g. 4)"),
    (["--patches", "100", "--split", "features.1"],
     "error: 100x100 patches are too many: the stage output after features.1 is 72x72"),
    (["--target", "1KB"], "error: no patch setting within +20% MACs brings the peak under 1,024 bytes"),
    (["--device", "DEVICE"], "error: "),
])
def test_bad_input_is_one_line(capsys, tmp_path, extra, message):
    if "DEVICE" in extra:
        extra = ["--device", str(_device_without_sram(tmp_path))]
        message = "missing fields sram_bytes, activation_ram_bytes"
    assert main(["plan", *SMALL, *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_unpatchable_model_is_one_line(capsys):
    assert main(["plan", "zoo:lenet_300_100", "--patches", "4"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: cannot patch the first stage of MLP: the model does not take one N x C x H x W image"
