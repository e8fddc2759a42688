import json

import pytest

from edgefit.cli.main import main


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    p = tmp_path_factory.mktemp("w") / "dense.safetensors"
    assert main(["train", "lenet_300_100_digits", "--epochs", "3", "--output", str(p), "--quiet"]) == 0
    return p


def test_train_writes_weights(weights, capsys):
    assert weights.is_file()


@pytest.mark.slow
def test_compress_inspect_and_report_formats(tmp_path, weights, capsys):
    out = tmp_path / "m.efz"
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"prune_steps": 1, "prune_epochs": 1, "prune_final_epochs": 0, "finetune_epochs": 1}))
    rc = main(["compress", "zoo:lenet_300_100_digits", "--weights", str(weights), "--prune",
               "classifier.0=0.9,classifier.2=0.9,classifier.4=0.5", "--bits", "4", "--config", str(recipe),
               "--output", str(out), "--format", "json", "--report", str(tmp_path / "r.md")])
    assert rc == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["file_bytes"]["P+Q+H"] == out.stat().st_size
    assert rep["exact"] is True and rep["ratio"]["P+Q+H"] > rep["ratio"]["P"]
    assert main(["inspect", str(out)]) == 0
    assert "checksums OK" in capsys.readouterr().out
    assert main(["inspect", str(out), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == "lenet_300_100_digits"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--prune", "1.5"], "prune"),
        (["--prune", "classifier.9=0.5"], "classifier.9"),
        (["--bits", "0"], "bits"),
        (["--bits", "17"], "bits"),
        (["--prune", "a=b"], "layer=value"),
        (["--dataset", "nope"], "unknown dataset"),
    ],
)
def test_compress_bad_input_exit_2(tmp_path, weights, capsys, args, message):
    rc = main(["compress", "lenet_300_100_digits", "--weights", str(weights), "--output", str(tmp_path / "x.efz"),
               "--prune-steps", "1", "--prune-epochs", "0", "--finetune-epochs", "0", *args])
    assert rc == 2
    assert message in capsys.readouterr().err


def test_weights_do_not_match_model(tmp_path, weights, capsys):
    rc = main(["compress", "lenet5_digits", "--weights", str(weights), "--output", str(tmp_path / "x.efz")])
    assert rc == 2 and "does not match" in capsys.readouterr().err


def test_inspect_bad_files(tmp_path, capsys):
    bad = tmp_path / "bad.efz"
    bad.write_bytes(b"\x01\x02")
    assert main(["inspect", str(bad)]) == 2
    assert "error:" in capsys.readouterr().err
    assert main(["inspect", str(tmp_path / "missing.efz")]) == 2


def test_bad_recipe(tmp_path, weights, capsys):
    r = tmp_path / "r.yaml"
    r.write_text("prune: 0.5\nwhat: 1\n")
    rc = main(["compress", "lenet_300_100_digits", "--weights", str(weights), "--config", str(r), "--output", str(tmp_path / "x.efz")])
    assert rc == 2 and "unknown recipe keys" in capsys.readouterr().err


@pytest.mark.parametrize(
    "name, body",
    [("bad.yaml", b"prune: [1\n"), ("bad.json", b'{"prune": '), ("bin.json", b"PK\x03\x04\xe3\xff\x00")],
)
def test_garbled_recipe_is_one_line(tmp_path, weights, capsys, name, body):
    r = tmp_path / name
    r.write_bytes(body)
    rc = main(["compress", "lenet_300_100_digits", "--weights", str(weights), "--config", str(r), "--output", str(tmp_path / "x.efz")])
    err = capsys.readouterr().err
    assert rc == 2 and "cannot parse the recipe" in err and err.count("\n") == 1


def test_sensitivity_bad_plot_suffix(tmp_path, weights, capsys):
    rc = main(["sensitivity", "lenet_300_100_digits", "--weights", str(weights), "--plot", str(tmp_path / "p.xyz")])
    err = capsys.readouterr().err
    assert rc == 2 and "cannot write a plot as .xyz" in err and err.count("\n") == 1


@pytest.mark.slow
def test_demo_section_runs_the_whole_pipeline():
    lines = []
    from edgefit.cli.compress_cmd import demo_section

    demo_section(lines.append)
    text = "\n".join(lines)
    assert "loaded weights bit-exact: yes" in text
    assert "rebuilt the model from the zoo" in text


def test_user_model_file_records_no_zoo_name_and_report_matches_disk(tmp_path, capsys):
    spec = tmp_path / "mine.py"
    spec.write_text("from torch import nn\n\ndef build():\n"
                    "    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))\n")
    w, out = tmp_path / "w.safetensors", tmp_path / "m.efz"
    assert main(["train", f"{spec}:build", "--epochs", "1", "--output", str(w), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["compress", f"{spec}:build", "--weights", str(w), "--prune", "0.5", "--prune-steps", "1",
                 "--prune-epochs", "0", "--finetune-epochs", "0", "--output", str(out), "--format", "json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["file_bytes"]["P+Q+H"] == out.stat().st_size  # the reported file is the one on disk
    assert main(["inspect", str(out), "--format", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["model"] is None and "acc" in info["extra"]


@pytest.mark.slow
def test_compress_over_seeds_reports_mean_and_spread(tmp_path, capsys):
    out = tmp_path / "m.efz"
    rc = main(["compress", "lenet_300_100_digits", "--seeds", "0,1,2", "--train-epochs", "1", "--prune-steps", "1",
               "--prune-epochs", "1", "--finetune-epochs", "1", "--output", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "over seeds 0, 1, 2 (mean (min..max, std)):" in text
    assert text.count("3 seeds)") == 4  # dense, compressed, change, ratio
    assert out.is_file()


@pytest.mark.parametrize("args, message", [
    (["--seeds", "0,1"], "error: need at least 3 distinct seeds, got [0, 1]"),
    (["--seeds", "x"], "error: --seeds 'x': give whole numbers separated by commas"),
    (["--seeds", "0,1,2", "--weights", "w.safetensors"], "error: --seeds trains from scratch for each seed"),
])
def test_compress_seeds_bad_input_is_one_line(tmp_path, capsys, args, message):
    assert main(["compress", "lenet_300_100_digits", *args, "--output", str(tmp_path / "m.efz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1
    assert not (tmp_path / "m.efz").exists()
