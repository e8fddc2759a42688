"""Output-shape rules for ops whose meta kernels are slow.

Many of torch's meta kernels (elementwise ops, batch norm, layer norm,
softmax, addmm...) are Python reference implementations costing 0.1 to 1.4 ms
per call, against about 2 us for allocating an empty meta tensor. The tracer
only needs output shapes and dtypes, so for these ops a rule computes them
directly. Each rule takes ``(args, kwargs)`` of meta tensors and returns what
the op would return; in-place ops return their first argument. Every rule is
checked against the real meta kernel in ``tests/trace/test_shapes.py``.
"""

from __future__ import annotations

import math

import torch

aten = torch.ops.aten
_META = torch.device("meta")

SHAPE_RULES: dict = {}


def _empty(shape, dtype) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype, device=_META)


def _broadcast(*shapes) -> tuple[int, ...]:
    if len(shapes) == 2 and shapes[0] == shapes[1]:  # a residual add: nothing to broadcast
        return tuple(shapes[0])
    ndim = max(len(s) for s in shapes)
    out = [1] * ndim
    for s in shapes:
        off = ndim - len(s)
        for i, d in enumerate(s):
            j = off + i
            if d != 1:
                if out[j] != 1 and out[j] != d:
                    raise RuntimeError(
                        f"The size of tensor a ({out[j]}) must match the size of tensor b ({d}) at non-singleton dimension {i}"
                    )
                out[j] = d
    return tuple(out)


def _rule(*ops):
    """Register a rule for ops named ``"packet.overload"`` (``"relu.default"``).

    Names, not ``torch.ops.aten`` objects: touching ~150 of those at import
    costs several milliseconds of every first call.
    """

    def deco(fn):
        for op in ops:
            if op in SHAPE_RULES:
                raise KeyError(f"duplicate shape rule for {op}")
            SHAPE_RULES[op] = fn
        return fn

    return deco


def _ops(names, overloads=("default",)):
    return [f"{name}.{ov}" for name in names for ov in overloads]


def rule_for(func):
    """The shape rule of an aten ``OpOverload``, or ``None``."""
    return SHAPE_RULES.get(f"{func.overloadpacket.__name__}.{func._overloadname}")


_UNARY = [
    "relu", "gelu", "silu", "sigmoid", "tanh", "hardswish", "hardsigmoid", "hardtanh", "leaky_relu",
    "elu", "neg", "exp", "rsqrt", "sqrt", "abs", "reciprocal", "log", "sin", "cos", "erf", "mish",
    "softplus", "relu6", "clamp_min", "clamp_max", "clamp", "tril", "triu", "sign", "floor", "ceil",
    "round", "square", "log1p", "expm1", "exp2", "logical_not", "bitwise_not",
]


@_rule(*_ops(_UNARY), *_ops(["clamp"], ("Tensor",)))
def _unary(args, kwargs):
    x = args[0]
    return _empty(x.shape, x.dtype)


@_rule(*_ops([n + "_" for n in _UNARY if n != "softplus"]), "copy_.default")
def _inplace(args, kwargs):
    return args[0]


@_rule("pow.Tensor_Scalar", *_ops(["add", "sub", "mul", "rsub"], ("Scalar",)))
def _tensor_scalar(args, kwargs):
    x = args[0]
    return _empty(x.shape, torch.result_type(x, args[1]))


@_rule("div.Scalar")
def _div_scalar(args, kwargs):
    x = args[0]
    return _empty(x.shape, _dtype_of(x, args[1], true_divide=True))


def _dtype_of(a, b, true_divide=False):
    dtype = torch.result_type(a, b)
    if true_divide and not dtype.is_floating_point and not dtype.is_complex:
        return torch.get_default_dtype()
    return dtype


@_rule("div.Tensor")
def _div(args, kwargs):
    return _binary_impl(args, kwargs, True)


@_rule(*_ops(["add", "sub", "mul", "rsub"], ("Tensor",)), "maximum.default", "minimum.default")
def _binary(args, kwargs):
    return _binary_impl(args, kwargs, False)


def _binary_impl(args, kwargs, true_divide):
    a, b = args[0], args[1]
    if not isinstance(b, torch.Tensor):
        return _empty(a.shape, _dtype_of(a, b, true_divide))
    if not isinstance(a, torch.Tensor):
        return _empty(b.shape, _dtype_of(a, b, true_divide))
    return _empty(_broadcast(a.shape, b.shape), _dtype_of(a, b, true_divide))


