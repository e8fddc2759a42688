"""FastDepth against reference/003 ("Simplify Network by NetAdapt": 3.93M weights, 0.74G MACs)."""

from __future__ import annotations

import torch

import edgefit
from edgefit.zoo import create, get_spec


def test_fastdepth_counts_match_the_published_table():
    model = create("fastdepth", device="meta")
    p = edgefit.profile(model, input_shape=(1, 3, 224, 224))
    conv_weights = sum(t.numel() for t in model.parameters() if t.dim() > 1)
    # The table's "weights" are the conv kernels (BN scale and shift left out).
    assert conv_weights == 3_933_088  # 3.93M
    assert round(conv_weights / 1e6, 2) == 3.93
    # hand-derived: MobileNet v1 features 567,716,352 + decoder 168,942,592
    assert p.totals.macs == 736_658_944
    assert round(p.totals.macs / 1e9, 2) == 0.74
    assert p.totals.params == 3_960_930
    assert not p.uncounted


def test_decoder_macs_hand_derived():
    p = edgefit.profile(create("fastdepth", device="meta"), input_shape=(1, 3, 224, 224))
    dec = sum(r.macs for r in p.layers if r.name.startswith(("decoder", "head")))
    # stage i at side s_i = 7 * 2**(i-1): 5x5 depthwise + 1x1 pointwise; head 32 -> 1 at 224
    widths = (1024, 512, 256, 128, 64, 32)
    expected = sum(
        (25 * cin + cin * cout) * (7 * 2**i) ** 2 for i, (cin, cout) in enumerate(zip(widths, widths[1:], strict=False))
    ) + 32 * 224 * 224
    assert dec == expected == 168_942_592


def test_fastdepth_runs_with_skips():
    torch.manual_seed(0)
    model = create("fastdepth", alpha=0.25).eval()
    x = torch.randn(1, 3, 64, 64)
    assert model(x).shape == (1, 1, 64, 64)
    assert get_spec("fastdepth").input_shape_for(resolution=128) == (1, 3, 128, 128)
