"""LogNet with a weight width per layer: the lectures' "5 (conv), 4 (fc)" through
quantization, QAT, the bit-packed file, load-back and the profile/estimate."""

import json
import zlib

import numpy as np
import pytest
import torch
from torch import nn

from edgefit.compress import inspect_compressed, load_compressed, save_compressed
from edgefit.compress.quantize import (
    FixedPointConfig,
    LogConfig,
    expand_kinds,
    quantize_,
    quantize_aware_train_,
)
from edgefit.compress.quantize.log import log_levels
from edgefit.compress.quantize.precision import efz_precisions, model_widths, precision_report
from edgefit.errors import CompressedFileError, ConfigError
from edgefit.zoo import create

# The same four weights in a 2x2 conv and in a 4-input fc layer: max |w| = 1, so fsr = round(log2 1) = 0.
W = [1.0, -0.3, 0.01, 0.001]
LECTURES = {"conv": 5, "fc": 4}
NAME = "lenet5_digits"  # features.0, features.3: Conv2d; classifier.0, classifier.2: Linear
X = torch.from_numpy(np.random.default_rng(0).uniform(0, 16, (16, 1, 8, 8)).astype(np.float32))


def _conv_fc():
    net = nn.Sequential(nn.Conv2d(1, 1, 2, bias=False), nn.Flatten(), nn.Linear(4, 1, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor(W).reshape(1, 1, 2, 2))
        net[2].weight.copy_(torch.tensor([W]))
    return net


def test_two_widths_hand_derived():
    # 5 bits (conv): 15 exponents 2^-14 .. 2^0; 4 bits (fc): 7 exponents 2^-6 .. 2^0.
    # log2 0.3 = -1.74 -> 2^-2; log2 0.01 = -6.64 -> 2^-7; log2 0.001 = -9.97 -> 2^-10:
    # kept at 5 bits, below 2^-6 (zero) at 4 bits.
    net = _conv_fc()
    states = quantize_(net, LogConfig(bits=expand_kinds(LECTURES, net)))
    assert {n: s.bits for n, s in states.items()} == {"0": 5, "2": 4} and states.skipped == {}
    assert net[0].weight.reshape(-1).tolist() == [1.0, -0.25, 2.0**-7, 2.0**-10]
    assert net[2].weight.reshape(-1).tolist() == [1.0, -0.25, 0.0, 0.0]
    # codes: exponent e -> e + n (n = 15 or 7), + 2^(bits-1) when negative; 0 is code 0
    assert states["0"].codes.reshape(-1).tolist() == [15, 13 + 16, 8, 5]
    assert states["2"].codes.reshape(-1).tolist() == [7, 5 + 8, 0, 0]
    assert states["0"].levels.shape == (1, 32) and states["2"].levels.shape == (1, 16)
    assert states["2"].levels[0, :8].tolist() == [0.0] + [2.0**e for e in range(-6, 1)]
    assert torch.equal(states["0"].levels[0], log_levels(5, 0)) and float(states["0"].levels[0, 1]) == 2.0**-14


def test_one_width_still_applies_to_every_layer():
    net = _conv_fc()
    states = quantize_(net, LogConfig(bits=4))
    assert {n: s.bits for n, s in states.items()} == {"0": 4, "2": 4}
    assert net[0].weight.reshape(-1).tolist() == [1.0, -0.25, 0.0, 0.0]


def test_a_mapping_naming_some_layers_keeps_the_others_float_and_says_so():
    net = _conv_fc()
    states = quantize_(net, LogConfig(bits={"2": 3}))
    assert list(states) == ["2"] and states.skipped == {"0": "bits gives it no width; kept in float"}
    assert net[0].weight.reshape(-1).tolist() == pytest.approx(W)


def test_keep_first_last_with_a_mapping():
    m = create(NAME)
    states = quantize_(m, LogConfig(bits=expand_kinds(LECTURES, m), keep_first_last=True))
    assert {n: s.bits for n, s in states.items()} == {"features.3": 5, "classifier.0": 4}
    assert set(states.skipped) == {"features.0", "classifier.2"}


def test_expand_kinds():
    m = create(NAME)
    assert expand_kinds(LECTURES, m) == {"features.0": 5, "features.3": 5, "classifier.0": 4, "classifier.2": 4}
    assert expand_kinds({"conv": 5, "fc": 4, "classifier.2": 3}, m)["classifier.2"] == 3  # a layer name wins
    assert expand_kinds({"fc": 4}, m) == {"classifier.0": 4, "classifier.2": 4}
    assert expand_kinds(5, m) == 5

    class Named(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.conv2, self.fc = nn.Conv2d(1, 1, 1), nn.Conv2d(1, 1, 1), nn.Linear(1, 1)

    assert expand_kinds({"fc": 4}, Named()) == {"fc": 4}  # the only fc layer is called fc: one meaning
    with pytest.raises(ConfigError, match="'conv' is both a layer of the model and the kind of 2 layers"):
        expand_kinds({"conv": 4}, Named())


@pytest.mark.parametrize("bits, message", [
    ({"0": 6}, r"lognet supports 3..5-bit weights, got 6 for bits\['0'\]"),
    ({"0": 5, "2": 2}, r"lognet supports 3..5-bit weights, got 2 for bits\['2'\]"),
    ({"0": 4.0}, r"lognet supports 3..5-bit weights, got 4.0 for bits\['0'\]"),
    ({"0": True}, r"got True for bits\['0'\]"),
    ({}, "bits mapping is empty"),
    ({1: 4}, "bits keys must be layer names, got 1"),
    (8, "lognet supports 3..5-bit weights, got 8$"),
])
def test_bad_widths_are_one_line_config_errors(bits, message):
    with pytest.raises(ConfigError, match=message):
        LogConfig(bits=bits)


def test_unknown_layer_and_a_family_with_one_width():
    with pytest.raises(ConfigError, match="bits names layer 'fc9', which is not in the model. Layers: 0, 2"):
        quantize_(_conv_fc(), LogConfig(bits={"fc9": 4}))
    with pytest.raises(ConfigError, match="bits names layer 'fc9', which is not in the model"):
        expand_kinds({"conv": 5, "fc9": 4}, _conv_fc())
    with pytest.raises(ConfigError, match=r"fixed takes one bits value for every layer, got \{'0': 8\}"):
        FixedPointConfig(bits={"0": 8})


def _lectures_model():
    torch.manual_seed(0)
    m = create(NAME)
    quantize_(m, LogConfig(bits=expand_kinds(LECTURES, m), act_bits=4), calibration=X)
    return m


def test_file_round_trip_with_mixed_widths_is_exact(tmp_path):
    m = _lectures_model()
    p = tmp_path / "log.efz"
    res = save_compressed(m, p, model_name=NAME)
    widths = {"features.0": 5, "features.3": 5, "classifier.0": 4, "classifier.2": 4}
    numel = {"features.0": 500, "features.3": 25_000, "classifier.0": 100_000, "classifier.2": 5_000}
    for layer, bits in widths.items():
        enc, nbytes, fields = res.entries[f"{layer}.weight"]
        # each layer's codes at its own width, plus its 2^bits fp32 level table
        assert (enc, fields[:3]) == ("lut", [bits, 1, 2**bits]) and nbytes == -(-numel[layer] * bits // 8) + 4 * 2**bits
    rows = {r["name"]: r for r in inspect_compressed(p)["tensors"]}
    assert {k: rows[f"{k}.weight"]["bits"] for k in widths} == widths
    loaded = load_compressed(p)
    for (k, a), b in zip(m.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a.view(torch.int32), b.view(torch.int32)), k
    with torch.no_grad():
        assert torch.equal(m(X), loaded(X))  # 4-bit activation quantizers restored too
    assert {n: (p.weight_bits, p.act_bits) for n, p in efz_precisions(p).items()} == {k: (b, 4) for k, b in widths.items()}


def test_per_layer_widths_reach_the_profile_and_the_estimate(tmp_path):
    m = _lectures_model()
    assert model_widths(m)["bits"] == {"features.0": 5, "features.3": 5, "classifier.0": 4, "classifier.2": 4,
                                       "default": 32}
    rep = precision_report(m, (1, 1, 8, 8), device="a100")
    layers = {r.name: r for r in rep.profile.layers}
    # weights and biases at the layer's width: 25,000 + 50 and 100,000 + 500 parameters
    assert layers["features.3"].bits == 5 and layers["features.3"].weight_bytes == 25_050 * 5 / 8
    assert layers["classifier.0"].bits == 4 and layers["classifier.0"].weight_bytes == 100_500 * 4 / 8
    # a 5-bit weight needs the A100's int8 rate; 4-bit weights and activations run at its int4 rate
    assert {r.name: r.runs_at for r in rep.ops} == {"features.0": "int8", "features.3": "int8",
                                                    "classifier.0": "int4", "classifier.2": "int4"}
    assert {r.kind for r in rep.ops} == {"shift+add"}


def _rewrite(path, edit):
    from safetensors import safe_open
    from safetensors.numpy import save_file

    with safe_open(str(path), framework="numpy") as f:
        payload, meta = f.get_tensor("payload"), json.loads(f.metadata()["efz"])
    edit(meta)
    meta["crc"] = zlib.crc32(payload.tobytes())
    save_file({"payload": payload}, str(path), metadata={"efz": json.dumps(meta)})


def test_a_recorded_width_that_disagrees_with_the_codes_is_rejected(tmp_path):
    p = tmp_path / "log.efz"
    save_compressed(_lectures_model(), p, model_name=NAME)
    _rewrite(p, lambda meta: meta["q"]["classifier.0"].update(b=5))  # the codes are 4-bit
    msg = "log.efz: the quantization entry of 'classifier.0' records 5-bit weights; its codes are stored at 4 bits"
    with pytest.raises(CompressedFileError, match=msg):
        load_compressed(p)
    with pytest.raises(CompressedFileError, match=msg):
        efz_precisions(p)
    _rewrite(p, lambda meta: meta["q"]["classifier.0"].update(b="four"))
    with pytest.raises(CompressedFileError, match="log.efz: malformed quantization entry"):
        load_compressed(p)


def test_a_stream_width_changed_in_the_entry_table_is_rejected(tmp_path):
    p = tmp_path / "log.efz"
    save_compressed(_lectures_model(), p, model_name=NAME)

    def widen(meta):
        entry = next(e for e in meta["t"] if e[0] == "classifier.2.weight")
        entry[4] = 5  # 5,000 codes at 5 bits would need 3,125 bytes, the stream has 2,500
        meta["q"]["classifier.2"]["b"] = 5

    _rewrite(p, widen)
    with pytest.raises(CompressedFileError, match="classifier.2.weight: a 5-bit stream of 5000 values needs 3125 bytes"):
        load_compressed(p)


def test_qat_trains_each_layer_at_its_width():
    from edgefit.data import TrainConfig, load_digits

    torch.manual_seed(0)
    m = create(NAME)
    states = quantize_aware_train_(m, load_digits(), LogConfig(bits=expand_kinds(LECTURES, m), act_bits=4),
                                   TrainConfig(epochs=1, lr=1e-4))
    assert {n: s.bits for n, s in states.items()} == {"features.0": 5, "features.3": 5, "classifier.0": 4,
                                                      "classifier.2": 4}
    mods = dict(m.named_modules())
    for n, s in states.items():
        levels = set(s.levels[0].tolist())
        assert set(mods[n].weight.detach().reshape(-1).tolist()) <= levels and len(levels) == 2**s.bits - 1  # +-0
