"""Each layer runs at the device rate its own widths call for; bytes at the real widths.

The hand-built profile has one layer per width (32/8/4/1 bits, weights and
activations alike). Device D runs fp32 1 Gop/s, int8 4 Gop/s, int4 8 Gop/s and
binary 32 Gop/s at 100 GB/s; device D' is D without the int4 and binary rates.
"""

import pytest
from tests.hardware.conftest import make_layer, make_profile

from edgefit.errors import ConfigError, DeviceError
from edgefit.hardware import estimate, get_device, precision_for_widths, runs_at
from edgefit.hardware.device import device_from_dict


def _device(low: bool):
    def n(v):
        return {"value": v, "source": "hand-made test device"}

    data = {
        "name": "d", "display_name": "D", "kind": "accelerator",
        "peak_ops_per_s": {"fp32": n(1e9), "int8": n(4e9)},
        "bandwidth_bytes_per_s": n(1e11), "sram_bytes": n(1e6), "activation_ram_bytes": n(1e9),
        "weight_storage_bytes": n(1e9),
        "energy": {"table": "45nm", "weight_level": "dram", "activation_level": "dram"},
        "precision_note": "a note from the datasheet",
    }
    if low:
        data["low_precision_ops_per_s"] = {"int4": n(8e9), "binary": n(32e9)}
    return device_from_dict(data)


# name, MACs, weight bits = activation bits, weight bytes, activation bytes (at those widths)
LAYERS = [("f32", 32, 32, 128.0, 36.0), ("q8", 16, 8, 16.0, 6.0), ("q4", 16, 4, 8.0, 2.5), ("b1", 8, 1, 1.0, 8.5)]


def _profile():
    rows = [make_layer(n, macs=m, weight_bytes=w, act_bytes=a, bits=b, activation_bits=b, params=1)
            for n, m, b, w, a in LAYERS]
    return make_profile(rows, model_size_bytes=sum(r.weight_bytes for r in rows))


def test_widths_call_for_a_precision():
    assert [precision_for_widths(b, b) for _, _, b, _, _ in LAYERS] == ["fp32", "int8", "int4", "binary"]
    assert precision_for_widths(1, 8) == "int8" and precision_for_widths(2, 2) == "int4"
    assert precision_for_widths(1, 32) == "fp32"  # binary weights, float activations (BWN): float MACs
    assert precision_for_widths(16, 16) == "fp16"
    assert precision_for_widths(32, 1, has_weights=False) == "int4"  # no MACs to run as XNOR + popcount


def test_each_layer_at_its_rate_on_a_device_with_int4_and_binary():
    est = estimate(_profile(), _device(low=True))
    assert [r.precision for r in est.layers] == ["fp32", "int8", "int4", "binary"]
    # time = max(2 x MACs / rate, bytes / bandwidth), by hand:
    # f32: 64 / 1e9 = 64 ns (164 B / 1e11 = 1.64 ns); q8: 32 / 4e9 = 8 ns;
    # q4: 32 / 8e9 = 4 ns; b1: 16 / 32e9 = 0.5 ns (9.5 B / 1e11 = 0.095 ns).
    assert [r.compute_seconds for r in est.layers] == pytest.approx([64e-9, 8e-9, 4e-9, 0.5e-9], rel=1e-12)
    assert [r.seconds for r in est.layers] == pytest.approx([64e-9, 8e-9, 4e-9, 0.5e-9], rel=1e-12)
    assert [r.bytes for r in est.layers] == [164.0, 22.0, 10.5, 9.5]  # real widths, nothing rescaled
    assert [r.peak_ops_per_s for r in est.layers] == [1e9, 4e9, 8e9, 32e9]
    assert est.fallbacks == () and est.precision == "fp32"  # most of the work
    # int4 and binary MACs are charged the 45 nm table's int8 energy, and the estimate says so
    assert est.layers[3].compute_joules == pytest.approx(8 * 0.23e-12)
    assert any("no binary MAC energy" in n for n in est.notes)
    assert est.totals.seconds == pytest.approx(76.5e-9)


