"""Attention heads as prunable units (Michel, Levy, Neubig, "Are Sixteen Heads
Really Better than One?", NeurIPS 2019; Voita et al., ACL 2019).

A module is a *multi-head attention* to edgefit when it holds four ``nn.Linear``
projections ``q_proj``, ``k_proj``, ``v_proj``, ``out_proj`` and integer
``n_heads`` and ``head_dim`` (``n_kv_heads`` too for grouped-query attention),
with ``q_proj`` giving ``n_heads * head_dim`` features, ``k_proj`` and ``v_proj``
``n_kv_heads * head_dim`` and ``out_proj`` taking ``n_heads * head_dim``; and
its forward mixes features only within a head (``softmax(q k^T) v`` per head,
rotary embeddings, a causal mask), reading ``n_heads``/``n_kv_heads`` at run
time. The zoo's `edgefit.zoo.blocks.MultiHeadSelfAttention` (``attention="sdpa"``
or ``"matmul"``: BERT, the transformer encoders, LLaMA) is one.

One prunable unit is one key/value head with the ``n_heads / n_kv_heads`` query
heads that share it (one head when there is no grouped-query attention).
Removing it removes ``head_dim`` rows of ``k_proj`` and ``v_proj``, the query
heads' rows of ``q_proj``, the same columns of ``out_proj``, and lowers the
module's head counts; the result equals the dense model with those heads'
outputs zeroed. ``nn.MultiheadAttention`` (fused ``in_proj_weight``, head size
fixed at ``embed_dim / num_heads``) is not such a module: its channels are
named unprunable with the reason.

>>> from edgefit.zoo import create
>>> m = create("transformer_encoder")
>>> lay = head_layouts(m)["layers.0.attention"]
>>> lay.n_heads, lay.n_kv_heads, lay.head_dim
(4, 4, 16)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "out_proj")
MHA_REASON = ("nn.MultiheadAttention fuses q/k/v and fixes the head size at embed_dim/num_heads, so it "
              "cannot lose heads; build it with separate q/k/v projections (zoo: attention='sdpa')")


@dataclass(frozen=True)
class HeadLayout:
    """One multi-head attention module: its name, projection module names and head counts."""

    name: str
    n_heads: int
    n_kv_heads: int
    head_dim: int

    def proj(self, which: str) -> str:
        """Full module name of ``q_proj``, ``k_proj``, ``v_proj`` or ``out_proj``."""
        return f"{self.name}.{which}" if self.name else which

    @property
    def share(self) -> int:
        """Query heads per key/value head."""
        return self.n_heads // self.n_kv_heads

    def index(self) -> dict[tuple[str, str], torch.Tensor]:
        """``{(module, role): LongTensor[n_kv_heads, k]}``: the rows/columns of each unit."""
        d, q_width = self.head_dim, self.share * self.head_dim
        q = torch.arange(self.n_heads * d).view(self.n_kv_heads, q_width)
        kv = torch.arange(self.n_kv_heads * d).view(self.n_kv_heads, d)
        return {(self.proj("q_proj"), "out"): q, (self.proj("k_proj"), "out"): kv,
                (self.proj("v_proj"), "out"): kv.clone(), (self.proj("out_proj"), "in"): q.clone()}


def _is_attention(mod: nn.Module) -> bool:
    return (all(isinstance(getattr(mod, p, None), nn.Linear) for p in PROJECTIONS)
            and all(isinstance(getattr(mod, a, None), int) for a in ("n_heads", "head_dim")))


def head_layouts(model: nn.Module) -> dict[str, HeadLayout]:
    """``{module name: HeadLayout}`` of every multi-head attention whose widths agree with its head counts."""
    out = {}
    for name, mod in model.named_modules():
        if not _is_attention(mod):
            continue
        h, d = mod.n_heads, mod.head_dim
        kv = getattr(mod, "n_kv_heads", h)
        if not isinstance(kv, int) or kv < 1 or h % kv or d < 1:
            continue
        if (mod.q_proj.out_features, mod.k_proj.out_features, mod.v_proj.out_features,
                mod.out_proj.in_features) != (h * d, kv * d, kv * d, h * d):
            continue
        out[name] = HeadLayout(name, h, kv, d)
    return out


def multihead_modules(model: nn.Module) -> list[str]:
    """Names of the ``nn.MultiheadAttention`` modules (heads cannot be removed from them)."""
    return [n for n, m in model.named_modules() if isinstance(m, nn.MultiheadAttention)]


def sync_head_counts_(model: nn.Module, names) -> None:
    """Set the head counts of the attention modules ``names`` from their pruned projection widths."""
    for name in names:
        mod = model.get_submodule(name)
        share = mod.n_heads // getattr(mod, "n_kv_heads", mod.n_heads)
        kv = mod.k_proj.out_features // mod.head_dim
        if hasattr(mod, "n_kv_heads"):
            mod.n_kv_heads = kv
        mod.n_heads = kv * share


def head_counts(mod: nn.Module) -> dict[str, int] | None:
    """``{"heads", "kv_heads"}`` of an attention module (what a saved pruned model records), else None."""
    if not _is_attention(mod):
        return None
    return {"heads": mod.n_heads, "kv_heads": getattr(mod, "n_kv_heads", mod.n_heads)}


def set_head_counts_(mod: nn.Module, counts) -> None:
    """Restore `head_counts` on a rebuilt attention module."""
    mod.n_heads = int(counts["heads"])
    if hasattr(mod, "n_kv_heads"):
        mod.n_kv_heads = int(counts["kv_heads"])
