"""Cost formulas: one small pure function per aten op family.

Each formula takes an `OpRecord` (shapes and attributes only) and returns a
`Cost`. Conventions, stated once:

* ``macs``: multiply-accumulates of conv, matmul-family and attention ops.
  1 MAC = 2 FLOPs. Bias adds are not MACs (they go to ``other_ops``).
* ``other_ops``: every other arithmetic operation. An elementwise function
  counts one op per output element whatever its internal cost (GELU is one op).
  Batch norm with running statistics counts 2 per element (scale and shift
  after folding); with batch statistics 8. Layer and group norm count 8 per
  element (mean 1, variance 3, normalize 2, affine 2). Softmax counts 5 per
  element (max, subtract, exp, sum, divide). Pooling counts one op per window
  element per output; a mean over dimensions one per input element.
* ``computes``: the op makes a new activation in the lectures' sense (conv,
  matmul, attention, pooling, embedding lookup, resizing); elementwise ops,
  normalization and data movement are taken as fused into their producer.

Ops that only move or reshape data are registered as free (`FREE_OPS`) so
that they are counted (as zero work), not reported missing. Anything else
with no formula is reported in ``Profile.uncounted``.

>>> from edgefit.metrics.formulas import formula_for
>>> callable(formula_for("convolution"))
True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch

from edgefit.errors import RegistryError, close_names
from edgefit.trace.tracer import OpRecord, TensorSpec


class Cost(NamedTuple):
    """What one op costs."""

    macs: int = 0
    other_ops: int = 0
    computes: bool = False


FREE = Cost()
Formula = Callable[[OpRecord], Cost]
_FORMULAS: dict[str, Formula] = {}


def register_formula(*names: str):
    """Register a formula for aten op packets by name (``"convolution"``).

    Raises:
        RegistryError: a name already has a formula.
    """

    def deco(fn: Formula) -> Formula:
        for name in names:
            if name in _FORMULAS:
                raise RegistryError(f"a cost formula for {name!r} is already registered")
            _FORMULAS[name] = fn
        return fn

    return deco


def formula_for(name: str) -> Formula:
    """The formula of an op packet name; raises `RegistryError` with close names."""
    try:
        return _FORMULAS[name]
    except KeyError:
        raise RegistryError(f"no cost formula for aten op {name!r}.{close_names(name, _FORMULAS)}") from None


def has_formula(name: str) -> bool:
    return name in _FORMULAS


def registered_ops() -> list[str]:
    return sorted(_FORMULAS)


def _prod(xs) -> int:
    return math.prod(xs) if xs else 1


def _is_tensor(a) -> bool:
    """Arguments are meta tensors (from a trace) or `TensorSpec`s (built by hand)."""
    return isinstance(a, (torch.Tensor, TensorSpec))


def _numel(a) -> int:
    return math.prod(a.shape)


def _tensor_args(op: OpRecord) -> list:
    return [a for a in op.args if _is_tensor(a)]


def _out_numel(op: OpRecord) -> int:
    return op.outputs[0].numel if op.outputs else 0


# --- MAC ops ---------------------------------------------------------------


@register_formula("convolution", "_convolution")
def conv_cost(op: OpRecord) -> Cost:
    """Conv of any dimension, grouped, depthwise, dilated, strided or transposed.

    MACs = N x C_out x prod(out spatial) x C_in/groups x prod(kernel); for a
    transposed conv each input element is scattered through the kernel:
    N x C_in x prod(in spatial) x C_out/groups x prod(kernel).
    """
    x, w, bias = op.args[0], op.args[1], op.args[2]
    transposed, groups = op.args[6], op.args[8]
    out = op.outputs[0]
    kernel = _prod(w.shape[2:])
    n_spatial = len(w.shape) - 2
    if transposed:
        c_in = x.shape[-n_spatial - 1]
        c_out_per_group = w.shape[1]
        batch = _prod(x.shape[: -n_spatial - 1])
        macs = batch * c_in * _prod(x.shape[-n_spatial:]) * c_out_per_group * kernel
    else:
        macs = out.numel * w.shape[1] * kernel
        del groups  # already in w.shape[1] = C_in / groups
    return Cost(macs, out.numel if _is_tensor(bias) else 0, True)


@register_formula("addmm")
def addmm_cost(op: OpRecord) -> Cost:
    """bias + A @ B with A (M, K), B (K, N): M x K x N MACs and M x N bias adds."""
    a, b = op.args[1], op.args[2]
    m, k = a.shape
    n = b.shape[1]
    return Cost(m * k * n, m * n, True)


@register_formula("mm")
def mm_cost(op: OpRecord) -> Cost:
    """A (M, K) @ B (K, N): M x K x N MACs."""
    a, b = op.args[0], op.args[1]
    return Cost(a.shape[0] * a.shape[1] * b.shape[1], 0, True)


@register_formula("bmm")
def bmm_cost(op: OpRecord) -> Cost:
    """Batched (B, M, K) @ (B, K, N): B x M x K x N MACs."""
    a, b = op.args[0], op.args[1]
    return Cost(a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2], 0, True)


@register_formula("baddbmm")
def baddbmm_cost(op: OpRecord) -> Cost:
    """input + (B, M, K) @ (B, K, N): bmm MACs plus B x M x N adds."""
    a, b = op.args[1], op.args[2]
    out = a.shape[0] * a.shape[1] * b.shape[2]
    return Cost(a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2], out, True)


@register_formula("addbmm")
def addbmm_cost(op: OpRecord) -> Cost:
    a, b = op.args[1], op.args[2]
    return Cost(a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2], a.shape[1] * b.shape[2] * a.shape[0], True)


@register_formula("mv", "addmv")
def mv_cost(op: OpRecord) -> Cost:
    """Matrix (M, K) times vector (K): M x K MACs."""
    mats = [t for t in _tensor_args(op) if len(t.shape) == 2]
    m, k = mats[0].shape
    return Cost(m * k, m if op.name == "addmv" else 0, True)


@register_formula("dot", "vdot")
def dot_cost(op: OpRecord) -> Cost:
    return Cost(_numel(op.args[0]), 0, True)


@register_formula("linear")
def linear_cost(op: OpRecord) -> Cost:
    """x (..., K) @ W^T (N, K): prod(...) x K x N MACs, bias adds separate."""
    x, w = op.args[0], op.args[1]
    bias = op.args[2] if len(op.args) > 2 else None
    rows = _prod(x.shape[:-1])
    n = w.shape[0]
    return Cost(rows * x.shape[-1] * n, rows * n if _is_tensor(bias) else 0, True)


def _attention(q: TensorSpec, k: TensorSpec, v: TensorSpec, has_mask: bool) -> Cost:
    """Scaled dot-product attention: Q K^T and P V.

    With q (..., L, E), k (..., S, E), v (..., S, Ev): MACs = prod(...) x L x S x (E + Ev).
    Other ops mirror the math path: scaling q and k, optional mask add, softmax.
    """
    batch = _prod(q.shape[:-2])
    L, E = q.shape[-2], q.shape[-1]
    S, Ev = k.shape[-2], v.shape[-1]
    scores = batch * L * S
    other = batch * L * E + _prod(k.shape[:-2]) * S * E + 5 * scores + (scores if has_mask else 0)
    return Cost(scores * (E + Ev), other, True)


@register_formula(
    "_scaled_dot_product_flash_attention_for_cpu",
    "_scaled_dot_product_flash_attention",
    "_scaled_dot_product_efficient_attention",
    "_scaled_dot_product_cudnn_attention",
    "_scaled_dot_product_fused_attention_overrideable",
    "_scaled_dot_product_attention_math",
    "scaled_dot_product_attention",
)
def sdpa_cost(op: OpRecord) -> Cost:
    q, k, v = op.args[0], op.args[1], op.args[2]
    mask = op.kwargs.get("attn_mask") if op.kwargs else None
    if mask is None and len(op.args) > 3 and _is_tensor(op.args[3]):
        mask = op.args[3]
    return _attention(q, k, v, mask is not None)


@register_formula("_native_multi_head_attention")
def native_mha_cost(op: OpRecord) -> Cost:
    """The fused nn.MultiheadAttention kernel (CPU/CUDA fast path under no_grad).

    Counts what the decomposed path counts: input projections (L x E x E for q,
    S x E x E each for k and v), attention over all heads (L x S x 2E) and the
    output projection (L x E x E), per batch element.
    """
    q, k = op.args[0], op.args[1]
    embed_dim = op.args[3]
    batch = _prod(q.shape[:-2])
    L, S, E = q.shape[-2], k.shape[-2], embed_dim
    proj = batch * (L * E * E + 2 * S * E * E + L * E * E)
    attn = batch * L * S * 2 * E
    num_heads = op.args[4]
    scores = batch * num_heads * L * S
    other = batch * (3 * L * E + 2 * S * E) + 5 * scores + batch * L * E  # biases, scaling, softmax, out bias
    return Cost(proj + attn, other, True)


# --- lookups, pooling, resizing ---------------------------------------------


@register_formula("embedding", "_embedding_bag", "embedding_bag")
def embedding_cost(op: OpRecord) -> Cost:
    """A table lookup: no arithmetic, but a new activation."""
    return Cost(0, 0, True)


def _window(op: OpRecord) -> int:
    kernel = op.args[1]
    n = 1 if op.name.endswith(("1d", "1d_with_indices")) else 3 if op.name.endswith(("3d", "3d_with_indices")) else 2
    return kernel[0] ** n if len(kernel) == 1 else _prod(kernel)


@register_formula(
    "max_pool1d", "max_pool2d", "max_pool3d",
    "max_pool1d_with_indices", "max_pool2d_with_indices", "max_pool3d_with_indices",
    "avg_pool1d", "avg_pool2d", "avg_pool3d",
)
def pool_cost(op: OpRecord) -> Cost:
    """Window pooling: one op (compare or add) per window element per output."""
    return Cost(0, _out_numel(op) * _window(op), True)


@register_formula(
    "_adaptive_avg_pool2d", "_adaptive_avg_pool3d", "adaptive_max_pool2d", "adaptive_max_pool3d",
    "adaptive_avg_pool1d", "adaptive_max_pool1d", "_adaptive_avg_pool1d",
)
def adaptive_pool_cost(op: OpRecord) -> Cost:
    """Adaptive pooling reads every input element once."""
    return Cost(0, _numel(op.args[0]), True)


@register_formula(
    "upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d",
    "_upsample_nearest_exact1d", "_upsample_nearest_exact2d", "_upsample_nearest_exact3d",
)
def upsample_nearest_cost(op: OpRecord) -> Cost:
    """Nearest resizing copies: no arithmetic, a new activation."""
    return Cost(0, 0, True)


@register_formula("upsample_linear1d", "upsample_bilinear2d", "upsample_trilinear3d", "upsample_bicubic2d", "_upsample_bilinear2d_aa")
def upsample_interp_cost(op: OpRecord) -> Cost:
    """Interpolation: 2^d taps (4^d for bicubic) weighted per output element."""
    spatial = len(op.outputs[0].shape) - 2
    taps = 4**spatial if "bicubic" in op.name else 2**spatial
    return Cost(0, _out_numel(op) * taps, True)


# --- elementwise, normalization, softmax, reductions ------------------------

_ELEMENTWISE = (
    "add", "sub", "mul", "div", "rsub", "neg", "abs", "exp", "log", "log2", "sqrt", "rsqrt", "pow",
    "reciprocal", "sin", "cos", "tanh", "sigmoid", "relu", "relu6", "gelu", "silu", "mish", "elu",
    "leaky_relu", "hardswish", "hardsigmoid", "hardtanh", "softplus", "erf", "clamp", "clamp_min",
    "clamp_max", "maximum", "minimum", "where", "masked_fill", "eq", "ne", "lt", "le", "gt", "ge",
    "logical_not", "logical_and", "logical_or", "bitwise_not", "sign", "floor", "ceil", "round",
    "square", "prelu", "_prelu_kernel", "addcmul", "addcdiv", "lerp", "fmod", "remainder", "exp2",
    "expm1", "log1p", "sgn", "threshold", "glu", "tril", "triu", "isnan", "isinf",
)


def elementwise_cost(op: OpRecord) -> Cost:
    """One op per output element."""
    return Cost(0, _out_numel(op), False)


register_formula(*_ELEMENTWISE, *(n + "_" for n in _ELEMENTWISE if n not in ("eq", "ne", "lt", "le", "gt", "ge", "isnan", "isinf")))(elementwise_cost)


@register_formula("native_dropout")
def dropout_cost(op: OpRecord) -> Cost:
    """Training-mode dropout: draw, compare, scale: counted as 2 per element."""
    return Cost(0, 2 * _out_numel(op), False)


@register_formula("_native_batch_norm_legit_no_training")
def bn_eval_cost(op: OpRecord) -> Cost:
    """Batch norm with running statistics: scale and shift, 2 per element."""
    return Cost(0, 2 * _out_numel(op), False)


@register_formula("native_batch_norm", "_native_batch_norm_legit", "_batch_norm_with_update", "_native_batch_norm_legit_functional")
def bn_cost(op: OpRecord) -> Cost:
    """Batch norm: 2 per element with running statistics, 8 when it computes batch statistics."""
    training = op.args[5] if op.name == "native_batch_norm" and len(op.args) > 5 else True
    if op.name == "_batch_norm_with_update":
        training = True
    return Cost(0, (8 if training else 2) * _out_numel(op), False)


@register_formula("native_layer_norm", "native_group_norm", "_fused_rms_norm", "rms_norm")
def norm_cost(op: OpRecord) -> Cost:
    """Layer, group and RMS norm: 8 ops per element (statistics, normalize, affine)."""
    return Cost(0, 8 * _numel(op.args[0]), False)


@register_formula("_softmax", "_log_softmax", "_safe_softmax", "softmax", "log_softmax", "special_softmax")
def softmax_cost(op: OpRecord) -> Cost:
    """Softmax: max, subtract, exp, sum, divide: 5 per element."""
    return Cost(0, 5 * _out_numel(op), False)


@register_formula("mean", "sum", "amax", "amin", "max", "min", "var", "std", "var_mean", "std_mean", "prod", "norm", "linalg_vector_norm", "argmax", "argmin", "logsumexp", "cumsum", "cumprod", "any", "all")
def reduce_cost(op: OpRecord) -> Cost:
    """Reductions read every input element once: one op each."""
    return Cost(0, _numel(op.args[0]) if _is_tensor(op.args[0]) else 0, False)


# --- free: data movement, views, factories ---------------------------------

FREE_OPS = (
    "view", "_unsafe_view", "reshape", "_reshape_alias", "t", "transpose", "permute", "expand",
    "expand_as", "squeeze", "unsqueeze", "slice", "select", "detach", "alias", "clone", "contiguous",
    "_to_copy", "copy_", "copy", "split", "split_with_sizes", "chunk", "unbind", "cat", "stack",
    "flatten", "unflatten", "empty", "empty_like", "empty_strided", "zeros", "zeros_like", "ones",
    "ones_like", "full", "full_like", "arange", "lift_fresh", "lift_fresh_copy", "scalar_tensor",
    "index_select", "narrow", "as_strided", "repeat", "constant_pad_nd", "new_empty",
    "new_empty_strided", "new_zeros", "new_ones", "new_full", "fill", "fill_", "zero_", "roll", "flip",
    "view_as_real", "view_as_complex", "index", "gather", "_local_scalar_dense", "unfold", "diagonal",
    "im2col", "col2im", "pixel_shuffle", "pixel_unshuffle", "channel_shuffle", "native_channel_shuffle",
    "reflection_pad1d", "reflection_pad2d", "replication_pad1d", "replication_pad2d", "_pad_circular",
    "bernoulli_", "bernoulli", "rand", "randn", "rand_like", "randn_like", "uniform_", "normal_",
    "resize_", "set_", "movedim", "swapaxes", "unsqueeze_", "squeeze_", "t_", "transpose_", "split_copy",
    "_assert_async", "_assert_tensor_metadata", "sym_constrain_range_for_size", "masked_scatter",
    "index_put_", "index_put", "scatter", "scatter_", "masked_select", "tensor_split", "lift",
    "linspace", "eye", "tile", "broadcast_to", "_unsafe_index", "one_hot",
)
register_formula(*FREE_OPS)(lambda op: FREE)
