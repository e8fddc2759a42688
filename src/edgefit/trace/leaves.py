"""Leaf shortcuts: record a stock layer's op from its configuration, without dispatching it.

A CNN is mostly ``nn.Conv2d``, ``nn.BatchNorm2d`` and activations, one aten op
each. Dispatching that op through torch's Python dispatch mode costs more than
everything the tracer does with it: ``F.batch_norm``'s argument checks, the C++
dispatcher, the mode's trampoline, the walk up the Python frames to find the
module. For these stock layers the op and its arguments follow from the layer's
configuration, so `LeafShortcuts` gives each one a call that hands the
recorder exactly the op and arguments torch would have dispatched (same aten
overload, same argument list, same shape rule), as that module's op. The `Trace`
is the one a full dispatch gives, op for op; ``tests/trace/test_leaves.py``
checks it for every zoo model and for models written as torchvision writes them.

The call is installed as the module's ``_compiled_call_impl``, the slot that
``nn.Module.__call__`` runs instead of its hook checks and ``forward`` (what
``torch.compile`` fills): a module with no hooks calls it directly, and the
tracer removes it again on exit. Calling ``module.forward(x)`` directly still
dispatches, as any other forward does.

A leaf's new output tensor (convolution, batch norm, out-of-place activations) is
the one it made in the model's previous trace when nothing else holds that tensor
any more (no trace, no code, no view) and it is still as ``torch.empty`` made it
(`_Spare`): making and freeing a hundred meta tensors was a tenth of a profile.
A tensor anyone kept is never handed out again, so each trace's tensors stay
distinct while any of them is alive.

Shortcuts, each exactly what the module's ``forward`` dispatches:

* ``nn.Conv2d`` (numeric padding, ``padding_mode="zeros"``): ``aten.convolution``.
* ``nn.BatchNorm2d`` in eval with running statistics: ``aten.native_batch_norm``.
* ``nn.ReLU``, ``nn.ReLU6``, ``nn.Hardtanh``: ``aten.relu(_)``, ``aten.hardtanh(_)``.
* ``nn.Dropout`` in eval: nothing (its forward returns its input, no op).

Anything unusual runs the module's own ``forward`` instead: a subclass (its
``forward`` may differ), any forward or pre-hook (global ones included), an
instance ``forward``, a compiled module, another dispatch or function mode
active, autocast on, a module in training mode (batch norm and dropout), a
weight that is not float32 or not where ``forward`` reads it, settings that are
not the plain numbers aten receives (string padding, an integer momentum); and
per call: keyword or extra arguments, an input that is not a plain float32
contiguous meta tensor (channels_last is refused), or not 4-D for convolution
and batch norm.
"""

from __future__ import annotations

import functools
import math
import sys
import weakref

import torch
from torch import nn

from edgefit.trace.replay import _HOOKS, _LEAF_MARK, _any_global_hook
from edgefit.trace.shapes import conv_output_shape

_F32 = torch.float32
_META = torch.device("meta")
_Tensor = torch.Tensor


def _float32_weights(m: nn.Module) -> bool:
    """Parameters and floating buffers (not batch norm's integer step count) are float32."""
    tensors = (*m._parameters.values(), *(b for n, b in m._buffers.items() if n != "num_batches_tracked"))
    return all(t is None or t.dtype is _F32 for t in tensors)


def _conv(m: nn.Conv2d, x: torch.Tensor):
    """``F.conv2d`` -> ``aten.convolution`` with lists, ``transposed=False``, ``output_padding=[0, 0]``."""
    if x.dim() != 4 or not x.is_contiguous():
        return None
    params, state = m._parameters, m.__dict__
    w, b = params["weight"], params["bias"]
    args = [x, w, b, list(state["stride"]), list(state["padding"]), list(state["dilation"]), False, [0, 0], state["groups"]]
    return "convolution", args, [x, w] if b is None else [x, w, b]


