"""The popular-CNN summary of reference/003 and the MobileNet tables of reference/004,
to the precision they print (bias ignored, as the slides do)."""

import pytest

import edgefit
from edgefit.zoo import create, get_spec


def printed(value, text):
    """True when `value` prints as `text` at the table's precision (e.g. '15.5G', '2.6k', '569M')."""
    units = {"k": 1e3, "M": 1e6, "G": 1e9}
    number, unit = (text[:-1], units[text[-1]]) if text[-1] in units else (text, 1)
    decimals = len(number.split(".")[1]) if "." in number else 0
    step = unit * 10**-decimals
    # tables round or truncate: accept either
    return round(value / step) * step == pytest.approx(float(number) * unit) or (
        int(value / step) * step == pytest.approx(float(number) * unit)
    )


def split(name, **options):
    spec = get_spec(name)
    p = edgefit.profile(create(name, device="meta", **options), input_shape=spec.input_shape_for(**options))
    conv = [r for r in p.layers if r.kind.startswith("Conv")]
    fc = [r for r in p.layers if r.kind == "Linear"]
    return p, sum(r.params_without_bias for r in conv), sum(r.macs for r in conv), sum(r.params_without_bias for r in fc), sum(r.macs for r in fc)


# name, options, conv weights, conv MACs, fc weights, fc MACs, total weights, total MACs (reference/003)
SUMMARY = [
    ("alexnet", {}, "2.3M", "666M", "58.6M", "58.6M", "61M", "724M"),
    ("vgg16", {}, "14.7M", "15.3G", "124M", "124M", "138M", "15.5G"),
    ("resnet50", {"stride_in_1x1": True}, "23.5M", "3.86G", "2M", "2M", "25.5M", "3.9G"),
]


@pytest.mark.parametrize("row", SUMMARY, ids=lambda r: r[0])
def test_popular_cnn_summary(row):
    name, options, cw, cm, fw, fm, tw, tm = row
    p, conv_w, conv_m, fc_w, fc_m = split(name, **options)
    assert printed(conv_w, cw) and printed(conv_m, cm)
    assert printed(fc_w, fw) and printed(fc_m, fm)
    assert printed(p.totals.params_without_bias, tw) and printed(p.totals.macs, tm)


def test_resnet50_default_is_torchvision_v15():
    p, *_ = split("resnet50")
    assert p.totals.params == 25_557_032 and p.totals.macs == 4_089_184_256


def test_googlenet():
    """7.0M weights as printed. MACs: the per-module counts reproduce the Inception
    paper's own Table 1 (conv1 118M, 3a 128M, 3b 304M, 4e 170M...), whose sum is
    ~1.58G; the summary table's 1.43G cannot be reproduced from that table."""
    p, conv_w, _, fc_w, fc_m = split("googlenet")
    assert printed(p.totals.params_without_bias, "7M") and printed(fc_w, "1M") and printed(conv_w, "6.0M")
    per_block = {}
    for r in p.layers:
        per_block[r.name.split(".")[0]] = per_block.get(r.name.split(".")[0], 0) + r.macs
    paper = {"conv1": 118, "inception3a": 128, "inception3b": 304, "inception4a": 73, "inception4b": 88,
             "inception4c": 100, "inception4d": 119, "inception4e": 170, "inception5b": 71, "fc": 1}
    for block, mmacs in paper.items():
        assert round(per_block[block] / 1e6) == pytest.approx(mmacs, abs=1), block
    assert round((per_block["conv2"] + per_block["conv3"]) / 1e6) == 360


def test_lenet5():
    """LeNet-5 (dense C3): conv weights 2.6k, FC weights and MACs 58k over the two FC
    layers the table counts (C5 as 400x120 and F6 120x84; the paper's output layer is
    an RBF), total 60k. The table's conv MACs (283k, total 341k) cannot be reproduced:
    C1 is 6x25x28x28 = 117,600 and C3 16x6x25x10x10 = 240,000 (151,600 with the
    paper's sparse C3)."""
    p, conv_w, conv_m, _, _ = split("lenet5")
    fc = [r for r in p.layers if r.kind == "Linear"]
    assert printed(conv_w, "2.6k")
    two_fc = fc[0].params_without_bias + fc[1].params_without_bias
    assert two_fc == 400 * 120 + 120 * 84 and printed(two_fc, "58k")
    assert printed(conv_w + two_fc, "60k")
    assert conv_m == 117_600 + 240_000


@pytest.mark.parametrize(
    "options,macs,params",
    [({}, "569M", "4.2M"), ({"alpha": 0.5, "resolution": 160}, "76M", "1.32M")],
)
def test_mobilenet_tables(options, macs, params):
    """reference/004 tables 8 and 9. 0.50 MobileNet-160 counts 76,524,800 MACs and
    1,325,120 weights without bias (1,331,592 with the batch-norm and fc biases): the
    paper prints 76 and 1.32."""
    p, *_ = split("mobilenet_v1", **options)
    assert printed(p.totals.macs, macs)
    assert printed(p.totals.params_without_bias, params)


def test_squeezenet_params():
    p, *_ = split("squeezenet1_0")
    assert p.totals.params == 1_248_424 and printed(p.totals.params, "1.25M")


def test_llama_7b_on_meta():
    spec = get_spec("llama_7b")
    p = edgefit.profile(create("llama_7b", device="meta"), input_shape=spec.input_shape, input_dtype=spec.input_dtype)
    assert p.totals.params == 6_738_415_616
    seq, dim, layers, ffn, vocab = 128, 4096, 32, 11008, 32000
    closed = seq * (layers * (4 * dim * dim + 3 * dim * ffn) + dim * vocab) + layers * 2 * seq * seq * dim
    assert p.totals.macs == closed
