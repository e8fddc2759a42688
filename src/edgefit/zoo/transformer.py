"""Transformer encoders: BERT-base and small configurable encoders.

Vaswani et al., "Attention Is All You Need", NeurIPS 2017.
Devlin et al., "BERT: Pre-training of Deep Bidirectional Transformers for Language
Understanding", NAACL 2019.
"""

from __future__ import annotations

import torch
from torch import nn

from edgefit.errors import ModelSpecError
from edgefit.zoo.blocks import ATTENTION_KINDS, MultiHeadSelfAttention
from edgefit.zoo.registry import check_choice, check_positive, on_device, register_model

_BERT = "Devlin et al., BERT: Pre-training of Deep Bidirectional Transformers, NAACL 2019"


def _token_shape(seq_len: int = 128, **_: object) -> tuple[int, int]:
    return (1, seq_len)


def _tiny_token_shape(seq_len: int = 32, **_: object) -> tuple[int, int]:
    return (1, seq_len)


class EncoderLayer(nn.Module):
    """Post-LN encoder layer: ``LN(x + attn(x))`` then ``LN(x + ffn(x))`` with GELU."""

    def __init__(self, dim: int, n_heads: int, ffn: int, *, attention: str, dropout: float, eps: float):
        super().__init__()
        self.attention = MultiHeadSelfAttention(dim, n_heads, attention=attention, dropout=dropout)
        self.attention_norm = nn.LayerNorm(dim, eps=eps)
        self.intermediate = nn.Linear(dim, ffn)
        self.act = nn.GELU()
        self.output = nn.Linear(ffn, dim)
        self.output_norm = nn.LayerNorm(dim, eps=eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.attention_norm(x + self.dropout(self.attention(x)))
        return self.output_norm(x + self.dropout(self.output(self.act(self.intermediate(x)))))


class TransformerEncoder(nn.Module):
    """BERT-style encoder: token + position + segment embeddings, LayerNorm, N layers.

    Takes int64 token ids ``(batch, seq)`` and returns hidden states ``(batch, seq, dim)``.
    No pooler and no task head.
    """

    def __init__(
        self, *, vocab: int, dim: int, n_layers: int, n_heads: int, ffn: int, max_positions: int,
        type_vocab: int = 2, attention: str = "sdpa", dropout: float = 0.1, eps: float = 1e-12,
    ) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, dim)
        self.position_embeddings = nn.Embedding(max_positions, dim)
        self.token_type_embeddings = nn.Embedding(type_vocab, dim)
        self.embedding_norm = nn.LayerNorm(dim, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            EncoderLayer(dim, n_heads, ffn, attention=attention, dropout=dropout, eps=eps)
            for _ in range(n_layers)
        )

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        seq = ids.shape[1]
        positions = torch.arange(seq, device=ids.device)
        x = self.word_embeddings(ids) + self.position_embeddings(positions)
        x = x + self.token_type_embeddings.weight[0]
        x = self.dropout(self.embedding_norm(x))
        for layer in self.layers:
            x = layer(x)
        return x


def _encoder(
    *, vocab, dim, n_layers, n_heads, ffn, max_positions, seq_len, attention, dropout, device
) -> nn.Module:
    check_choice("attention", attention, ATTENTION_KINDS)
    for option, value in (("vocab", vocab), ("dim", dim), ("n_layers", n_layers),
                          ("n_heads", n_heads), ("ffn", ffn), ("seq_len", seq_len)):
        check_positive(option, value)
    if dim % n_heads:
        raise ModelSpecError(f"dim={dim} is not divisible by n_heads={n_heads}")
    if seq_len > max_positions:
        raise ModelSpecError(f"seq_len={seq_len} exceeds max_positions={max_positions}")
    with on_device(device):
        return TransformerEncoder(
            vocab=vocab, dim=dim, n_layers=n_layers, n_heads=n_heads, ffn=ffn,
            max_positions=max_positions, attention=attention, dropout=dropout,
        )


