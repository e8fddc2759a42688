"""LLaMA-style decoder: RMSNorm, rotary embeddings, SwiGLU, optional grouped-query attention.

Touvron et al., "LLaMA: Open and Efficient Foundation Language Models", arXiv
2302.13971, 2023.
"""

from __future__ import annotations

import torch
from torch import nn

from edgefit.errors import ModelSpecError
from edgefit.zoo.blocks import MultiHeadSelfAttention, RMSNorm, SwiGLU, rotary_tables
from edgefit.zoo.registry import check_choice, check_positive, on_device, register_model

_PAPER = "Touvron et al., LLaMA: Open and Efficient Foundation Language Models, arXiv 2302.13971"
_DECODER_ATTENTION = ("sdpa", "matmul")


def _token_shape(seq_len: int = 128, **_: object) -> tuple[int, int]:
    return (1, seq_len)


def _tiny_token_shape(seq_len: int = 32, **_: object) -> tuple[int, int]:
    return (1, seq_len)


def llama_ffn_hidden(dim: int, multiple_of: int = 256) -> int:
    """LLaMA's FFN width rule: ``2/3 * 4 * dim`` rounded up to ``multiple_of`` (4096 -> 11008)."""
    hidden = int(2 * 4 * dim / 3)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


class DecoderLayer(nn.Module):
    """Pre-norm decoder layer: ``x + attn(norm(x))``, then ``x + ffn(norm(x))``."""

    def __init__(self, dim, n_heads, n_kv_heads, ffn_hidden, *, attention, eps):
        super().__init__()
        self.attention_norm = RMSNorm(dim, eps)
        self.attention = MultiHeadSelfAttention(
            dim, n_heads, n_kv_heads, attention=attention, bias=False, causal=True
        )
        self.ffn_norm = RMSNorm(dim, eps)
        self.feed_forward = SwiGLU(dim, ffn_hidden)

    def forward(self, x: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x), rotary)
        return x + self.feed_forward(self.ffn_norm(x))


