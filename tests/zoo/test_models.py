"""Every registered model builds, runs and has the parameter count derived by hand."""

from __future__ import annotations

import pytest
import torch

from edgefit.zoo import create, get_spec, list_models


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def n_params_without_bias(model: torch.nn.Module) -> int:
    return sum(p.numel() for name, p in model.named_parameters() if not name.endswith("bias"))


# ---------------------------------------------------------------- closed forms, by hand

def conv(c_in: int, c_out: int, k: int, groups: int = 1, bias: bool = True) -> int:
    return c_out * (c_in // groups) * k * k + (c_out if bias else 0)


def linear(n_in: int, n_out: int, bias: bool = True) -> int:
    return n_in * n_out + (n_out if bias else 0)


def bn(c: int) -> int:
    return 2 * c  # scale and shift; running stats are buffers


def vgg16() -> int:
    chans = [3, 64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    convs = sum(conv(a, b, 3) for a, b in zip(chans[:-1], chans[1:], strict=True))
    # 14,714,688 conv + 102,764,544 + 16,781,312 + 4,097,000 fc = 138,357,544
    return convs + linear(512 * 7 * 7, 4096) + linear(4096, 4096) + linear(4096, 1000)


def resnet(groups: int, width_per_group: int) -> int:
    total = conv(3, 64, 7, bias=False) + bn(64)
    c_in = 64
    for planes, blocks in zip((64, 128, 256, 512), (3, 4, 6, 3), strict=True):
        width = planes * width_per_group // 64 * groups
        out = 4 * planes
        for j in range(blocks):
            total += conv(c_in, width, 1, bias=False) + bn(width)
            total += conv(width, width, 3, groups, bias=False) + bn(width)
            total += conv(width, out, 1, bias=False) + bn(out)
            if j == 0:  # projection shortcut: channels change (and stride 2 after stage 1)
                total += conv(c_in, out, 1, bias=False) + bn(out)
            c_in = out
    return total + linear(2048, 1000)


def fire(c_in: int, s: int, e1: int, e3: int) -> int:
    return conv(c_in, s, 1) + conv(s, e1, 1) + conv(s, e3, 3)


def squeezenet1_0() -> int:
    # 14,208 (conv1) + 8 fire modules + 513,000 (final 1x1 conv) = 1,248,424
    fires = [(96, 16, 64, 64), (128, 16, 64, 64), (128, 32, 128, 128), (256, 32, 128, 128),
             (256, 48, 192, 192), (384, 48, 192, 192), (384, 64, 256, 256), (512, 64, 256, 256)]
    return conv(3, 96, 7) + sum(fire(*f) for f in fires) + conv(512, 1000, 1)


def mobilenet_v1(alpha: float) -> int:
    outs = [64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]
    c = int(32 * alpha)
    total = conv(3, c, 3, bias=False) + bn(c)
    for o in outs:
        o = int(o * alpha)
        total += conv(c, c, 3, groups=c, bias=False) + bn(c) + conv(c, o, 1, bias=False) + bn(o)
        c = o
    return total + linear(c, 1000)


def shufflenet_v1_g3() -> int:
    g, total, c_in = 3, conv(3, 24, 3, bias=False) + bn(24), 24
    for out, repeats in ((240, 4), (480, 8), (960, 4)):
        for j in range(repeats):
            mid, branch = out // 4, (out - c_in if j == 0 else out)
            g1 = 1 if c_in == 24 else g  # no group conv on the 24-channel stem output
            total += conv(c_in, mid, 1, g1, bias=False) + bn(mid)
            total += conv(mid, mid, 3, mid, bias=False) + bn(mid)
            total += conv(mid, branch, 1, g, bias=False) + bn(branch)
            c_in = out
    return total + linear(960, 1000)


def encoder(vocab: int, dim: int, layers: int, ffn: int, positions: int = 512) -> int:
    embeddings = (vocab + positions + 2) * dim + 2 * dim  # word, position, type, LayerNorm
    layer = 4 * linear(dim, dim) + linear(dim, ffn) + linear(ffn, dim) + 2 * 2 * dim
    return embeddings + layers * layer


def llama(dim: int, layers: int, heads: int, kv_heads: int, ffn: int, vocab: int) -> int:
    kv_dim = kv_heads * dim // heads
    layer = 2 * dim * dim + 2 * dim * kv_dim + 3 * dim * ffn + 2 * dim  # attn, SwiGLU, 2 RMSNorm
    return 2 * vocab * dim + dim + layers * layer  # untied embedding + output, final norm


LENET5 = conv(1, 6, 5) + conv(6, 16, 5) + linear(400, 120) + linear(120, 84) + linear(84, 10)

# name -> (parameters, parameters without bias); BN scale/shift counts as weights.
EXPECTED = {
    # 34,848 + 307,200 + 884,736 + 663,552 + 442,368 + 37,748,736 + 16,777,216 + 4,096,000
    # = 60,954,656 weights (reference/INDEX.md), plus 10,568 biases.
    "alexnet": (60_965_224, 60_954_656),
    # Hugging Face BertModel 109,482,240 minus the pooler 768 * 768 + 768.
    "bert_base": (encoder(30522, 768, 12, 3072), None),
    "bert_tiny": (encoder(30522, 128, 2, 512), None),
    # torchvision densenet121
    "densenet121": (7_978_856, None),
    # MobileNet v1 without its classifier 3,206,976 + NNConv5 decoder 748,000 conv
    # weights + 5,954 BN (conv weights alone: 3,933,088 = the slides' 3.93M)
    "fastdepth": (3_960_930, None),
    # torchvision googlenet without aux (6,624,904, 3x3 third branch) plus the paper's 5x5:
    # 16 * sum(5x5reduce * 5x5) = 16 * 23,808 = 380,928 -> 7,005,832 (slides: 7.0M).
    "googlenet": (6_624_904 + 16 * 23_808, None),
    # 156 + 2,416 + 48,120 + 10,164 + 850 = 61,706; without bias 150 + 2,400 + 48,000
    # + 10,080 + 840 = 61,470 (the table's "60k" counts the 1998 sparse C3).
    "lenet5": (LENET5, LENET5 - (6 + 16 + 120 + 84 + 10)),
    # 520 + 25,050 + 100,500 (50*2*2 -> 500) + 5,010
    "lenet5_digits": (conv(1, 20, 5) + conv(20, 50, 5) + linear(200, 500) + linear(500, 10), None),
    # 235,500 + 30,100 + 1,010
    "lenet_300_100": (linear(784, 300) + linear(300, 100) + linear(100, 10), 266_200),
    "lenet_300_100_digits": (linear(64, 300) + linear(300, 100) + linear(100, 10), 50_200),
    # defaults dim 256, 4 layers, 8 heads, ffn 2/3*4*256 -> 768 (multiple of 256), vocab 32000
    "llama": (llama(256, 4, 8, 8, 768, 32000), None),
    # 2 * 32000 * 4096 + 4096 + 32 * (4 * 4096^2 + 3 * 4096 * 11008 + 2 * 4096)
    "llama_7b": (6_738_415_616, 6_738_415_616),
    "llama_tiny": (llama(64, 2, 4, 2, 176, 256), None),
    # 4,231,976 = 4.2M (reference/004 Table 8)
    "mobilenet_v1": (mobilenet_v1(1.0), None),
    # 3x3 conv 1->32 (288 + 64 BN), then depthwise-separable layers c->o: 9c + 2c + c*o + 2o;
    # 32->64, 64->128, 128->128, 128->256, 256->256; fc 256*10 + 10
    "mobilenet_digits": (
        352 + sum(11 * c + c * o + 2 * o for c, o in ((32, 64), (64, 128), (128, 128), (128, 256), (256, 256)))
        + 2_570,
        None,
    ),
    # torchvision mobilenet_v2
    "mobilenet_v2": (3_504_872, None),
    "resnet50": (resnet(1, 64), None),
    "resnext50_32x4d": (resnet(32, 4), None),
    "shufflenet_v1": (shufflenet_v1_g3(), None),
    # torchvision shufflenet_v2_x1_0
    "shufflenet_v2": (2_278_604, None),
    "squeezenet1_0": (squeezenet1_0(), None),
    "transformer_encoder": (encoder(1000, 64, 2, 256, positions=128), None),
    "vgg16": (vgg16(), None),
}


def test_closed_forms_match_known_totals():
    assert EXPECTED["vgg16"][0] == 138_357_544
    assert EXPECTED["resnet50"][0] == 25_557_032  # torchvision resnet50
    assert EXPECTED["resnext50_32x4d"][0] == 25_028_904  # torchvision resnext50_32x4d
    assert EXPECTED["squeezenet1_0"][0] == 1_248_424  # torchvision squeezenet1_0
    assert EXPECTED["mobilenet_v1"][0] == 4_231_976
    assert EXPECTED["lenet5"] == (61_706, 61_470)
    assert EXPECTED["bert_base"][0] == 109_482_240 - (768 * 768 + 768)
    assert EXPECTED["llama_7b"][0] == llama(4096, 32, 32, 32, 11008, 32000)


def test_every_model_has_an_expected_count():
    assert sorted(EXPECTED) == list_models()


@pytest.mark.parametrize("name", list_models())
def test_parameter_count(name):
    model = create(name, device="meta")
    total, without_bias = EXPECTED[name]
    assert n_params(model) == total
    if without_bias is not None:
        assert n_params_without_bias(model) == without_bias


@pytest.mark.parametrize("name", list_models())
def test_builds_and_runs_on_meta(name):
    spec = get_spec(name)
    model = create(name, device="meta").eval()
    assert all(p.is_meta for p in model.parameters())
    dtype = torch.int64 if spec.input_dtype == "int64" else torch.float32
    with torch.no_grad():
        out = model(torch.zeros(spec.input_shape, dtype=dtype, device="meta"))
    if spec.family in ("transformer", "llama"):
        assert out.shape[:2] == spec.input_shape
    elif spec.family == "fastdepth":  # a depth map of the input's size
        assert out.shape == (1, 1, *spec.input_shape[2:])
    else:
        assert out.shape == (1, 10 if spec.family == "lenet" or name.endswith("_digits") else 1000)


@pytest.mark.parametrize("name", list_models())
def test_spec_is_complete(name):
    spec = get_spec(name)
    assert spec.name == name
    assert spec.input_shape[0] == 1
    assert spec.input_dtype in ("float32", "int64")
    assert spec.family and spec.paper
    assert spec.builder.__doc__
    assert "device" in spec.options()


def test_mobilenet_v1_half_width_160():
    # 0.50 MobileNet-160: 1.32M parameters in reference/004 Table 9 (BN excluded there)
    model = create("mobilenet_v1", alpha=0.5, resolution=160, device="meta")
    assert n_params(model) == mobilenet_v1(0.5) == 1_331_592
    bn_params = sum(p.numel() for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)
                    for p in m.parameters())
    assert round((n_params(model) - bn_params) / 1e6, 2) == 1.32
    assert get_spec("mobilenet_v1").input_shape_for(alpha=0.5, resolution=160) == (1, 3, 160, 160)


def test_googlenet_torchvision_layout():
    assert n_params(create("googlenet", kernel5=3, device="meta")) == 6_624_904


def test_alexnet_without_bias_option():
    assert n_params(create("alexnet", bias=False, device="meta")) == 60_954_656


SMALL = [
    ("lenet5", {}, (1, 10)),
    ("lenet5_digits", {}, (1, 10)),
    ("lenet_300_100", {}, (1, 10)),
    ("lenet_300_100_digits", {}, (1, 10)),
    ("mobilenet_v1", {"resolution": 64, "alpha": 0.25}, (1, 1000)),
    ("mobilenet_v2", {"resolution": 64, "width_mult": 0.5}, (1, 1000)),
    ("shufflenet_v1", {"resolution": 64}, (1, 1000)),
    ("shufflenet_v2", {"resolution": 64, "width_mult": 0.5}, (1, 1000)),
    ("llama_tiny", {"seq_len": 16}, (1, 16, 256)),
    ("llama_tiny", {"seq_len": 16, "attention": "matmul"}, (1, 16, 256)),
    ("transformer_encoder", {"seq_len": 16}, (1, 16, 64)),
    ("transformer_encoder", {"seq_len": 16, "attention": "mha"}, (1, 16, 64)),
]


@pytest.mark.parametrize(("name", "options", "out_shape"), SMALL)
def test_forward_real_input(name, options, out_shape):
    torch.manual_seed(0)
    spec = get_spec(name)
    model = create(name, **options).eval()
    shape = spec.input_shape_for(**options)
    if spec.input_dtype == "int64":
        x = torch.randint(0, 200, shape)
    else:
        x = torch.randn(shape)
    with torch.no_grad():
        out = model(x)
    assert out.shape == out_shape
    assert torch.isfinite(out).all()


def test_lenet_300_100_accepts_images():
    model = create("lenet_300_100").eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)
        assert model(torch.randn(2, 784)).shape == (2, 10)


def test_llama_is_causal():
    torch.manual_seed(0)
    model = create("llama_tiny", seq_len=8).eval()
    ids = torch.randint(0, 256, (1, 8))
    changed = ids.clone()
    changed[0, -1] = (ids[0, -1] + 1) % 256
    with torch.no_grad():
        a, b = model(ids), model(changed)
    torch.testing.assert_close(a[:, :-1], b[:, :-1])
    assert not torch.allclose(a[:, -1], b[:, -1])


def test_sequence_length_changes_input_shape():
    assert get_spec("bert_base").input_shape_for(seq_len=64) == (1, 64)
    assert get_spec("llama_7b").input_shape_for(seq_len=256, device="meta") == (1, 256)
    assert get_spec("resnet50").input_shape_for(num_classes=10) == (1, 3, 224, 224)
