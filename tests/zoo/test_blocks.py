"""Shared blocks against reference computations."""

from __future__ import annotations

import math

import pytest
import torch

from edgefit.zoo.blocks import (
    Bottleneck,
    ChannelShuffle,
    ConvBNAct,
    MultiHeadSelfAttention,
    RMSNorm,
    ShuffleUnit,
    apply_rotary,
    make_divisible,
    rotary_tables,
)


def _copy_to_mha(src: MultiHeadSelfAttention, dst: MultiHeadSelfAttention) -> None:
    with torch.no_grad():
        dst.attn.in_proj_weight.copy_(
            torch.cat([src.q_proj.weight, src.k_proj.weight, src.v_proj.weight])
        )
        dst.attn.in_proj_bias.copy_(torch.cat([src.q_proj.bias, src.k_proj.bias, src.v_proj.bias]))
        dst.attn.out_proj.weight.copy_(src.out_proj.weight)
        dst.attn.out_proj.bias.copy_(src.out_proj.bias)


@pytest.mark.parametrize("causal", [False, True])
def test_three_attention_spellings_agree(causal):
    torch.manual_seed(0)
    sdpa = MultiHeadSelfAttention(32, 4, attention="sdpa", causal=causal).eval()
    matmul = MultiHeadSelfAttention(32, 4, attention="matmul", causal=causal).eval()
    mha = MultiHeadSelfAttention(32, 4, attention="mha", causal=causal).eval()
    matmul.load_state_dict(sdpa.state_dict())
    _copy_to_mha(sdpa, mha)
    counts = {sum(p.numel() for p in m.parameters()) for m in (sdpa, matmul, mha)}
    assert counts == {4 * (32 * 32 + 32)}
    x = torch.randn(2, 7, 32)
    with torch.no_grad():
        ref = sdpa(x)
        torch.testing.assert_close(matmul(x), ref, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(mha(x), ref, atol=1e-5, rtol=1e-5)


def test_grouped_query_attention_matches_repeated_heads():
    torch.manual_seed(0)
    gqa = MultiHeadSelfAttention(32, 4, 2, attention="matmul", bias=False).eval()
    assert gqa.k_proj.out_features == 16
    full = MultiHeadSelfAttention(32, 4, attention="sdpa", bias=False).eval()
    with torch.no_grad():
        full.q_proj.weight.copy_(gqa.q_proj.weight)
        full.out_proj.weight.copy_(gqa.out_proj.weight)
        # each KV head serves 2 query heads: repeat its 8 rows
        full.k_proj.weight.copy_(gqa.k_proj.weight.view(2, 8, 32).repeat_interleave(2, 0).reshape(32, 32))
        full.v_proj.weight.copy_(gqa.v_proj.weight.view(2, 8, 32).repeat_interleave(2, 0).reshape(32, 32))
        x = torch.randn(1, 5, 32)
        torch.testing.assert_close(gqa(x), full(x), atol=1e-5, rtol=1e-5)


def test_rotary_is_a_rotation():
    cos, sin = rotary_tables(8, 16)
    x = torch.randn(1, 2, 16, 8)
    y = apply_rotary(x, cos, sin)
    torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1))
    torch.testing.assert_close(y[..., 0, :], x[..., 0, :])  # position 0 is not rotated
    # pair 0 at position 1 is rotated by 1 radian (inv_freq[0] = 1)
    a, b = x[0, 0, 1, 0], x[0, 0, 1, 1]
    expected = torch.stack([a * math.cos(1) - b * math.sin(1), a * math.sin(1) + b * math.cos(1)])
    torch.testing.assert_close(y[0, 0, 1, :2], expected)


def test_rmsnorm_matches_formula():
    x = torch.randn(3, 10)
    norm = RMSNorm(10, eps=0.0)
    torch.testing.assert_close(norm(x), x / x.pow(2).mean(-1, keepdim=True).sqrt())


def test_channel_shuffle_interleaves_groups():
    x = torch.arange(6.0).view(1, 6, 1, 1)
    assert ChannelShuffle(2)(x).flatten().tolist() == [0, 3, 1, 4, 2, 5]


def test_shuffle_unit_shapes():
    x = torch.randn(1, 240, 8, 8)
    assert ShuffleUnit(240, 480, 2, 3)(x).shape == (1, 480, 4, 4)
    assert ShuffleUnit(240, 240, 1, 3)(x).shape == (1, 240, 8, 8)


def test_conv_bn_act_bias_only_without_bn():
    assert ConvBNAct(3, 8, 3)[0].bias is None
    assert ConvBNAct(3, 8, 3, bn=False)[0].bias is not None
    assert len(ConvBNAct(3, 8, 1, act=None)) == 2


def test_resnext_bottleneck_width():
    block = Bottleneck(256, 128, stride=2, groups=32, base_width=4)
    assert block.conv2.out_channels == 256 and block.conv2.groups == 32
    assert block(torch.randn(1, 256, 8, 8)).shape == (1, 512, 4, 4)


def test_make_divisible():
    assert make_divisible(32 * 0.5) == 16
    assert make_divisible(24 * 0.35) == 8
    assert make_divisible(1280 * 1.0) == 1280