@register_model(
    "bert_base",
    input_shape=(1, 128),
    input_dtype="int64",
    family="transformer",
    paper=_BERT,
    description="BERT-base encoder (12 x 768, 12 heads, FFN 3072), no pooler: 108,891,648 params",
    input_shape_fn=_token_shape,
)
def bert_base(
    *, seq_len: int = 128, attention: str = "sdpa", dropout: float = 0.1, device=None
) -> nn.Module:
    """BERT-base encoder: vocab 30522, 12 layers, hidden 768, 12 heads, FFN 3072.

    108,891,648 parameters = Hugging Face ``BertModel`` (109,482,240) minus its
    pooler (768 * 768 + 768 = 590,592). Input: int64 token ids ``(1, seq_len)``.

    Args:
        seq_len: example sequence length (at most 512 positions).
        attention: ``"mha"``, ``"sdpa"`` or ``"matmul"``; same weights, same count.
        dropout: dropout probability.
        device: build on this device.
    """
    return _encoder(
        vocab=30522, dim=768, n_layers=12, n_heads=12, ffn=3072, max_positions=512,
        seq_len=seq_len, attention=attention, dropout=dropout, device=device,
    )


@register_model(
    "bert_tiny",
    input_shape=(1, 128),
    input_dtype="int64",
    family="transformer",
    paper="Turc et al., Well-Read Students Learn Better, 2019 (BERT-Tiny: 2 x 128)",
    description="BERT-Tiny encoder (2 x 128, 2 heads, FFN 512), no pooler: 4,369,408 params",
    input_shape_fn=_token_shape,
)
def bert_tiny(
    *, seq_len: int = 128, attention: str = "sdpa", dropout: float = 0.1, device=None
) -> nn.Module:
    """BERT-Tiny encoder: vocab 30522, 2 layers, hidden 128, 2 heads, FFN 512.

    Args:
        seq_len: example sequence length (at most 512 positions).
        attention: ``"mha"``, ``"sdpa"`` or ``"matmul"``.
        dropout: dropout probability.
        device: build on this device.
    """
    return _encoder(
        vocab=30522, dim=128, n_layers=2, n_heads=2, ffn=512, max_positions=512,
        seq_len=seq_len, attention=attention, dropout=dropout, device=device,
    )


@register_model(
    "transformer_encoder",
    input_shape=(1, 32),
    input_dtype="int64",
    family="transformer",
    paper="Vaswani et al., Attention Is All You Need, NeurIPS 2017",
    description="configurable BERT-style encoder; small defaults for tests",
    input_shape_fn=_tiny_token_shape,
)
def transformer_encoder(
    *, vocab: int = 1000, dim: int = 64, n_layers: int = 2, n_heads: int = 4, ffn: int = 256,
    max_positions: int = 128, seq_len: int = 32, attention: str = "sdpa", dropout: float = 0.0,
    device=None,
) -> nn.Module:
    """A configurable post-LN transformer encoder over int64 token ids ``(1, seq_len)``.

    Parameters: ``(vocab + max_positions + 2) * dim + 2 * dim`` for the embeddings, plus
    per layer ``4 * (dim^2 + dim) + 2 * dim * ffn + ffn + dim + 4 * dim``.

    Args:
        vocab: vocabulary size.
        dim: hidden width.
        n_layers: encoder layers.
        n_heads: attention heads.
        ffn: feed-forward hidden width.
        max_positions: learned position embeddings.
        seq_len: example sequence length.
        attention: ``"mha"``, ``"sdpa"`` or ``"matmul"``.
        dropout: dropout probability.
        device: build on this device.
    """
    return _encoder(
        vocab=vocab, dim=dim, n_layers=n_layers, n_heads=n_heads, ffn=ffn,
        max_positions=max_positions, seq_len=seq_len, attention=attention, dropout=dropout,
        device=device,
    )
