"""The device verdict on a planned arena, and what it would take to fit."""

from __future__ import annotations

import pytest

from edgefit.errors import DeviceError
from edgefit.hardware import estimate, get_device
from edgefit.hardware.mcu import plan
from edgefit.memory import PatchError
from edgefit.metrics import profile
from edgefit.zoo import create

SHAPE = (1, 3, 144, 144)


def test_mobilenet_v2_035_int8_on_stm32():
    dp = plan(create("mobilenet_v2", width_mult=0.35, device="meta"), "stm32f746", input_shape=SHAPE)
    assert dp.before.message == (
        "does not fit: weights need 1.6 MB, STM32F746 has 1 MB of flash; peak activations need 486 KB, "
        "STM32F746 has 320 KB of SRAM (at layer features.2.conv.0.1)"
    )
    # the planned arena (94,976 B) fits the SRAM; the 1000-class head keeps the weights out of flash
    assert dp.fit.activations_fit and not dp.fit.weights_fit
    assert dp.fit.message == "does not fit: weights need 1.6 MB, STM32F746 has 1 MB of flash"
    (advice,) = dp.advice
    # 1,677,128 B of weights; 1 MB flash -> 5 bits; head 1,281,000 B: room for (1 MiB - 396,128) / 1,281 outputs
    assert advice == (
        "weights: 1.6 MB at 8-bit, STM32F746 has 1 MB of flash: would fit with 5-bit weights, or at most 509 "
        "outputs in classifier.1 (now 1,000, 76% of the weights), or pruning to 63% of the weights "
        "(index overhead not counted)"
    )


def test_a_variant_that_fits_both():
    model = create("mobilenet_v2", width_mult=0.35, num_classes=100, device="meta")
    dp = plan(model, "stm32f746", input_shape=SHAPE)
    assert dp.fits and not dp.before.fits and dp.advice == ()
    assert dp.fit.message == "fits: weights 512 KB of 1 MB flash, planned arena 92.8 KB of 320 KB SRAM"
    # the estimate's verdict takes the plan too
    est = estimate(profile(model, input_shape=SHAPE, bits=8), get_device("stm32f746"), memory_plan=dp.memory)
    assert est.totals.fits and est.fit.activation_bytes == dp.memory.arena_bytes == 94976
    assert not estimate(profile(model, input_shape=SHAPE, bits=8), "stm32f746").totals.fits


def test_activation_advice_when_the_arena_is_too_big():
    dp = plan(create("mobilenet_v2", width_mult=0.35, num_classes=100, device="meta"), "stm32f746",
              input_shape=SHAPE, patches=None, inplace=False)
    assert dp.fit.message.startswith("does not fit: planned arena needs 486 KB, STM32F746 has 320 KB of SRAM")
    assert dp.advice[0].startswith("activations: the planned arena is 486 KB (peak at features.2.conv.0.1)")
    assert "in-place ops and patches" in dp.advice[0] and "5-bit activations" in dp.advice[0]


def test_bad_inputs(tmp_path):
    model = create("mobilenet_v2", width_mult=0.35, device="meta")
    with pytest.raises(DeviceError, match="unknown device"):
        plan(model, "stm32f999", input_shape=SHAPE)
    with pytest.raises(PatchError, match="no patch setting within"):
        plan(model, "stm32f746", input_shape=SHAPE, target_bytes=2048)