def _conv_ok(m: nn.Conv2d) -> bool:
    """Zero padding given as numbers, plain integer settings, the weights where ``forward`` reads them."""
    state = m.__dict__
    return (
        state.get("padding_mode") == "zeros"
        and state.get("transposed") is False
        and _int_pair(state.get("stride"))
        and _int_pair(state.get("padding"))
        and _int_pair(state.get("dilation"))
        and type(state.get("groups")) is int
        and _registered(m, ("weight", "bias"), ())
        and m._parameters["weight"] is not None
    )


def _int_pair(v) -> bool:
    return type(v) is tuple and len(v) == 2 and type(v[0]) is int and type(v[1]) is int


def _registered(m: nn.Module, params: tuple, buffers: tuple) -> bool:
    """``m.name`` finds these in ``_parameters`` / ``_buffers`` (what the shortcut reads)."""
    state, p, b = m.__dict__, m._parameters, m._buffers
    for k in params:
        if k not in p or k in b or k in state:
            return False
    for k in buffers:
        if k not in b or k in p or k in state:
            return False
    return True


def _batch_norm_ok(m: nn.BatchNorm2d) -> bool:
    state = m.__dict__
    momentum = state.get("momentum")
    return (
        type(state.get("eps")) is float
        and (momentum is None or type(momentum) is float)
        and _registered(m, ("weight", "bias"), ("running_mean", "running_var"))
    )


def _batch_norm(m: nn.BatchNorm2d, x: torch.Tensor):
    """Eval with running statistics: ``F.batch_norm`` -> ``aten.native_batch_norm(..., False, momentum, eps)``."""
    state = m.__dict__
    if x.dim() != 4 or not x.is_contiguous() or state["training"]:
        return None
    params, buffers = m._parameters, m._buffers
    mean, var = buffers["running_mean"], buffers["running_var"]
    if mean is None or var is None:
        return None
    momentum = state["momentum"]
    w, b = params["weight"], params["bias"]
    args = [x, w, b, mean, var, False, 0.0 if momentum is None else momentum, state["eps"]]
    return "native_batch_norm", args, [t for t in args[:5] if t is not None]


def _relu(m: nn.ReLU, x: torch.Tensor):
    return "relu_" if m.__dict__["inplace"] else "relu", [x], [x]


def _hardtanh(m: nn.Hardtanh, x: torch.Tensor):
    state = m.__dict__
    return "hardtanh_" if state["inplace"] else "hardtanh", [x, state["min_val"], state["max_val"]], [x]


def _hardtanh_ok(m: nn.Hardtanh) -> bool:
    state = m.__dict__
    return type(state.get("min_val")) in (int, float) and type(state.get("max_val")) in (int, float)


def _always(m: nn.Module) -> bool:
    return True


# exact class -> (op and arguments torch would dispatch for an input, or None; check before each trace)
_BUILDERS = {
    nn.Conv2d: (_conv, _conv_ok),
    nn.BatchNorm2d: (_batch_norm, _batch_norm_ok),
    nn.ReLU: (_relu, _always),
    nn.ReLU6: (_hardtanh, _hardtanh_ok),
    nn.Hardtanh: (_hardtanh, _hardtanh_ok),
}
_Unseen = None  # edgefit.trace.tracer.Unseen, set with _OPS
_OPS: dict = {}  # name -> (aten overload, its recorder info), looked up on first use (not at import)
_guard = torch._C._DisableTorchDispatch


def _load_ops() -> None:
    global _Unseen
    from edgefit.trace.tracer import Unseen as _Unseen
    from edgefit.trace.tracer import func_info

    aten = torch.ops.aten
    for name in ("convolution", "native_batch_norm", "relu", "relu_", "hardtanh", "hardtanh_"):
        func = getattr(aten, name).default
        _OPS[name] = (func, func_info(func))


