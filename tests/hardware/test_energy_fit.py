"""Energy arithmetic on a hand-built profile and the memory-fit verdicts."""

from __future__ import annotations

import pytest
from tests.hardware.conftest import make_layer, make_profile
from tests.hardware.test_roofline import slide_device

from edgefit.errors import ConfigError, DeviceError
from edgefit.hardware import check_memory_fit, estimate, format_bytes, get_device


def test_energy_of_one_layer_45nm():
    # 1000 MACs fp32, 100 other ops, 400 weight bytes from DRAM, 800 activation bytes in SRAM.
    layer = make_layer("conv", macs=1000, other_ops=100, weight_bytes=400, act_bytes=800)
    est = estimate(make_profile([layer]), slide_device())
    row = est.layers[0]
    assert row.compute_joules == pytest.approx((1000 * (3.7 + 0.9) + 100 * 0.9) * 1e-12)
    assert row.weight_joules == pytest.approx(100 * 640e-12)  # 100 32-bit DRAM reads
    assert row.activation_joules == pytest.approx(200 * 5e-12)  # 200 32-bit SRAM accesses
    assert row.joules == pytest.approx(4690e-12 + 64000e-12 + 1000e-12)
    assert row.data_share == pytest.approx(65000 / 69690)
    assert est.totals.data_share == pytest.approx(row.data_share)
    assert est.totals.joules == pytest.approx(row.joules)


def test_int8_energy_and_bytes_rescaled_on_edgetpu():
    layer = make_layer("conv", macs=1000, weight_bytes=400, act_bytes=800)
    est = estimate(make_profile([layer], model_size_bytes=400, peak_live_bytes=800), "edgetpu")
    assert est.precision == "int8"
    assert est.notes and "does not run fp32" in est.notes[0]
    row = est.layers[0]
    assert row.weight_bytes == 100 and row.activation_bytes == 200  # 32 -> 8 bits
    assert row.compute_joules == pytest.approx(1000 * 0.23e-12)
    assert row.weight_joules == pytest.approx(25 * 5e-12)  # Edge TPU weights in SRAM


def test_explicit_precision():
    prof = make_profile([make_layer("c", macs=10, weight_bytes=40, act_bytes=40)])
    est = estimate(prof, "jetson_orin_nano", precision="fp16")
    assert est.precision == "fp16" and est.layers[0].bytes == 40
    with pytest.raises(DeviceError, match="does not run int8"):
        estimate(prof, "jetson_nano", precision="int8")
    with pytest.raises(ConfigError, match="unknown precision"):
        estimate(prof, "jetson_nano", precision="fp8")


def test_fit_message_activations_stm32():
    fit = check_memory_fit(
        get_device("stm32f746"),
        weight_bytes=200 * 1024,
        activation_bytes=1.2 * 1024 * 1024,
        peak_layer="features.0",
    )
    assert not fit.fits and fit.weights_fit and not fit.activations_fit
    assert fit.message == (
        "does not fit: peak activations need 1.2 MB, STM32F746 has 320 KB of SRAM "
        "(at layer features.0)"
    )


def test_fit_message_weights_and_fits():
    dev = get_device("stm32f746")
    fit = check_memory_fit(dev, weight_bytes=2 * 1024 * 1024, activation_bytes=1000)
    assert fit.message == "does not fit: weights need 2 MB, STM32F746 has 1 MB of flash"
    fit = check_memory_fit(dev, weight_bytes=512 * 1024, activation_bytes=100 * 1024)
    assert (
        fit.fits
        and fit.message
        == "fits: weights 512 KB of 1 MB flash, peak activations 100 KB of 320 KB SRAM"
    )


def test_fit_shared_memory():
    dev = get_device("edgetpu")
    fit = check_memory_fit(
        dev, weight_bytes=6 * 1024**2, activation_bytes=3 * 1024**2, peak_layer="x"
    )
    assert not fit.fits and "weights plus peak activations need 9 MB" in fit.message


def test_estimate_totals_fit_from_profile():
    prof = make_profile(
        [make_layer("a", macs=10, weight_bytes=40, act_bytes=40)],
        model_size_bytes=40,
        peak_live_bytes=1.2 * 1024**2,
        peak_live_layer="features.0",
    )
    est = estimate(prof, "stm32f746")
    assert est.totals.fits is False
    assert est.totals.fit_message.startswith("does not fit: peak activations need 1.2 MB")
    assert "(at layer features.0)" in est.totals.fit_message
    d = est.to_dict()
    assert set(d["layers"][0]) >= {"name", "intensity", "bound", "seconds", "joules"}
    assert set(d["totals"]) >= {"seconds", "joules", "fits", "fit_message"}


@pytest.mark.parametrize(
    "n,text", [(320 * 1024, "320 KB"), (1024**2, "1 MB"), (1.5 * 1024**3, "1.5 GB"), (10, "10 B")]
)
def test_format_bytes(n, text):
    assert format_bytes(n) == text


def test_energy_totals_of_two_layers_by_hand():
    # 45 nm table, weights in DRAM (640 pJ / 32 bit), activations in SRAM (5 pJ / 32 bit).
    # a: 10 MACs x 4.6 pJ = 46 pJ; 4 weight bytes = one DRAM read, 640 pJ; 8 activation
    #    bytes = two SRAM accesses, 10 pJ: 696 pJ.
    # b: 20 other ops x 0.9 pJ = 18 pJ; 4 activation bytes, 5 pJ: 23 pJ.
    # Total 719 pJ, of which 655 pJ move data.
    prof = make_profile(
        [
            make_layer("a", macs=10, weight_bytes=4, act_bytes=8),
            make_layer("b", other_ops=20, act_bytes=4, kind="ReLU"),
        ]
    )
    est = estimate(prof, slide_device())
    a, b = est.layers
    assert a.joules == pytest.approx(696e-12, rel=1e-12)
    assert b.joules == pytest.approx(23e-12, rel=1e-12)
    assert a.data_share == pytest.approx(650 / 696, rel=1e-12)
    t = est.totals
    assert t.joules == pytest.approx(719e-12, rel=1e-12)
    assert t.compute_joules == pytest.approx(64e-12, rel=1e-12)
    assert t.data_joules == pytest.approx(655e-12, rel=1e-12)
    assert t.data_share == pytest.approx(655 / 719, rel=1e-12)