@_rule(*_ops(["add_", "sub_", "mul_", "div_"], ("Tensor", "Scalar")))
def _binary_inplace(args, kwargs):
    a, b = args[0], args[1]
    if isinstance(b, torch.Tensor) and _broadcast(a.shape, b.shape) != tuple(a.shape):
        raise RuntimeError(f"output with shape {list(a.shape)} doesn't match the broadcast shape")
    return a


@_rule(*_ops(["eq", "ne", "lt", "le", "gt", "ge"], ("Tensor", "Scalar")))
def _compare(args, kwargs):
    a, b = args[0], args[1]
    shape = _broadcast(a.shape, b.shape) if isinstance(b, torch.Tensor) else a.shape
    return _empty(shape, torch.bool)


@_rule("where.self")
def _where(args, kwargs):
    c, a, b = args[0], args[1], args[2]
    shapes = [t.shape for t in (c, a, b) if isinstance(t, torch.Tensor)]
    return _empty(_broadcast(*shapes), torch.result_type(a, b))


@_rule("masked_fill.Scalar", "masked_fill.Tensor")
def _masked_fill(args, kwargs):
    x = args[0]
    return _empty(_broadcast(x.shape, args[1].shape), x.dtype)


@_rule("masked_fill_.Scalar", "masked_fill_.Tensor")
def _masked_fill_(args, kwargs):
    return args[0]


@_rule(
    "_native_batch_norm_legit_no_training.default",
    "_native_batch_norm_legit.default",
    "_native_batch_norm_legit.no_stats",
    "native_batch_norm.default",
)
def _bn_train(args, kwargs):
    x = args[0]
    c = x.shape[1] if x.dim() > 1 else 0
    return _empty(x.shape, x.dtype), _empty((c,), x.dtype), _empty((c,), x.dtype)


@_rule("native_layer_norm.default")
def _layer_norm(args, kwargs):
    x, normalized = args[0], args[1]
    k = len(normalized)
    if tuple(x.shape[x.dim() - k :]) != tuple(normalized):
        raise RuntimeError(f"Given normalized_shape={list(normalized)}, expected input with shape [*, {', '.join(map(str, normalized))}], but got input of size{list(x.shape)}")
    stat = tuple(x.shape[: x.dim() - k]) + (1,) * k
    return _empty(x.shape, x.dtype), _empty(stat, x.dtype), _empty(stat, x.dtype)


@_rule("_softmax.default", "_log_softmax.default")
def _softmax(args, kwargs):
    x, half_to_float = args[0], args[2]
    dtype = torch.float32 if half_to_float else x.dtype
    return _empty(x.shape, dtype)


@_rule("_safe_softmax.default")
def _safe_softmax(args, kwargs):
    x = args[0]
    dtype = kwargs.get("dtype") or (args[2] if len(args) > 2 and args[2] is not None else x.dtype)
    return _empty(x.shape, dtype)


@_rule("native_dropout.default")
def _dropout(args, kwargs):
    x = args[0]
    return _empty(x.shape, x.dtype), _empty(x.shape, torch.bool)


def _reduce_shape(shape, dims, keepdim):
    nd = len(shape)
    if dims is None or len(dims) == 0:
        dims = range(nd)
    dims = {d % nd if nd else 0 for d in dims}
    if keepdim:
        return tuple(1 if i in dims else s for i, s in enumerate(shape))
    return tuple(s for i, s in enumerate(shape) if i not in dims)


def _reduce(args, kwargs, promote_ints):
    x = args[0]
    dims = args[1] if len(args) > 1 else kwargs.get("dim")
    keepdim = args[2] if len(args) > 2 else kwargs.get("keepdim", False)
    dtype = kwargs.get("dtype") or (args[3] if len(args) > 3 else None)
    if dtype is None:
        dtype = torch.int64 if promote_ints and not x.dtype.is_floating_point and not x.dtype.is_complex else x.dtype
    return _empty(_reduce_shape(tuple(x.shape), dims, keepdim), dtype)


@_rule("mean.dim", "amax.default", "amin.default")
def _reduce_keep_dtype(args, kwargs):
    return _reduce(args, kwargs, promote_ints=False)