class _Spare:
    """The output tensor a leaf made in its previous trace, handed out again by its next
    call when nothing else holds it: no trace (its records keep their tensors), no
    code, no view, and it is still as made (shape, strides, storage, flags)."""

    __slots__ = ("tensor", "stride")

    def __init__(self):
        self.tensor = None
        self.stride = None

    def references(self) -> int:
        """``sys.getrefcount`` of the held tensor as read here: the slot, the local, and
        whatever the interpreter adds for the call (`_ALONE` when nothing else holds it)."""
        t = self.tensor
        return sys.getrefcount(t)

    def empty(self, shape: tuple) -> torch.Tensor:
        """A contiguous float32 meta tensor of ``shape`` no other code holds."""
        # no one else holds it (never known where the count cannot be read: _ALONE is -1)
        t = self.tensor if self.tensor is not None and _ALONE > 0 and self.references() == _ALONE else None
        if (
            t is not None
            and t.shape == shape
            and t.stride() == self.stride
            and t.dtype is _F32
            and not t.requires_grad
            and t.storage_offset() == 0
            and t.untyped_storage().nbytes() == 4 * math.prod(shape)
        ):
            return t
        with _guard():  # the recorder's dispatch mode is running: make it without dispatching
            t = torch.empty(shape, dtype=_F32, device=_META)
        self.tensor, self.stride = t, t.stride()
        return t


def _alone_references() -> int:
    """What `_Spare.references` reads for an object only the spare holds, measured on this
    interpreter (CPython versions differ in the references a call borrows); -1 where
    ``sys.getrefcount`` does not exist, so that no tensor is ever reused there."""
    if not hasattr(sys, "getrefcount"):
        return -1
    probe = _Spare()
    probe.tensor = object()
    return probe.references()


_ALONE = _alone_references()


@functools.lru_cache(maxsize=256)
def _batch_norm_stats(channels: int):
    """Batch norm's saved mean (and inverse std) for this many channels, as an `Unseen` result."""
    return _Unseen(torch.Size((channels,)), _F32)


def _spare_rules(cell) -> dict:
    """Shape rules (`edgefit.trace.shapes`) of the leaf ops that make a new float32 tensor,
    taking it from the running leaf's `_Spare` (``cell.spare``)."""

    def conv(args, kwargs):
        return cell.spare.empty(conv_output_shape(args))

    def batch_norm_eval(args, kwargs):
        # a 4-D input in eval: ``F.batch_norm`` drops the saved statistics, recorded without a tensor
        shape = tuple(args[0].shape)
        stats = _batch_norm_stats(shape[1])
        return cell.spare.empty(shape), stats, stats

    def unary(args, kwargs):
        return cell.spare.empty(tuple(args[0].shape))

    return {"convolution": conv, "native_batch_norm": batch_norm_eval, "relu": unary, "hardtanh": unary}


_STOCK_FORWARDS = {kind: kind.forward for kind in (*_BUILDERS, nn.Dropout)}


def _plain_module(m: nn.Module) -> bool:
    """No hooks, no instance ``forward``, not compiled: its call runs the class's ``forward``."""
    state = m.__dict__
    return not ("forward" in state or state.get("_compiled_call_impl") is not None or any(map(state.get, _HOOKS)))


def _context_is_plain() -> bool:
    """Only the tracer's dispatch mode, no function mode, no autocast, no global hook, and
    the stock classes' own ``forward`` (not patched since import)."""
    if any(kind.forward is not forward for kind, forward in _STOCK_FORWARDS.items()):
        return False
    if torch._C._len_torch_dispatch_stack() != 1 or torch._C._len_torch_function_stack() != 0:
        return False
    if any(torch.is_autocast_enabled(d) for d in ("cpu", "cuda")):
        return False
    return not _any_global_hook()


class _Cell:
    """The recorder of the running trace, read by the cached shortcuts, and the running
    leaf's `_Spare`, read by their shape rules."""

    __slots__ = ("rec", "spare")

    def __init__(self):
        self.rec = None
        self.spare = None


