"""Attention heads as dependency groups: exact groups, equality with the dense model
whose heads are zeroed, exact counts after pruning, the saved round trip, Michel's
head-gate gradient as the Taylor score, and nn.MultiheadAttention named unprunable."""

import copy

import pytest
import torch
from torch import nn

from edgefit.compress.prune import (
    ChannelConfig,
    channel_groups,
    channel_importance,
    prune_,
    prune_groups_,
)
from edgefit.compress.prune.heads import MHA_REASON, head_layouts
from edgefit.compress.prune.saved import load_pruned, save_pruned
from edgefit.errors import ConfigError
from edgefit.metrics import profile
from edgefit.zoo import create
from edgefit.zoo.blocks import MultiHeadSelfAttention


class TinyClassifier(nn.Module):
    """Embedding -> residual self-attention (dim 8) -> mean over positions -> 3 classes."""

    def __init__(self, n_heads: int = 4, n_kv_heads: int | None = None) -> None:
        super().__init__()
        self.embed = nn.Embedding(16, 8)
        self.attention = MultiHeadSelfAttention(8, n_heads, n_kv_heads)
        self.head = nn.Linear(8, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)
        return self.head((x + self.attention(x)).mean(1))


def _zero_heads(model: nn.Module, name: str, keep) -> nn.Module:
    """The dense model with every head outside ``keep`` contributing nothing to out_proj."""
    dense = copy.deepcopy(model)
    lay = head_layouts(dense)[name]
    cols = lay.index()[(lay.proj("out_proj"), "in")]
    drop = [u for u in range(lay.n_kv_heads) if u not in keep]
    with torch.no_grad():
        dense.get_submodule(lay.proj("out_proj")).weight[:, cols[drop].flatten()] = 0
    return dense


def test_head_groups_exact():
    g = channel_groups(TinyClassifier(), torch.zeros(1, 5, dtype=torch.long))
    assert list(g) == ["attention"]
    heads = g["attention"]
    assert (heads.kind, heads.width) == ("heads", 4)
    assert heads.layers == ("attention.q_proj", "attention.k_proj", "attention.v_proj", "attention.out_proj")
    rows = torch.arange(8).view(4, 2)  # head h is features 2h, 2h+1 (head_dim 2)
    for key in (("attention.q_proj", "out"), ("attention.k_proj", "out"), ("attention.v_proj", "out"),
                ("attention.out_proj", "in")):
        assert torch.equal(heads.index[key], rows)
    # grouped-query attention: a unit is one KV head with the two query heads that share it
    gqa = channel_groups(TinyClassifier(4, 2), torch.zeros(1, 5, dtype=torch.long))["attention"]
    assert gqa.width == 2
    assert torch.equal(gqa.index[("attention.q_proj", "out")], torch.arange(8).view(2, 4))
    assert torch.equal(gqa.index[("attention.k_proj", "out")], torch.arange(4).view(2, 2))


@pytest.mark.parametrize("name,keep", [("transformer_encoder", [0, 2]), ("llama_tiny", [1])])
def test_pruned_equals_zeroed_heads(name, keep):
    torch.manual_seed(0)
    m = create(name).eval()
    ids = torch.randint(0, 200, (2, 32))
    g = channel_groups(m, ids)
    dense = _zero_heads(m, "layers.0.attention", keep)
    prune_groups_(m, {"layers.0.attention": keep}, groups=g)
    att = m.get_submodule("layers.0.attention")
    assert att.n_kv_heads == len(keep) and att.n_heads == len(keep) * (4 // g["layers.0.attention"].width)
    assert att.q_proj.out_features == att.n_heads * att.head_dim
    with torch.no_grad():
        torch.testing.assert_close(m(ids), dense(ids), rtol=1e-5, atol=1e-5)


def test_exact_counts_after_pruning_heads():
    m = create("transformer_encoder")  # dim 64, 4 heads of 16, ffn 256, 2 layers, 32 tokens, vocab 1000
    prune_(m, ChannelConfig(ratio=0.5, input_shape=(1, 32)))
    assert [m.get_submodule(f"layers.{i}.attention").n_heads for i in (0, 1)] == [2, 2]
    p = profile(m, input_shape=(1, 32))
    t, d, h, hd, ffn = 32, 64, 2, 16, 128
    per_layer = 3 * t * d * h * hd + 2 * h * t * t * hd + t * h * hd * d + 2 * t * d * ffn
    assert p.totals.macs == 2 * per_layer == 1_703_936
    per_layer_params = 3 * (d * h * hd + h * hd) + (h * hd * d + d) + 2 * 2 * d + (d * ffn + ffn) + (ffn * d + d)
    assert p.totals.params == 2 * per_layer_params + (1000 + 128 + 2) * d + 2 * d == 122_816


def test_round_trip_keeps_head_counts(tmp_path):
    torch.manual_seed(0)
    m = create("llama_tiny").eval()
    prune_(m, ChannelConfig(ratio={"layers.1.attention": 0.5}, input_shape=(1, 32)))
    path = save_pruned(m, tmp_path / "p.safetensors", base="zoo:llama_tiny", input_shape=(1, 32))
    loaded = load_pruned(path).model
    att = loaded.get_submodule("layers.1.attention")
    assert (att.n_heads, att.n_kv_heads, att.k_proj.out_features) == (2, 1, 16)
    ids = torch.randint(0, 256, (2, 32))
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids), m(ids))


def test_taylor_of_a_head_is_the_head_gate_gradient():
    torch.manual_seed(0)
    m = TinyClassifier().eval()
    ids, y = torch.randint(0, 16, (6, 5)), torch.randint(0, 3, (6,))
    g = channel_groups(m, ids)
    score = channel_importance(m, g, "taylor", data=(ids, y))["attention"]
    gate = torch.ones(4, requires_grad=True)  # xi_h multiplies head h's output (Michel et al. 2019)
    hook = m.attention.out_proj.register_forward_pre_hook(lambda _m, a: (a[0] * gate.repeat_interleave(2),))
    nn.functional.cross_entropy(m(ids), y).backward()
    hook.remove()
    torch.testing.assert_close(score, gate.grad.pow(2))
    l2 = channel_importance(m, g, "l2")["attention"]
    w = torch.cat([m.attention.q_proj.weight, m.attention.k_proj.weight, m.attention.v_proj.weight], 1)
    torch.testing.assert_close(l2, w.detach().view(4, 2, 24).pow(2).sum((1, 2)).sqrt())


def test_multihead_attention_is_named_unprunable():
    g = channel_groups(create("transformer_encoder", attention="mha"), input_shape=(1, 32))
    assert g.unprunable["layers.0.attention.attn"] == MHA_REASON
    assert not any(grp.kind == "heads" for grp in g.values())
    with pytest.raises(ConfigError, match="cannot be pruned: nn.MultiheadAttention fuses q/k/v"):
        prune_(create("transformer_encoder", attention="mha"),
               ChannelConfig(ratio={"layers.0.attention.attn": 0.5}, input_shape=(1, 32)))
