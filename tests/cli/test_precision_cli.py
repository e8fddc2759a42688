"""`edgefit profile`, `roofline` and `precision` on a quantized .efz use its real per-layer widths."""

import json

import pytest
import torch

from edgefit.cli.main import main


@pytest.fixture(scope="module")
def efz(tmp_path_factory):
    from edgefit.compress.file import save_compressed
    from edgefit.compress.quantize import LinearQuantConfig, XNORConfig, quantize_
    from edgefit.zoo import create

    torch.manual_seed(0)
    net = create("lenet_300_100_digits")
    quantize_(net, LinearQuantConfig(bits=4, act_bits=4, layers=("classifier.2",)), calibration=torch.randn(16, 64))
    quantize_(net, XNORConfig(layers=("classifier.4",)))
    path = tmp_path_factory.mktemp("q") / "mixed.efz"
    save_compressed(net, path, model_name="lenet_300_100_digits")
    return path


def test_roofline_of_an_efz_runs_each_layer_at_its_width(efz, capsys):
    assert main(["roofline", str(efz), "--device", "raspberry_pi_5", "--json"]) == 0
    est = json.loads(capsys.readouterr().out)
    at = {row["name"]: row["precision"] for row in est["layers"]}
    assert (at["classifier.0"], at["classifier.2"], at["classifier.4"]) == ("fp32", "int8", "int8")
    assert [(f["layer"], f["wanted"]) for f in est["fallbacks"]] == [("classifier.2", "int4"), ("classifier.4", "binary")]
    assert main(["roofline", str(efz), "--device", "a100"]) == 0
    out = capsys.readouterr().out
    assert "note: the energy table has no binary MAC energy" in out


def test_profile_of_an_efz_counts_its_widths_unless_told_otherwise(efz, capsys):
    assert main(["profile", str(efz), "-f", "json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["layers"]}
    assert [rows[f"classifier.{i}"]["bits"] for i in (0, 2, 4)] == [32, 4, 1]
    # classifier.4: 1,000 weights + 10 biases at 1 bit
    assert rows["classifier.4"]["weight_bytes"] == 1010 / 8 and rows["classifier.4"]["bit_ops"] == 2000
    assert main(["profile", str(efz), "-f", "json", "--bits", "8"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["layers"]}
    assert {rows[f"classifier.{i}"]["bits"] for i in (0, 2, 4)} == {8}


def test_precision_command_on_the_a100(efz, capsys):
    assert main(["precision", str(efz), "--device", "a100"]) == 0
    out = capsys.readouterr().out
    assert "classifier.2     linear             4      4       30,000  int4 MAC" in out
    assert "xnor+popcount" in out and "binary" in out
    # 1,000 MACs -> ceil(1000 / 64) = 16 words; saving 1000 / (16 + 10 per-output ops) = 38.5x;
    # (2,000 bit ops + 10) / 4,992 TOPS = 4.03e-13 s
    assert "classifier.4     xnor               1      1        1,000  xnor+popcount             16   38.5x  binary" \
           "   4.03e-07 us" in out
    assert "50,200 MACs (binary layers: 2,000 XNOR + popcount bit operations) -> 49,216 machine ops" in out
