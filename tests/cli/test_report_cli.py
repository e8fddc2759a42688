"""`edgefit report`: writes the page; bad input is one line and exit code 2."""

import pytest

from edgefit.cli.main import main


def test_report_writes_the_page(tmp_path, capsys):
    out, front = tmp_path / "r.html", tmp_path / "front.json"
    front.write_text('{"type": "scatter", "title": "Search front", "x_label": "MACs", "y_label": "accuracy", '
                     '"points": [["a", 1e5, 0.9], ["b", 4e5, 0.97]]}')
    assert main(["report", "lenet5", "--compare", "zoo:lenet5", "--device", "stm32f746", "--no-measure",
                 "--section", str(front), "-o", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    html = out.read_text()
    assert "Side by side" in html and 'data-metric="macs" data-v="416520"' in html
    assert "Search front" in html and html.count('data-chart="scatter"') == 1


@pytest.mark.parametrize("args, message", [
    (["lenet5", "--device", "nosuch"], "error: unknown device 'nosuch'."),
    (["lenet5", "--compare", "lenet_300_100_digits"],
     "error: cannot compare lenet_300_100_digits (1x1x8x8 float32) with lenet5 (1x1x32x32 float32)"),
    (["lenet5", "--output", "{blocker}/r.html"], "error: cannot write the report to"),
    (["missing.efz"], "error: compressed file not found: missing.efz"),
    (["lenet5", "--sensitivity"], "error: the sensitivity scan needs a dataset"),
    (["lenet5", "--section", "missing.json"], "error: cannot read sections from missing.json"),
])
def test_bad_input_is_one_line(tmp_path, capsys, args, message):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a directory")
    args = [a.replace("{blocker}", str(blocker)) for a in args]
    if "--output" not in args:
        args += ["--output", str(tmp_path / "r.html")]
    assert main(["report", *args, "--no-measure"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1
    assert not (tmp_path / "r.html").exists()


@pytest.mark.slow
def test_demo_step_writes_dense_vs_compressed(tmp_path, monkeypatch):
    from edgefit.cli import compress_cmd, report_cmd

    monkeypatch.setattr(compress_cmd, "DEMO_DIR", tmp_path)
    monkeypatch.setattr(compress_cmd, "DEMO_DENSE", tmp_path / "dense.safetensors")
    monkeypatch.setattr(compress_cmd, "DEMO_EFZ", tmp_path / "small.efz")
    lines = []
    report_cmd.demo_section(lines.append)  # runs the Deep Compression step first: its files are missing
    html = (tmp_path / "report.html").read_text()
    assert str((tmp_path / "report.html").resolve()) in lines[-1]
    assert "Deep Compression stages" in html and html.count('class="card"') == 2
    assert f'data-metric="file_bytes" data-v="{(tmp_path / "small.efz").stat().st_size}"' in html
