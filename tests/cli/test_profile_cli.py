"""`edgefit profile` and `edgefit zoo`: formats, files, and one-line errors with exit code 2."""

import csv
import io
import json
import subprocess
import sys

import pytest

from edgefit.cli.main import main


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_table_like_the_slides(capsys):
    code, out, err = run(capsys, "profile", "zoo:alexnet")
    assert code == 0
    assert "724,406,816" in out and "60,954,656" in out and "932,264" in out
    assert "105,415,200" in out and "96×55×55" in out
    assert "peak 440,928" in out


def test_json_has_the_documented_keys(capsys):
    code, out, _ = run(capsys, "profile", "zoo:alexnet", "--format", "json")
    data = json.loads(out)
    layer_keys = {"name", "kind", "output_shape", "params", "macs", "flops", "other_ops", "activations", "weight_bytes", "bytes_moved"}
    assert layer_keys <= set(data["layers"][0])
    total_keys = {"params", "params_without_bias", "macs", "flops", "other_ops", "activations", "peak_activations", "peak_live_activations", "model_size_bytes"}
    assert total_keys <= set(data["totals"])
    assert data["uncounted"] == {} and data["totals"]["macs"] == 724_406_816


def test_csv_and_markdown_and_output_file(capsys, tmp_path):
    code, out, _ = run(capsys, "profile", "zoo:lenet5", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and sum(int(r["macs"]) for r in rows) == 416_520
    target = tmp_path / "p.md"
    code, _, err = run(capsys, "profile", "zoo:lenet5", "-f", "markdown", "-o", str(target))
    assert code == 0 and target.read_text().startswith("| Layer |") and "wrote" in err
    assert not list(tmp_path.glob(".*tmp"))  # atomic write leaves no temporary


def test_bits_and_options(capsys):
    code, out, _ = run(capsys, "profile", "zoo:mobilenet_v1", "--option", "alpha=0.5", "--option", "resolution=160", "-f", "json", "--bits", "8")
    data = json.loads(out)
    assert data["input_shapes"] == [[1, 3, 160, 160]] and data["totals"]["macs"] == 76_524_800
    assert data["totals"]["model_size_bytes"] == data["totals"]["params"]
    code, out, _ = run(capsys, "profile", "zoo:lenet5", "-f", "json", "--bits", "conv*=4,default=8")
    assert code == 0


def test_user_file_and_module_specs(capsys, tmp_path):
    f = tmp_path / "mymodel.py"
    f.write_text("import torch.nn as nn\ndef build():\n    return nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 3))\n")
    code, out, _ = run(capsys, "profile", f"{f}:build", "--input-shape", "4,10", "-f", "json")
    assert code == 0 and json.loads(out)["totals"]["macs"] == 4 * (10 * 20 + 20 * 3)
    code, _, err = run(capsys, "profile", f"{f}:build")
    assert code == 2 and "--input-shape" in err


@pytest.mark.parametrize(
    "args,needle",
    [
        (["profile", "zoo:alexnett"], "alexnet"),
        (["profile", "nosuchfile.py:build"], "nosuchfile.py"),
        (["profile", "zoo:alexnet", "-i", "1,3,0,224"], "<= 0"),
        (["profile", "zoo:alexnet", "-i", "1,3,-2,224"], "<= 0"),
        (["profile", "zoo:alexnet", "-i", "a,b"], "integers"),
        (["profile", "zoo:alexnet", "-i", "1,4,224,224"], "3 channels"),
        (["profile", "zoo:alexnet", "--bits", "0"], "bit width"),
        (["profile", "zoo:alexnet", "--option", "nonsense"], "KEY=VALUE"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, args, needle):
    code, out, err = run(capsys, *args)
    assert code == 2
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err


def test_callable_not_returning_a_module(capsys, tmp_path):
    f = tmp_path / "notmodel.py"
    f.write_text("def build():\n    return 42\ndef boom():\n    raise ValueError('nope')\n")
    code, _, err = run(capsys, "profile", f"{f}:build", "-i", "1,2")
    assert code == 2 and "nn.Module" in err
    code, _, err = run(capsys, "profile", f"{f}:boom", "-i", "1,2")
    assert code == 2 and "nope" in err


def test_model_raising_while_tracing(capsys, tmp_path):
    f = tmp_path / "raiser.py"
    f.write_text(
        "import torch.nn as nn\nclass M(nn.Module):\n    def forward(self, x):\n        raise KeyError('missing')\n"
        "def build():\n    return M()\n"
    )
    code, _, err = run(capsys, "profile", f"{f}:build", "-i", "1,2")
    assert code == 2 and "raised while tracing" in err


def test_zoo_lists_every_model(capsys):
    from edgefit.zoo import list_models

    code, out, _ = run(capsys, "zoo", "--format", "json")
    data = json.loads(out)
    assert code == 0 and [d["name"] for d in data] == list_models()
    assert next(d for d in data if d["name"] == "alexnet")["macs"] == 724_406_816


def test_the_installed_script_exits_2_without_traceback():
    proc = subprocess.run([sys.executable, "-m", "edgefit.cli", "profile", "zoo:nope"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("error:") and "Traceback" not in proc.stderr


def test_debug_shows_the_traceback_wherever_it_is_given():
    from edgefit.errors import EdgefitError

    with pytest.raises(EdgefitError, match="nope"):
        main(["profile", "zoo:nope", "--debug"])


@pytest.mark.parametrize(
    "args,needle",
    [
        (["profile", "zoo:alexnet", "--format", "xml"], "'xml' is not one of"),
        (["profile"], "Missing argument"),
        (["profile", "zoo:alexnet", "--nope"], "No such option"),
        (["nosuchcmd"], "No such command"),
        (["profile", "zoo:alexnet", "--activation-bits", "x"], "valid integer"),
    ],
)
def test_usage_errors_are_one_line_exit_2(capsys, args, needle):
    code, out, err = run(capsys, *args)
    assert code == 2 and needle in err
    assert err.startswith("error:") and err.count("\n") == 1 and "Traceback" not in err


def test_bare_command_shows_help(capsys):
    code, out, err = run(capsys)
    assert code == 0 and "profile" in out + err and "error:" not in err


def test_csv_with_a_device_adds_the_estimate_columns(capsys):
    code, out, _ = run(capsys, "profile", "zoo:lenet5", "--device", "stm32f746", "-f", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and {"bound", "seconds", "joules"} <= set(rows[0])
    assert all(float(r["seconds"]) > 0 for r in rows if int(r["macs"]))
