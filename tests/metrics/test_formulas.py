"""Closed-form MAC counts over randomized layer shapes (1 MAC = 2 FLOPs, bias not a MAC)."""

import math
import random

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import edgefit
from edgefit.errors import RegistryError
from edgefit.metrics import formula_for, register_formula
from edgefit.report import profile_table

RNG = random.Random(1234)


def conv_out(size, k, s, p, d):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def conv_cases(n_dims, count=12):
    cases = []
    for _ in range(count):
        groups = RNG.choice([1, 1, 2, 4])
        cin = groups * RNG.randint(1, 6)
        cout = groups * RNG.randint(1, 6)
        k = RNG.choice([1, 3, 5])
        s = RNG.choice([1, 2])
        p = RNG.choice([0, 1, 2])
        d = RNG.choice([1, 1, 2])
        size = RNG.randint(9, 20)
        batch = RNG.randint(1, 3)
        cases.append((n_dims, batch, cin, cout, k, s, p, d, groups, size))
    return cases


@pytest.mark.parametrize("case", conv_cases(1) + conv_cases(2) + conv_cases(3, 6))
def test_conv_macs_closed_form(case):
    n, batch, cin, cout, k, s, p, d, g, size = case
    conv = [nn.Conv1d, nn.Conv2d, nn.Conv3d][n - 1](cin, cout, k, stride=s, padding=p, dilation=d, groups=g)
    prof = edgefit.profile(conv, input_shape=(batch, cin) + (size,) * n)
    out = conv_out(size, k, s, p, d)
    expected = batch * cout * out**n * (cin // g) * k**n
    assert prof.totals.macs == expected
    assert prof.totals.flops == 2 * expected
    assert prof.totals.other_ops == batch * cout * out**n  # the bias adds
    assert prof.totals.params == cout * cin // g * k**n + cout


@pytest.mark.parametrize("seed", range(8))
def test_transposed_conv_macs(seed):
    r = random.Random(seed)
    g = r.choice([1, 2])
    cin, cout = g * r.randint(1, 5), g * r.randint(1, 5)
    k, s, p, op = r.choice([2, 3, 4]), r.choice([1, 2]), r.choice([0, 1]), 0
    size = r.randint(4, 10)
    conv = nn.ConvTranspose2d(cin, cout, k, stride=s, padding=p, output_padding=op, groups=g, bias=False)
    prof = edgefit.profile(conv, input_shape=(1, cin, size, size))
    # every input element is scattered through C_out/groups x k x k weights
    assert prof.totals.macs == cin * size * size * (cout // g) * k * k
    out = (size - 1) * s - 2 * p + (k - 1) + op + 1
    assert prof.layers[0].output_shape == (1, cout, out, out)


def test_depthwise_and_pointwise():
    dw = nn.Conv2d(32, 32, 3, padding=1, groups=32, bias=False)
    pw = nn.Conv2d(32, 64, 1, bias=False)
    assert edgefit.profile(dw, input_shape=(1, 32, 56, 56)).totals.macs == 32 * 56 * 56 * 3 * 3
    assert edgefit.profile(pw, input_shape=(1, 32, 56, 56)).totals.macs == 64 * 56 * 56 * 32


@pytest.mark.parametrize("seed", range(10))
def test_linear_matmul_bmm_einsum(seed):
    r = random.Random(seed)
    # K >= 2: with a size-1 contraction torch rewrites einsum as an elementwise
    # mul, which edgefit then counts in other_ops, not in MACs.
    b, m, n = (r.randint(1, 7) for _ in range(3))
    k = r.randint(2, 7)
    lin = nn.Linear(k, n)
    assert edgefit.profile(lin, input_shape=(b, m, k)).totals.macs == b * m * k * n

    class Fn(nn.Module):
        def forward(self, x, y):
            return x @ y, torch.matmul(x, y), torch.bmm(x, y), torch.einsum("bmk,bkn->bmn", x, y)

    prof = edgefit.profile(Fn(), input_shape=[(b, m, k), (b, k, n)])
    assert prof.totals.macs == 4 * b * m * k * n
    assert prof.layers[0].name == ""  # functional calls of the root's own forward


def test_functional_calls_attributed_to_calling_module():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(8, 16))
            self.fc = nn.Linear(8, 8, bias=False)

        def forward(self, x):
            return self.fc(F.linear(x, self.w)) + x[..., :8]

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = Block()

        def forward(self, x):
            return self.block(x)

    prof = edgefit.profile(Net(), input_shape=(2, 16))
    block = prof.layer("block")
    assert block.macs == 2 * 16 * 8 and block.params == 8 * 16
    assert prof.layer("block.fc").macs == 2 * 8 * 8
    assert prof.totals.macs == 2 * 16 * 8 + 2 * 8 * 8


def test_formula_registry_rejects_duplicates_and_explains_misses():
    with pytest.raises(RegistryError):
        register_formula("convolution")(lambda op: None)
    with pytest.raises(RegistryError, match="convolution"):
        formula_for("convolutoin")


def test_uncounted_ops_are_listed_not_zero():
    class Odd(nn.Module):
        def forward(self, x):
            return torch.special.bessel_j0(x) + 1

    with pytest.warns(edgefit.metrics.UncountedOpsWarning, match="special_bessel_j0"):
        prof = edgefit.profile(Odd(), input_shape=(3, 4))
    assert prof.uncounted == {"special_bessel_j0": 1}
    assert prof.coverage == pytest.approx(1 / 2)
    assert "special_bessel_j0" in profile_table(prof)
    assert prof.to_dict()["uncounted"] == {"special_bessel_j0": 1}


def test_other_ops_conventions():
    x = (2, 8, 6, 6)
    bn = nn.BatchNorm2d(8).eval()
    assert edgefit.profile(bn, input_shape=x).totals.other_ops == 2 * math.prod(x)
    assert edgefit.profile(nn.ReLU(), input_shape=x).totals.other_ops == math.prod(x)
    assert edgefit.profile(nn.Softmax(-1), input_shape=x).totals.other_ops == 5 * math.prod(x)
    assert edgefit.profile(nn.LayerNorm(6), input_shape=x).totals.other_ops == 8 * math.prod(x)
    pool = edgefit.profile(nn.MaxPool2d(2), input_shape=x)
    assert pool.totals.other_ops == 2 * 8 * 3 * 3 * 4 and pool.totals.activations == math.prod(x) + 2 * 8 * 3 * 3
    gap = edgefit.profile(nn.AdaptiveAvgPool2d(1), input_shape=x)
    assert gap.totals.other_ops == math.prod(x) and gap.layers[0].activations == 16
    for p in (bn, nn.ReLU()):
        assert edgefit.profile(p, input_shape=x).totals.macs == 0


def test_per_layer_bit_widths():
    net = nn.Sequential(nn.Linear(10, 20, bias=False), nn.ReLU(), nn.Linear(20, 5, bias=False))
    p = edgefit.profile(net, input_shape=(1, 10), bits={"0": 8, "default": 4})
    assert p.layer("0").weight_bytes == 200 and p.layer("2").weight_bytes == 50
    assert p.totals.model_size_bytes == 250
    p5 = edgefit.profile(net, input_shape=(1, 10), bits=5)
    assert p5.totals.model_size_bytes == 300 * 5 / 8
    # bytes moved = weights + input + output at the activation bit width
    assert p5.layer("0").bytes_moved == 200 * 5 / 8 + (10 + 20) * 5 / 8
    assert p5.layer("0").intensity == pytest.approx(2 * 200 / p5.layer("0").bytes_moved)


def test_bad_bits():
    with pytest.raises(edgefit.EdgefitError):
        edgefit.profile(nn.Linear(2, 2), input_shape=(1, 2), bits=0)
    with pytest.raises(edgefit.EdgefitError):
        edgefit.profile(nn.Linear(2, 2), input_shape=(1, 2), bits={"x": 99})


def test_fast_rows_equal_regular_rows():
    from dataclasses import fields

    from edgefit.metrics import LayerStats

    p = edgefit.profile(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), input_shape=(1, 3, 8, 8))
    row = p.layers[0]
    same = LayerStats(**{f.name: getattr(row, f.name) for f in fields(LayerStats)})
    assert row == same and hash(row.name) == hash(same.name)
    assert type(row.output_shape) is tuple and type(row.input_shapes[0]) is tuple
    with pytest.raises(AttributeError):
        row.macs = 1  # still frozen


