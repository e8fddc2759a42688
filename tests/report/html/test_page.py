"""The HTML page without a browser: its numbers are the Profile/Estimate's, it is safe and self-contained."""

import re

import pytest
import torch
from torch import nn

from edgefit.errors import ConfigError, DeviceError, InputShapeError
from edgefit.hardware import estimate, get_device
from edgefit.metrics import profile
from edgefit.report.html import ReportModel, TableSection, html_report


def metrics(page: str) -> dict[tuple[int, str], str]:
    """{(model index, metric key): data-v} of every summary metric."""
    found = re.findall(r'class="metric[^"]*" data-model="(\d+)" data-metric="([^"]+)" data-v="([^"]*)"', page)
    return {(int(i), k): v for i, k, v in found}


def tiny(label="tiny") -> ReportModel:
    torch.manual_seed(0)
    return ReportModel(label, nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)), ((1, 4),))


def test_summary_numbers_are_the_profile_and_estimate(tmp_path):
    res = html_report([tiny()], tmp_path / "r.html", devices=("stm32f746",), measure=False)
    m = metrics(res.html)
    # hand-derived: Linear(4,3) 4*3 MACs + 3 bias, Linear(3,2) 3*2 MACs + 2 bias
    assert m[(0, "params")] == "23" and m[(0, "macs")] == "18" and m[(0, "flops")] == "36"
    p = profile(tiny().model, input_shape=(1, 4))
    e = estimate(p, get_device("stm32f746"))
    assert m[(0, "model_size_bytes")] == repr(p.totals.model_size_bytes) == "92.0"
    assert m[(0, "peak_activations")] == repr(p.totals.peak_activations)
    assert m[(0, "seconds@stm32f746")] == repr(e.totals.seconds)
    assert m[(0, "joules@stm32f746")] == repr(e.totals.joules)
    assert m[(0, "data_share@stm32f746")] == repr(e.totals.data_share)
    assert m[(0, "fits@stm32f746")] == "True"
    assert e.totals.fit_message in res.html


def test_layer_table_rows_are_the_profile_rows(tmp_path):
    res = html_report([tiny()], None, devices=("jetson_orin_nano",), measure=False)
    rows = re.findall(r'<tr data-layer="([^"]*)">(.*?)</tr>', res.html)
    p = res.results[0].profile
    assert [name for name, _ in rows] == [r.name for r in p.layers]
    for (_, cells), row, est in zip(rows, p.layers, res.results[0].estimates["jetson_orin_nano"].layers, strict=True):
        values = re.findall(r'data-v="([^"]*)"', cells)
        assert values[1:5] == [repr(row.params), repr(row.macs), repr(row.activations), repr(row.intensity)]
        assert values[5:] == [repr(est.seconds), repr(est.joules)]


def test_measured_numbers_come_from_the_host_measurement(tmp_path):
    res = html_report([tiny()], None, devices=(), measure=True)
    r = res.results[0]
    m = metrics(res.html)
    assert m[(0, "host_latency_s")] == repr(r.latency.median_s) and r.latency.runs >= 3
    assert m[(0, "host_throughput")] == repr(r.throughput[1])
    assert "accuracy: no dataset given" in res.html