class Llama(nn.Module):
    """Token embedding, ``n_layers`` decoder layers, RMSNorm, output projection.

    Takes int64 token ids ``(batch, seq)`` and returns logits ``(batch, seq, vocab)``.
    Rotary tables are non-persistent buffers of length ``max_seq_len``.
    """

    def __init__(
        self, *, dim, n_layers, n_heads, n_kv_heads, ffn_hidden, vocab, max_seq_len,
        attention="sdpa", eps=1e-5, tie_embeddings=False, rope_theta=10000.0,
    ) -> None:
        super().__init__()
        self.tok_embeddings = nn.Embedding(vocab, dim)
        self.layers = nn.ModuleList(
            DecoderLayer(dim, n_heads, n_kv_heads, ffn_hidden, attention=attention, eps=eps)
            for _ in range(n_layers)
        )
        self.norm = RMSNorm(dim, eps)
        self.output = nn.Linear(dim, vocab, bias=False)
        if tie_embeddings:
            self.output.weight = self.tok_embeddings.weight
        cos, sin = rotary_tables(dim // n_heads, max_seq_len, rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.shape[1] > self.rope_cos.shape[0]:
            raise ValueError(f"sequence of {ids.shape[1]} exceeds max_seq_len {self.rope_cos.shape[0]}")
        x = self.tok_embeddings(ids)
        rotary = (self.rope_cos, self.rope_sin)
        for layer in self.layers:
            x = layer(x, rotary)
        return self.output(self.norm(x))


def _build(
    *, dim, n_layers, n_heads, n_kv_heads, ffn_hidden, vocab, seq_len, max_seq_len, attention,
    tie_embeddings, device,
) -> nn.Module:
    check_choice("attention", attention, _DECODER_ATTENTION)
    n_kv_heads = n_heads if n_kv_heads is None else n_kv_heads
    ffn_hidden = llama_ffn_hidden(dim) if ffn_hidden is None else ffn_hidden
    max_seq_len = seq_len if max_seq_len is None else max_seq_len
    for option, value in (("dim", dim), ("n_layers", n_layers), ("n_heads", n_heads),
                          ("n_kv_heads", n_kv_heads), ("ffn_hidden", ffn_hidden),
                          ("vocab", vocab), ("seq_len", seq_len), ("max_seq_len", max_seq_len)):
        check_positive(option, value)
    if dim % n_heads or (dim // n_heads) % 2:
        raise ModelSpecError(f"dim={dim} / n_heads={n_heads} must give an even head size")
    if n_heads % n_kv_heads:
        raise ModelSpecError(f"n_heads={n_heads} is not divisible by n_kv_heads={n_kv_heads}")
    if seq_len > max_seq_len:
        raise ModelSpecError(f"seq_len={seq_len} exceeds max_seq_len={max_seq_len}")
    with on_device(device):
        return Llama(
            dim=dim, n_layers=n_layers, n_heads=n_heads, n_kv_heads=n_kv_heads,
            ffn_hidden=ffn_hidden, vocab=vocab, max_seq_len=max_seq_len, attention=attention,
            tie_embeddings=tie_embeddings,
        )


@register_model(
    "llama",
    input_shape=(1, 128),
    input_dtype="int64",
    family="llama",
    paper=_PAPER,
    description="configurable LLaMA decoder (defaults: 256 wide, 4 layers)",
    input_shape_fn=_token_shape,
)
def llama(
    *, dim: int = 256, n_layers: int = 4, n_heads: int = 8, n_kv_heads: int | None = None,
    ffn_hidden: int | None = None, vocab: int = 32000, seq_len: int = 128,
    max_seq_len: int | None = None, attention: str = "sdpa", tie_embeddings: bool = False,
    device=None,
) -> nn.Module:
    """A LLaMA decoder over int64 token ids ``(1, seq_len)``, returning logits.

    Parameters (untied): ``2 * vocab * dim + dim + n_layers * (2 * dim^2 +
    2 * dim * kv_dim + 3 * dim * ffn_hidden + 2 * dim)`` with ``kv_dim = n_kv_heads *
    dim / n_heads``.

    Args:
        dim: model width.
        n_layers: decoder layers.
        n_heads: query heads.
        n_kv_heads: key/value heads (grouped-query attention); ``None`` means ``n_heads``.
        ffn_hidden: SwiGLU width; ``None`` applies LLaMA's rule (``llama_ffn_hidden``).
        vocab: vocabulary size.
        seq_len: example sequence length.
        max_seq_len: length of the rotary tables; ``None`` means ``seq_len``.
        attention: ``"sdpa"`` or ``"matmul"``.
        tie_embeddings: share the embedding and output weights.
        device: build on this device (``"meta"`` for large configs).
    """
    return _build(
        dim=dim, n_layers=n_layers, n_heads=n_heads, n_kv_heads=n_kv_heads, ffn_hidden=ffn_hidden,
        vocab=vocab, seq_len=seq_len, max_seq_len=max_seq_len, attention=attention,
        tie_embeddings=tie_embeddings, device=device,
    )


@register_model(
    "llama_tiny",
    input_shape=(1, 32),
    input_dtype="int64",
    family="llama",
    paper=_PAPER,
    description="tiny LLaMA for tests: dim 64, 2 layers, 4 heads, 2 KV heads, vocab 256",
    input_shape_fn=_tiny_token_shape,
)
def llama_tiny(*, seq_len: int = 32, attention: str = "sdpa", device=None) -> nn.Module:
    """Tiny LLaMA: dim 64, 2 layers, 4 heads (2 KV heads), FFN 176, vocab 256: 125,248 params.

    Args:
        seq_len: example sequence length.
        attention: ``"sdpa"`` or ``"matmul"``.
        device: build on this device.
    """
    return _build(
        dim=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_hidden=176, vocab=256, seq_len=seq_len,
        max_seq_len=None, attention=attention, tie_embeddings=False, device=device,
    )


@register_model(
    "llama_7b",
    input_shape=(1, 128),
    input_dtype="int64",
    family="llama",
    paper=_PAPER,
    description="LLaMA-7B: dim 4096, 32 layers, 32 heads, FFN 11008: 6,738,415,616 params",
    input_shape_fn=_token_shape,
)
def llama_7b(*, seq_len: int = 128, attention: str = "sdpa", device=None) -> nn.Module:
    """LLaMA-7B: dim 4096, 32 layers, 32 heads, FFN 11008, vocab 32000, untied.

    6,738,415,616 parameters = 2 * 32000 * 4096 + 4096
    + 32 * (4 * 4096^2 + 3 * 4096 * 11008 + 2 * 4096). In float32 that is 27 GB:
    build it with ``device="meta"`` to profile without allocating.

    Args:
        seq_len: example sequence length.
        attention: ``"sdpa"`` or ``"matmul"``.
        device: build on this device.
    """
    return _build(
        dim=4096, n_layers=32, n_heads=32, n_kv_heads=None, ffn_hidden=11008, vocab=32000,
        seq_len=seq_len, max_seq_len=None, attention=attention, tie_embeddings=False,
        device=device,
    )