def test_remaining_other_ops_conventions_exactly():
    # linear: MACs rows x in x out, bias adds rows x out (not MACs)
    p = edgefit.profile(nn.Linear(6, 5), input_shape=(3, 6))
    assert (p.totals.macs, p.totals.other_ops) == (3 * 6 * 5, 3 * 5)
    # batch norm computing batch statistics: 8 ops per element, plus the one add
    # of num_batches_tracked += 1 that training mode runs
    p = edgefit.profile(nn.BatchNorm2d(4), input_shape=(2, 4, 3, 3), mode="train")
    assert p.totals.other_ops == 8 * 2 * 4 * 3 * 3 + 1
    # interpolation: nearest is a copy; bilinear weighs 2^2 taps per output element
    up = edgefit.profile(nn.Upsample(scale_factor=2, mode="nearest"), input_shape=(1, 3, 4, 4))
    assert up.totals.other_ops == 0 and up.totals.activations == 48 + 3 * 8 * 8
    bil = edgefit.profile(nn.Upsample(scale_factor=2, mode="bilinear"), input_shape=(1, 3, 4, 4))
    assert bil.totals.other_ops == 4 * 3 * 8 * 8
    # an embedding lookup: no arithmetic, but a new activation
    emb = edgefit.profile(nn.Embedding(10, 7), input_shape=(1, 4), input_dtype=torch.long)
    assert (emb.totals.macs, emb.totals.other_ops, emb.totals.activations) == (0, 0, 4 + 4 * 7)


