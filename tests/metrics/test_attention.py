"""Attention in all three spellings, with and without grad, gives the same MACs."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import edgefit
from edgefit.metrics.formulas import formula_for
from edgefit.trace import OpRecord, TensorSpec

B, L, E, H = 2, 10, 32, 4


def closed_form_self_attention(b=B, seq=L, e=E):
    projections = 4 * b * seq * e * e  # q, k, v and output projections
    attention = 2 * b * seq * seq * e  # Q K^T and P V over all heads
    return projections + attention


class Attn(nn.Module):
    def __init__(self, spelling):
        super().__init__()
        self.spelling = spelling
        self.mha = nn.MultiheadAttention(E, H, batch_first=True)
        self.qkv = nn.Linear(E, 3 * E)
        self.out = nn.Linear(E, E)

    def forward(self, x):
        if self.spelling == "mha":
            return self.mha(x, x, x)[0]
        q, k, v = self.qkv(x).view(B, L, 3, H, E // H).permute(2, 0, 3, 1, 4)
        if self.spelling == "sdpa":
            y = F.scaled_dot_product_attention(q, k, v)
        else:
            y = torch.softmax(q @ k.transpose(-2, -1) / (E // H) ** 0.5, dim=-1) @ v
        return self.out(y.transpose(1, 2).reshape(B, L, E))


@pytest.mark.parametrize("spelling", ["mha", "sdpa", "matmul"])
@pytest.mark.parametrize("grad", ["grad", "no_grad", "inference_mode"])
@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_attention_spellings_agree(spelling, grad, device):
    model = Attn(spelling).eval()
    if device == "meta":
        model = model.to("meta")
    x = torch.randn(B, L, E) if device == "cpu" else torch.empty(B, L, E, device="meta")
    ctx = {"grad": torch.enable_grad, "no_grad": torch.no_grad, "inference_mode": torch.inference_mode}[grad]
    with ctx():
        p = edgefit.profile(model, (x,))
    assert p.totals.macs == closed_form_self_attention()
    assert p.uncounted == {}


def test_mha_fused_kernel_formula_matches_decomposed_path():
    """The fast path (_native_multi_head_attention, taken for real CPU tensors under
    no_grad) must count what the decomposed path counts."""
    f = lambda shape: TensorSpec(shape, torch.float32, "activation", 0)  # noqa: E731
    w = lambda shape: TensorSpec(shape, torch.float32, "param", -1, "w")  # noqa: E731
    op = OpRecord(
        0, "_native_multi_head_attention", "aten._native_multi_head_attention.default", "",
        (f((B, L, E)), f((B, L, E)), f((B, L, E)), E, H, w((3 * E, E)), w((3 * E,)), w((E, E)), w((E,)), None),
        {}, (), (f((B, L, E)),),
    )
    assert formula_for(op.name)(op).macs == closed_form_self_attention()


def test_bert_encoder_attention_spellings_agree():
    from edgefit.zoo import create

    macs = set()
    for spelling in ("mha", "sdpa", "matmul"):
        model = create("transformer_encoder", attention=spelling)
        for ctx in (torch.no_grad, torch.enable_grad):
            with ctx():
                macs.add(edgefit.profile(model, input_shape=(1, 32), input_dtype=torch.long).totals.macs)
    assert len(macs) == 1


def test_sdpa_counts_cross_attention_shapes():
    class Cross(nn.Module):
        def forward(self, q, k, v):
            return F.scaled_dot_product_attention(q, k, v)

    p = edgefit.profile(Cross(), input_shape=[(1, 2, 5, 8), (1, 2, 7, 8), (1, 2, 7, 6)])
    assert p.totals.macs == 2 * 5 * 7 * (8 + 6)