def test_without_int4_and_binary_rates_layers_fall_back_to_int8_and_are_listed():
    est = estimate(_profile(), _device(low=False))
    assert [r.precision for r in est.layers] == ["fp32", "int8", "int8", "int8"]
    assert [r.compute_seconds for r in est.layers] == pytest.approx([64e-9, 8e-9, 8e-9, 4e-9], rel=1e-12)
    assert [r.bytes for r in est.layers] == [164.0, 22.0, 10.5, 9.5]  # still the real widths
    fb = [(f.layer, f.weight_bits, f.activation_bits, f.wanted, f.ran_at) for f in est.fallbacks]
    assert fb == [("q4", 4, 4, "int4", "int8"), ("b1", 1, 1, "binary", "int8")]
    assert est.fallbacks[0].reason == "D lists no int4 rate (a note from the datasheet)"
    assert str(est.fallbacks[1]) == "b1: 1/1-bit wants binary, ran at int8"
    notes = "\n".join(est.notes)
    assert "1 layer wanting int4 ran at int8" in notes and ": q4" in notes
    assert "1 layer wanting binary ran at int8" in notes and ": b1" in notes
    assert est.to_dict()["fallbacks"][0]["wanted"] == "int4"


def test_forced_precision_runs_every_layer_there():
    est = estimate(_profile(), _device(low=True), precision="int4")
    assert {r.precision for r in est.layers} == {"int4"} and est.fallbacks == ()
    # weights narrower than int4 stay; activations are rescaled to 4 bits
    assert est.layers[0].weight_bytes == 16.0 and est.layers[0].activation_bytes == 4.5
    with pytest.raises(DeviceError, match="does not run binary"):
        estimate(_profile(), _device(low=False), precision="binary")
    with pytest.raises(ConfigError, match="unknown precision 'int2'"):
        estimate(_profile(), _device(low=True), precision="int2")


def test_wider_than_the_device_rescales_as_before():
    est = estimate(_profile(), "edgetpu")
    assert [r.precision for r in est.layers] == ["int8"] * 4
    assert est.layers[0].weight_bytes == 32.0 and est.layers[0].activation_bytes == 9.0  # fp32 rescaled to 8 bits
    assert est.layers[2].bytes == 10.5  # the 4-bit layer keeps its real width
    assert "does not run fp32; estimated at int8 for 1 of 4 layers" in est.notes[0]
    assert [f.layer for f in est.fallbacks] == ["q4", "b1"]
    assert "fully 8-bit quantized" in est.fallbacks[0].reason  # the Edge TPU file's precision note


@pytest.mark.parametrize("device, expected", [
    ("a100", ["fp32", "int8", "int4", "binary"]),
    ("jetson_orin_nano", ["fp32", "int8", "int4", "int4"]),
    ("raspberry_pi_5", ["fp32", "int8", "int8", "int8"]),
    ("stm32f746", ["fp32", "int8", "int8", "int8"]),
    ("jetson_nano", ["fp32", "fp16", "fp16", "fp16"]),
])
def test_built_in_devices(device, expected):
    dev = get_device(device)
    assert [runs_at(dev, precision_for_widths(b, b)) for _, _, b, _, _ in LAYERS] == expected
    assert dev.precision_note  # every device says what its sources give below 8 bits


def test_low_precision_rates_have_sources():
    orin, a100 = get_device("jetson_orin_nano"), get_device("a100")
    assert orin.peak("int4") == 2 * orin.peak("int8") == 40e12
    assert "GA102" in orin.source("low_precision_ops_per_s.int4")
    assert "binary" not in orin.rates and "no binary rate" in orin.precision_note
    assert list(a100.rates) == ["fp32", "fp16", "bf16", "int8", "int4", "binary"]
    assert "int4" not in get_device("edgetpu").rates and "int8 only" in get_device("edgetpu").precision_note


def test_batch_throughput_uses_each_layers_rate():
    est = estimate(_profile(), _device(low=True))
    # batch 1: the roofline latency; larger batches: weights read once, each layer at its own peak
    assert est.throughput(1) == pytest.approx(1 / 76.5e-9)
    assert est.throughput(4) == pytest.approx(4 / (4 * 76.5e-9))  # compute-bound at every batch