def test_sdpa_other_ops_mirror_the_math_path():
    class Attn(nn.Module):
        def forward(self, q, k, v):
            return F.scaled_dot_product_attention(q, k, v)

    b, h, L, S, E = 1, 2, 3, 4, 5
    p = edgefit.profile(Attn(), input_shape=[(b, h, L, E), (b, h, S, E), (b, h, S, E)])
    scores = b * h * L * S
    # scaling q and k, then softmax at 5 ops per score
    assert p.totals.other_ops == b * h * L * E + b * h * S * E + 5 * scores
    assert p.totals.macs == scores * (E + E)


def test_peak_live_bytes_follow_the_activation_bit_width():
    net = nn.Sequential(nn.Linear(10, 20, bias=False), nn.Linear(20, 5, bias=False))
    p = edgefit.profile(net, input_shape=(1, 10), bits=8, activation_bits=4)
    assert p.totals.peak_live_activations == 10 + 20  # input alive while the first output is written
    assert p.totals.peak_live_bytes == 30 * 4 / 8
    assert p.totals.model_size_bytes == 300 * 8 / 8


class _WithAnUnusedLayer(nn.Module):
    """Linear(4, 8) -> relu (in the model's own forward) -> Linear(8, 2, no bias); one layer never called."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 8)
        self.b = nn.Linear(8, 2, bias=False)
        self.spare = nn.Linear(3, 3)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


def test_every_total_of_a_small_model_exactly():
    p = edgefit.profile(_WithAnUnusedLayer(), input_shape=(1, 4))
    t = p.totals
    # parameters: a 32 + 8, b 16, spare 9 + 3 (never called, still in the size); without biases 32 + 16 + 9
    assert (t.params, t.params_without_bias, t.unused_params) == (68, 57, 12)
    assert (t.macs, t.flops, t.bit_ops) == (32 + 16, 2 * 48, 0)
    assert t.other_ops == 8 + 8  # a's bias add, the relu
    # input 4 + outputs of the computing ops (a 8, b 2; the relu is not one)
    assert (t.activations, t.input_activations) == (4 + 8 + 2, 4)
    assert (t.peak_activations, t.peak_activations_layer) == (4 + 8, "a")  # a's input + output
    # a's output and the relu's are alive together while the relu writes (the input is dead by then)
    assert (t.peak_live_activations, t.peak_live_layer, t.peak_live_bytes) == (16, "", 16 * 4)
    assert t.model_size_bytes == 68 * 4
    # per row, weights + inputs + outputs at 4 bytes: a 40 + 4 + 8, relu 8 + 8, b 16 + 8 + 2
    assert [r.bytes_moved for r in p.layers] == [52 * 4, 16 * 4, 26 * 4]
    assert t.bytes_moved == (52 + 16 + 26) * 4


def test_convolution_attributes_exactly_and_the_same_from_tuples():
    from types import SimpleNamespace

    from edgefit.metrics.counting import _attributes

    net = nn.Sequential(nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2))
    row = edgefit.profile(net, input_shape=(1, 4, 8, 8)).layer("0")
    expected = {
        "stride": [2, 2], "padding": [1, 1], "dilation": [1, 1], "transposed": False,
        "output_padding": [0, 0], "groups": 2, "kernel_size": [3, 3],
    }
    assert list(row.attributes.items()) == list(expected.items())  # keys in this order, in the LUT's keys too
    # the same arguments as tuples (not what F.conv2d passes) take the general path: the same dict
    w = torch.empty(6, 2, 3, 3, device="meta")
    op = SimpleNamespace(name="convolution", args=(None, w, None, (2, 2), (1, 1), (1, 1), False, (0, 0), 2))
    assert list(_attributes(op).items()) == list(expected.items())