class _Cached:
    """A model's shortcuts, built once and installed for every trace while its swap plan is valid.

    Modules are held by weak reference: the plan lives as long as the model, and
    must not keep it alive.
    """

    __slots__ = ("cell", "leaves")

    def __init__(self, named: list[tuple[str, nn.Module]]):
        if not _OPS:
            _load_ops()
        self.cell = _Cell()
        rules = _spare_rules(self.cell)
        ops = {name: (func, (*info[:3], rules.get(name, info[3]), info[4])) for name, (func, info) in _OPS.items()}
        self.leaves: list[tuple[weakref.ref, object, object]] = []
        for path, m in named:
            kind = type(m)
            if kind is nn.Dropout:
                ref, ok = weakref.ref(m), _dropout_ok
                call = _identity(ref)
            elif kind in _BUILDERS and _float32_weights(m):
                make_args, ok = _BUILDERS[kind]
                ref = weakref.ref(m)
                call = _shortcut(self.cell, ref, path, make_args, ops)
            else:
                continue
            setattr(call, _LEAF_MARK, True)
            self.leaves.append((ref, ok, call))


class LeafShortcuts:
    """Installs recording shortcuts on the stock leaf modules of one traced model.

    Enter it inside the recorder's dispatch mode; it removes every shortcut on exit.

    Args:
        rec: the recorder.
        named: the model's ``named_modules()``.
        cache: the swap plan's cache (`edgefit.trace.tracer`), where the shortcuts
            are kept while the model's structure and weights are unchanged.
    """

    def __init__(self, rec, named: list[tuple[str, nn.Module]], cache: dict | None = None):
        self.rec = rec
        self.named = named
        self.cache = {} if cache is None else cache
        self.installed: list[nn.Module] = []
        self.cached: _Cached | None = None

    def __enter__(self):
        if not _context_is_plain():
            return self
        cached = self.cache.get("leaves")
        if cached is None:
            cached = self.cache["leaves"] = _Cached(self.named)
        cached.cell.rec = self.rec
        self.cached = cached
        installed = self.installed
        try:
            for ref, ok, call in cached.leaves:
                m = ref()
                if m is not None and _plain_module(m) and ok(m):
                    # What ``Module.__call__`` runs instead of its hook checks and ``forward``
                    # when set (``torch.compile`` sets it): the module has no hooks, checked above.
                    m.__dict__["_compiled_call_impl"] = call
                    installed.append(m)
        except BaseException:
            self.__exit__()  # ``with`` runs no exit for a failed enter: remove what was installed
            raise
        return self

    def __exit__(self, *exc):
        for m in self.installed:
            m.__dict__.pop("_compiled_call_impl", None)
        self.installed.clear()
        if self.cached is not None:
            self.cached.cell.rec = None


def _shortcut(cell: _Cell, ref: weakref.ref, path: str, make_args, ops: dict):
    """The call of one leaf: record its op from its configuration, or run the real ``forward``.

    ``ops``: op name -> (aten overload, recorder info whose rule takes a new output
    from ``cell.spare`` or runs none).
    """
    spare = _Spare()
    kind = type(ref()).__name__

    def shortcut(*args, **kwargs):
        m = ref()
        x = args[0] if len(args) == 1 and not kwargs else None
        rec = cell.rec
        op = None
        if type(x) is _Tensor and x.dtype is _F32 and x.is_meta and rec is not None:
            op = make_args(m, x)
        if op is None:
            return type(m).forward(m, *args, **kwargs)
        name, op_args, tensors = op
        func, info = ops[name]
        rec.where = path
        rec.enter(path, kind)
        rec.leaf_ops += 1
        cell.spare = spare
        out = rec.record_meta(func, info, op_args, tensors, path)
        return out[0] if type(out) is tuple else out

    return shortcut


def _dropout_ok(m: nn.Dropout) -> bool:
    p = m.p
    return not m.training and type(p) in (int, float) and 0.0 <= p <= 1.0


def _identity(ref: weakref.ref):
    """Dropout in eval: ``F.dropout`` returns its input without dispatching an op."""

    def shortcut(*args, **kwargs):
        m = ref()
        x = args[0] if len(args) == 1 and not kwargs else None
        if type(x) is not _Tensor or m.__dict__["training"]:
            return type(m).forward(m, *args, **kwargs)
        return x

    return shortcut