def test_compressed_pair_side_by_side_with_stages_and_accuracy(tmp_path, digits_pair):
    dense, small, rep = digits_pair
    res = html_report([dense, small], tmp_path / "r.html", devices=("stm32f746",), dataset="digits", measure=False)
    d, c = res.results
    assert d.file_bytes == dense.stat().st_size and c.file_bytes == small.stat().st_size == rep.file_bytes["P+Q+H"]
    assert c.accuracy == rep.accuracy["P+Q+H"]  # evaluated again on the loaded file
    stages = c.entry.stages
    # the stages rewritten from the decoded weights: the dense and pruned files the pipeline wrote, to
    # the byte; P+Q at the width the codebooks need (here 3 bits: 6 and 8 of the 16 centroids are kept)
    assert stages.dense_bytes == rep.dense_file_bytes
    assert stages.stage_bytes["P"] == rep.file_bytes["P"]
    assert stages.stage_bytes["P+Q+H"] == rep.file_bytes["P+Q+H"]
    assert stages.stage_bytes["P+Q"] < rep.file_bytes["P+Q"]
    assert dict(stages.accuracy) == {"P+Q": round(rep.accuracy["P+Q"], 6), "P+Q+H": c.accuracy}
    m = metrics(res.html)
    assert m[(1, "file_bytes")] == repr(rep.file_bytes["P+Q+H"])
    ratio = re.search(r"<td>bytes on disk</td>.*?</tr>", res.html).group(0)
    assert repr(c.file_bytes / d.file_bytes) in ratio
    assert "Deep Compression stages" in res.html and f'data-v="{rep.file_bytes["P"]}"' in res.html
    assert m[(1, "model_size_bytes")] == repr(c.profile.totals.model_size_bytes)
    assert c.profile.totals.model_size_bytes < d.profile.totals.model_size_bytes  # 4-bit codebooks


@pytest.mark.slow
def test_sensitivity_curves(tmp_path, digits_pair):
    dense, _, _ = digits_pair
    res = html_report([dense], None, devices=(), dataset="digits", measure=False, sensitivity=True)
    assert "Pruning sensitivity" in res.html and res.html.count('data-chart="lines"') == 1


def test_module_names_are_escaped(tmp_path):
    net = nn.Sequential()
    net.add_module("<script>alert(1)</script>", nn.Linear(4, 2))
    res = html_report([ReportModel('<img src=x onerror="alert(2)">', net, ((1, 4),))], tmp_path / "r.html",
                      devices=("stm32f746",), measure=False)
    assert "<script>alert" not in res.html and "<img src=x" not in res.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in res.html
    assert res.html.count("<script>") == 1  # the page's own


def test_self_contained_and_written_atomically(tmp_path):
    out = tmp_path / "sub" / "r.html"
    res = html_report([tiny()], out, devices=("stm32f746",), measure=False,
                      extra_sections=[TableSection("family", ("width", "ms"), ((0.5, 1.2),))])
    assert out.read_text() == res.html and res.bytes == out.stat().st_size
    assert sorted(p.name for p in out.parent.iterdir()) == ["r.html"]
    assert not re.search(r"https?://", res.html)
    assert "default-src 'none'" in res.html and "<link" not in res.html and " src=" not in res.html


def test_bad_inputs_are_one_clear_error(tmp_path):
    with pytest.raises(DeviceError, match="unknown device 'stm32'"):
        html_report([tiny()], tmp_path / "r.html", devices=("stm32",), measure=False)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="cannot write the report to"):
        html_report([tiny()], blocker / "r.html", measure=False)
    with pytest.raises(ConfigError, match="it is a directory"):
        html_report([tiny()], tmp_path, measure=False)
    other = ReportModel("other", nn.Linear(5, 2), ((1, 5),))
    with pytest.raises(ConfigError, match=r"cannot compare other \(1x5 float32\) with tiny \(1x4 float32\)"):
        html_report([tiny(), other], None, measure=False)
    with pytest.raises(InputShapeError):
        ReportModel("x", nn.Linear(2, 2), ((0, 2),))
    with pytest.raises(ConfigError, match="at least one model"):
        html_report([], None)
    assert not (tmp_path / "r.html").exists()


def test_untrained_model_gets_no_accuracy(digits_pair):
    res = html_report(["lenet_300_100_digits"], None, devices=(), dataset="digits", measure=False)
    assert res.results[0].accuracy is None
    assert "no trained weights" in res.html


def test_model_on_meta_is_profiled_not_measured():
    from edgefit.zoo import create

    m = ReportModel("llama_tiny", create("llama_tiny", device="meta"), ((1, 32),), "int64")
    res = html_report([m], None, devices=("jetson_orin_nano",))
    assert res.results[0].latency is None and "on the meta device" in res.html
