"""Fixtures for the hardware tests: a cache dir in tmp, hand-built profiles."""

from __future__ import annotations

import pytest

from edgefit.metrics.profile import LayerStats, Profile, Totals


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEFIT_CACHE_DIR", str(tmp_path / "cache"))


def make_layer(
    name, *, macs=0, other_ops=0, weight_bytes=0.0, act_bytes=0.0, bits=32, kind="Conv2d", params=0,
    activation_bits=None,
):
    return LayerStats(
        name=name,
        kind=kind,
        ops=("convolution",),
        calls=1,
        input_shapes=((1, 3, 8, 8),),
        output_shape=(1, 3, 8, 8),
        params=params,
        params_without_bias=params,
        macs=macs,
        flops=2 * macs,
        other_ops=other_ops,
        activations=0,
        input_elements=0,
        output_elements=0,
        peak_activations=0,
        weight_bytes=float(weight_bytes),
        bytes_moved=float(weight_bytes + act_bytes),
        bits=bits,
        activation_bits=activation_bits,
    )


def make_profile(
    layers,
    *,
    model_size_bytes=0.0,
    peak_live_bytes=0.0,
    peak_live_layer="",
    bits=32,
    activation_bits=32,
):
    totals = Totals(
        params=0,
        params_without_bias=0,
        macs=sum(r.macs for r in layers),
        flops=sum(r.flops for r in layers),
        other_ops=sum(r.other_ops for r in layers),
        activations=0,
        input_activations=0,
        peak_activations=0,
        peak_activations_layer="",
        peak_live_activations=int(peak_live_bytes * 8 // activation_bits),
        peak_live_layer=peak_live_layer,
        peak_live_bytes=float(peak_live_bytes),
        model_size_bytes=float(model_size_bytes),
        bytes_moved=sum(r.bytes_moved for r in layers),
        unused_params=0,
    )
    return Profile(
        model="hand",
        input_shapes=((1, 3, 8, 8),),
        bits=bits,
        activation_bits=activation_bits,
        layers=tuple(layers),
        totals=totals,
        uncounted={},
        coverage=1.0,
    )
