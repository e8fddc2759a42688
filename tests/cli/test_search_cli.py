import json

import pytest

from edgefit.cli.main import main


def test_search_command_prints_front_and_writes_architectures(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc = main(["search", "--space", "cell", "--algorithm", "evolution", "--trials", "3", "--objective", "macs",
               "--objective", "peak_memory", "--constraint", "fits@stm32f746", "--storage", "sqlite:///study.db",
               "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "Pareto front of study 'cell-evolution-macs+peak_memory' (3 samples" in out
    assert "time_nas = 3 samples x" in out
    assert (tmp_path / "nas_results" / "pareto.png").is_file()
    built = sorted((tmp_path / "nas_results").glob("arch_*.py"))
    assert built
    assert main(["profile", f"{built[0]}:build", "--input-shape", "1,1,8,8", "--format", "json"]) == 0
    prof = json.loads(capsys.readouterr().out)
    arch = json.loads(built[0].with_suffix(".json").read_text())
    assert prof["totals"]["macs"] == arch["values"]["macs"]
    # the same command resumes: already 3 samples, nothing new is run
    assert main(["search", "--space", "cell", "--algorithm", "evolution", "--trials", "3", "--objective", "macs",
                 "--objective", "peak_memory", "--constraint", "fits@stm32f746", "--storage", "sqlite:///study.db",
                 "--quiet", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["time_nas"]["samples"] == 3


@pytest.mark.parametrize(
    "args, message",
    [
        (["--space", "mbv9"], "unknown search space 'mbv9'"),
        (["--algorithm", "hillclimb"], "unknown optimizer 'hillclimb'"),
        (["--objective", "speed"], "unknown objective 'speed'"),
        (["--constraint", "size<=10B"], "no architecture in space 'cell' can meet size<=10B"),
        (["--storage", "bogus://nowhere"], "cannot open storage bogus://nowhere"),
    ],
)
def test_search_bad_input_is_one_line_exit_2(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = ["search", "--space", "cell", "--objective", "macs", "--trials", "1", "--quiet"]
    assert main(base + args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
