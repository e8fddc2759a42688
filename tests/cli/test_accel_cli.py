"""`edgefit dataflow`, `edgefit sparsity`, `edgefit convalgo`: output and one-line errors."""

import pytest

from edgefit.cli.main import main


def test_dataflow_table_plot_and_energy_tool(tmp_path, capsys):
    import json

    plot, tool, js = tmp_path / "e.png", tmp_path / "l.txt", tmp_path / "r.json"
    assert main(["dataflow", "zoo:lenet5_digits", "--batch", "1", "--dataflow", "rs,nlr", "--accesses",
                 "--plot", str(plot), "--energy-tool", str(tool), "--json", str(js)]) == 0
    out = capsys.readouterr().out
    assert "NLR/RS" in out and "total CONV" in out and "energy by level, FC layers" in out
    assert "by data type (mac = ALU), CONV layers" in out
    assert "RS: accesses (words) per level" in out and "dram i/w/p" in out
    # the RS array's storage area, all buffer for NLR at 12.70 um^2 per byte
    assert "equal storage area: RS 512 B RF + 131072 B buffer; NLR 0 B RF + 346463 B buffer" in out
    assert plot.stat().st_size > 0 and len(tool.read_text().splitlines()) == 4
    data = json.loads(js.read_text())
    first = data["dataflows"]["rs"][0]
    assert first["layer"] == "features.0" and first["accesses"]["alu"]["mac"] == 32_000
    assert data["dataflows"]["nlr"][0]["rf_bytes"] == 0    # equal area: NLR has no RF


@pytest.mark.parametrize("args, message", [
    (["--dataflow", "rs,xs"], "unknown dataflow 'xs'"),
    (["--pes", "2x2", "--dataflow", "rs"], "no RS mapping fits 2x2 PEs"),
    (["--rf", "lots"], "size 'lots'"),
    (["--batch", "0"], "batch must be"),
])
def test_dataflow_errors_are_one_line(args, message, capsys):
    assert main(["dataflow", "zoo:lenet5_digits", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err


def test_convalgo(capsys):
    assert main(["convalgo", "zoo:lenet5_digits"]) == 0
    out = capsys.readouterr().out
    assert "winograd_f2 Mmul" in out and "features.3" in out and "fewest mults" in out


@pytest.mark.slow
def test_sparsity_trains_then_measures(capsys):
    assert main(["sparsity", "zoo:lenet5_digits", "--train-epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "360 digits test images" in out and "RLC BW" in out and "classifier.2" in out


def test_dataflow_reads_an_energy_tool_file(tmp_path, capsys):
    tool = tmp_path / "lenet.txt"
    assert main(["dataflow", "zoo:lenet5_digits", "--batch", "1", "--dataflow", "rs", "--energy-tool", str(tool)]) == 0
    from_model = capsys.readouterr().out.splitlines()
    assert main(["dataflow", str(tool), "--batch", "1", "--dataflow", "rs"]) == 0
    from_file = capsys.readouterr().out.splitlines()
    # the same energies, layer by layer (names become layer1, layer2, ...)
    pick = [line.split()[-1] for line in from_model if line.startswith(("features", "classifier"))]
    assert pick == [line.split()[-1] for line in from_file if line.startswith("layer") and "kind" not in line]
    assert len(pick) == 4
