"""`edgefit adapt`: bad input is one line and exit code 2; a MAC budget run writes a loadable family."""

from __future__ import annotations

import pytest

from edgefit.cli.main import main

NET = """
import torch
from torch import nn

def build():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))

def dense():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
"""


@pytest.fixture
def net_file(tmp_path):
    f = tmp_path / "net.py"
    f.write_text(NET)
    return f


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        ("latncy=50%", "unknown resource 'latncy'"),
        ("macs=-5", "must be above zero"),
        ("macs=1G", "is not below the current value"),
        ("latency=5ms@no_such_board", "no_such_board"),
    ],
)
def test_bad_budgets_are_one_line_exit_2(capsys, tmp_path, net_file, budget, message):
    code, _, err = run(capsys, "adapt", f"{net_file}:build", "--budget", budget, "-o", str(tmp_path / "f"),
                       "--train-epochs", "0")
    assert code == 2 and message in err
    assert err.startswith("error:") and err.count("\n") == 1 and "Traceback" not in err


def test_model_without_prunable_block_is_one_line_exit_2(capsys, tmp_path, net_file):
    code, _, err = run(capsys, "adapt", f"{net_file}:dense", "--budget", "macs=50%", "-o", str(tmp_path / "f"),
                       "--train-epochs", "0")
    assert code == 2 and "no prunable block" in err and err.count("\n") == 1


@pytest.mark.slow
def test_mac_budget_run_writes_a_family_the_other_commands_read(capsys, tmp_path, net_file):
    out_dir = tmp_path / "family"
    args = ("adapt", f"{net_file}:build", "--budget", "macs=60%", "--budget", "params=70%", "-o",
            str(out_dir), "--train-epochs", "1", "--short-term-epochs", "0", "--long-term-epochs", "0",
            "--initial-reduction", "0.2", "--executor", "serial")
    code, out, err = run(capsys, *args)
    assert code == 0, err
    assert "start: macs 0.1568M, params 2.65k" in out and "budgets met after" in out
    assert {p.name for p in out_dir.iterdir()} >= {"netadapt.sqlite", "family.md", "family.json", "family.png",
                                                   "model.py", "iter_000.safetensors", "final.safetensors"}
    code, out2, _ = run(capsys, "profile", f"{out_dir / 'model.py'}:final", "--input-shape", "1,1,8,8")
    assert code == 0 and "Total" in out2
    code, out3, _ = run(capsys, *args)  # the same command again: nothing left to do
    assert code == 0 and "(resumed after iteration" in out3


@pytest.mark.slow
def test_unmeetable_budget_keeps_the_best_network_and_exits_1(capsys, tmp_path, net_file):
    # peak live activations are conv1's and conv2's outputs with their ReLUs: 2 x 16 x 64 x 4 B = 8 KiB;
    # shrinking one block per iteration cannot lower it, so NetAdapt stops at once
    code, out, err = run(capsys, "adapt", f"{net_file}:build", "--budget", "peak_activations=5KB", "-o",
                         str(tmp_path / "f"), "--train-epochs", "0", "--short-term-epochs", "0",
                         "--long-term-epochs", "0", "--executor", "serial")
    assert code == 1 and "peak_activations 8KiB" in out  # target 8192 - 2.5% = 7987.2 B
    assert err == "warning: budget not met: budget cannot be met: no block can shrink enough to reach " \
                  "peak_activations <= 7987; kept the best network so far\n"


def test_unknown_relative_to_is_one_line_exit_2(capsys, tmp_path, net_file):
    code, _, err = run(capsys, "adapt", f"{net_file}:build", "--budget", "macs=50%", "--relative-to", "floor",
                       "-o", str(tmp_path / "f"), "--train-epochs", "0")
    assert code == 2 and "relative_to must be one of ('total', 'reducible')" in err and err.count("\n") == 1