@_rule("sum.dim_IntList")
def _reduce_sum(args, kwargs):
    return _reduce(args, kwargs, promote_ints=True)


@_rule("mean.default")
def _mean_all(args, kwargs):
    x = args[0]
    return _empty((), kwargs.get("dtype") or x.dtype)


@_rule("addmm.default")
def _addmm(args, kwargs):
    bias, a, b = args[0], args[1], args[2]
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[0]:
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({a.shape[0]}x{a.shape[1]} and {b.shape[0]}x{b.shape[1]})")
    shape = (a.shape[0], b.shape[1])
    _broadcast(bias.shape, shape)
    return _empty(shape, a.dtype)


@_rule("mm.default")
def _mm(args, kwargs):
    a, b = args[0], args[1]
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[0]:
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({'x'.join(map(str, a.shape))} and {'x'.join(map(str, b.shape))})")
    return _empty((a.shape[0], b.shape[1]), a.dtype)


@_rule("bmm.default")
def _bmm(args, kwargs):
    a, b = args[0], args[1]
    if a.dim() != 3 or b.dim() != 3 or a.shape[0] != b.shape[0] or a.shape[2] != b.shape[1]:
        raise RuntimeError(f"bmm: shapes {list(a.shape)} and {list(b.shape)} cannot be multiplied")
    return _empty((a.shape[0], a.shape[1], b.shape[2]), a.dtype)


@_rule("baddbmm.default")
def _baddbmm(args, kwargs):
    out = _bmm(args[1:], kwargs)
    _broadcast(args[0].shape, out.shape)
    return out


@_rule("cat.default")
def _cat(args, kwargs):
    tensors = [t for t in args[0] if not (t.dim() == 1 and t.shape[0] == 0)]
    dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
    if not tensors:
        return _empty((0,), args[0][0].dtype)
    ref = tensors[0]
    dim = dim % ref.dim()
    for t in tensors[1:]:
        if t.dim() != ref.dim() or any(t.shape[i] != ref.shape[i] for i in range(ref.dim()) if i != dim):
            raise RuntimeError(f"Sizes of tensors must match except in dimension {dim}: {list(ref.shape)} vs {list(t.shape)}")
    shape = list(ref.shape)
    shape[dim] = sum(t.shape[dim] for t in tensors)
    dtype = ref.dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    return _empty(tuple(shape), dtype)


@_rule("stack.default")
def _stack(args, kwargs):
    tensors = args[0]
    dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
    ref = tensors[0]
    for t in tensors[1:]:
        if t.shape != ref.shape:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got {list(ref.shape)} and {list(t.shape)}")
    nd = ref.dim() + 1
    dim = dim % nd
    shape = list(ref.shape)
    shape.insert(dim, len(tensors))
    return _empty(tuple(shape), ref.dtype)


