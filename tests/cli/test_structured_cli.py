"""edgefit prune / factorize / distill, and edgefit profile on their output."""

import pytest

from edgefit.cli.main import main


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    p = tmp_path_factory.mktemp("w") / "lenet5.safetensors"
    assert main(["train", "lenet5_digits", "--epochs", "1", "--output", str(p), "--quiet"]) == 0
    return p


def test_prune_then_profile(tmp_path, weights, capsys):
    out = tmp_path / "pruned.safetensors"
    rc = main(["prune", "lenet5_digits", "--weights", str(weights), "--ratio", "0.5", "--importance", "l2",
               "--dataset", "digits", "--finetune-epochs", "1", "-o", str(out), "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "MACs 537,000 -> 143,500" in text and "not prunable: classifier.2: model output" in text
    assert main(["profile", str(out)]) == 0
    capsys.readouterr()
    assert main(["profile", str(out), "--format", "json"]) == 0
    import json

    assert json.loads(capsys.readouterr().out)["totals"]["macs"] == 143500


def test_factorize_and_distill(tmp_path, weights, capsys):
    out = tmp_path / "f.safetensors"
    assert main(["factorize", "lenet5_digits", "--weights", str(weights), "--method", "svd",
                 "--rank", "classifier.0=16", "-o", str(out), "--quiet"]) == 0
    assert "left alone" not in capsys.readouterr().out
    student = tmp_path / "s.safetensors"
    assert main(["distill", "--teacher", "lenet5_digits", "--teacher-weights", str(weights), "--student",
                 str(out), "--epochs", "1", "-o", str(student), "--quiet"]) == 0
    assert "student" in capsys.readouterr().out
    assert main(["profile", str(student)]) == 0


def test_prune_transformer_heads(tmp_path, capsys):
    out = tmp_path / "t.safetensors"
    assert main(["prune", "zoo:transformer_encoder", "--method", "channel", "--ratio", "0.5", "-o", str(out),
                 "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "layers.0.attention 4->2" in text and "layers.0.intermediate 256->128" in text
    assert "MACs 3,407,872 -> 1,703,936" in text
    assert main(["profile", str(out), "--format", "json"]) == 0
    import json

    assert json.loads(capsys.readouterr().out)["totals"]["macs"] == 1_703_936


@pytest.mark.slow
def test_prune_shufflenet_v1_through_its_shuffles(tmp_path, capsys):
    out = tmp_path / "s.safetensors"
    assert main(["prune", "zoo:shufflenet_v1", "--option", "resolution=32", "--ratio", "0.5", "-o", str(out),
                 "--quiet"]) == 0
    text = capsys.readouterr().out
    # widths count coupled sets (rows of 3 channels); 4 of stage 3's 40 rows are kept whole
    assert "stage3.1.gconv1.0 36->18" in text and "stage3.1.gconv1.0#kept" in text
    from edgefit.compress.prune.saved import load_pruned

    unit = load_pruned(out).model.stage3[1]
    assert (unit.gconv1[0].out_channels, unit.gconv1[0].groups, unit.gconv2[0].groups) == (3 * (18 + 4), 3, 3)


@pytest.mark.parametrize("args, message", [
    (["--ratio", "1.0"], "[0, 1)"),
    (["--ratio", "features.33=0.5"], "matches no channel group"),
    (["--ratio", "classifier.2=0.5"], "cannot be pruned: model output"),
    (["--weights", "WRONG"], "does not match the model"),
])
def test_bad_input_one_line_exit_2(tmp_path, weights, capsys, args, message):
    if "WRONG" in args:
        wrong = tmp_path / "mlp.safetensors"
        assert main(["train", "lenet_300_100_digits", "--epochs", "0", "--output", str(wrong), "--quiet"]) == 0
        capsys.readouterr()
        args = ["--weights", str(wrong)]
    out = tmp_path / "p.safetensors"
    rc = main(["prune", "lenet5_digits", *args, "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