def _pool_out(size, k, s, p, d, ceil):
    num = size + 2 * p - d * (k - 1) - 1
    out = (math.ceil(num / s) if ceil else num // s) + 1
    if ceil and (out - 1) * s >= size + p:
        out -= 1
    return out


def _pool_params(x, kernel, stride, padding, dilation, n):
    kernel = list(kernel) * (n if len(kernel) == 1 else 1)
    stride = list(stride) if stride else kernel
    stride = stride * (n if len(stride) == 1 else 1)
    padding = list(padding) * (n if len(padding) == 1 else 1)
    dilation = list(dilation) * (n if len(dilation) == 1 else 1)
    return kernel, stride, padding, dilation


def _pool2d_shape(x, kernel, stride, padding, dilation, ceil, what):
    k, s, p, d = _pool_params(x, kernel, stride, padding, dilation, 2)
    h = _pool_out(x.shape[-2], k[0], s[0], p[0], d[0], ceil)
    w = _pool_out(x.shape[-1], k[1], s[1], p[1], d[1], ceil)
    if h <= 0 or w <= 0:
        raise RuntimeError(f"{what}: output size is too small ({h}x{w}) for input {list(x.shape)}")
    return tuple(x.shape[:-2]) + (h, w)


@_rule("max_pool2d_with_indices.default")
def _max_pool2d(args, kwargs):
    x = args[0]
    stride = args[2] if len(args) > 2 else []
    padding = args[3] if len(args) > 3 else [0]
    dilation = args[4] if len(args) > 4 else [1]
    ceil = args[5] if len(args) > 5 else False
    shape = _pool2d_shape(x, args[1], stride, padding, dilation, ceil, "max_pool2d")
    return _empty(shape, x.dtype), _empty(shape, torch.int64)


@_rule("avg_pool2d.default")
def _avg_pool2d(args, kwargs):
    x = args[0]
    stride = args[2] if len(args) > 2 else []
    padding = args[3] if len(args) > 3 else [0]
    ceil = args[4] if len(args) > 4 else False
    return _empty(_pool2d_shape(x, args[1], stride, padding, [1], ceil, "avg_pool2d"), x.dtype)


@_rule("convolution.default")
def _convolution(args, kwargs):
    return torch.empty(conv_output_shape(args), dtype=args[0].dtype, device=_META)


def conv_output_shape(args) -> tuple[int, ...]:
    """The output shape of ``aten.convolution`` with these arguments; raises as torch does
    for an input that does not fit."""
    x, w = args[0], args[1]
    xs, ws = x.shape, w.shape
    stride, padding, dilation, transposed, output_padding, groups = args[3:9]
    if len(xs) == 4 and len(ws) == 4 and not transposed:  # batched 2-D, most of a CNN: the loop below, unrolled
        if xs[1] == ws[1] * groups:
            h = (xs[2] + 2 * padding[0] - dilation[0] * (ws[2] - 1) - 1) // stride[0] + 1
            w = (xs[3] + 2 * padding[1] - dilation[1] * (ws[3] - 1) - 1) // stride[1] + 1
            if h > 0 and w > 0:
                return (xs[0], ws[0], h, w)
    n = len(ws) - 2
    if len(xs) != n + 2 and len(xs) != n + 1:
        raise RuntimeError(f"Expected {n + 1}D (unbatched) or {n + 2}D (batched) input to conv{n}d, but got input of size: {list(xs)}")
    spatial_in = xs[-n:]
    if not transposed:
        if xs[-n - 1] != ws[1] * groups:
            raise RuntimeError(
                f"Given groups={groups}, weight of size {list(ws)}, expected input{list(xs)} to have {ws[1] * groups} channels, but got {xs[-n - 1]} channels instead"
            )
        out_c = ws[0]
        spatial = []
        for i in range(n):
            o = (spatial_in[i] + 2 * padding[i] - dilation[i] * (ws[2 + i] - 1) - 1) // stride[i] + 1
            if o <= 0:
                raise RuntimeError(f"Calculated output size is too small: input {list(xs)} with kernel {list(ws[2:])}")
            spatial.append(o)
    else:
        if xs[-n - 1] != ws[0]:
            raise RuntimeError(f"expected input{list(xs)} to have {ws[0]} channels, but got {xs[-n - 1]} channels instead")
        out_c = ws[1] * groups
        spatial = [
            (spatial_in[i] - 1) * stride[i] - 2 * padding[i] + dilation[i] * (ws[2 + i] - 1) + output_padding[i] + 1
            for i in range(n)
        ]
    return (*xs[:-n - 1], out_c, *spatial)


@_rule("embedding.default")
def _embedding(args, kwargs):
    w, idx = args[0], args[1]
    return _empty(tuple(idx.shape) + (w.shape[1],), w.dtype)


@_rule("_adaptive_avg_pool2d.default")
def _adaptive_avg_pool2d(args, kwargs):
    x, size = args[0], args[1]
    return _empty(tuple(x.shape[:-2]) + tuple(size), x.dtype)


def _arange(start, end, step, kwargs):
    dtype = kwargs.get("dtype")
    if dtype is None:
        is_int = all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end, step))
        dtype = torch.int64 if is_int else torch.get_default_dtype()
    if step == 0:
        raise RuntimeError("step must be nonzero")
    length = max(0, math.ceil((end - start) / step))
    return _empty((length,), dtype)


# torch's meta arange is a Python reference whose first call imports sympy (~0.4 s).
@_rule("arange.default")
def _arange_end(args, kwargs):
    return _arange(0, args[0], 1, kwargs)


@_rule("arange.start")
def _arange_start(args, kwargs):
    return _arange(args[0], args[1], 1, kwargs)


@_rule("arange.start_step")
def _arange_start_step(args, kwargs):
    return _arange(args[0], args[1], args[2], kwargs)
