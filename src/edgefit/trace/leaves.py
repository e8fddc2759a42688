"""Leaf shortcuts: record a stock layer's op from its configuration, without dispatching it.

A CNN is mostly ``nn.Conv2d``, ``nn.BatchNorm2d`` and activations, one aten op
each. Dispatching that op through torch's Python dispatch mode costs more than
everything the tracer does with it: ``F.batch_norm``'s argument checks, the C++
dispatcher, the mode's trampoline, the walk up the Python frames to find the
module. For these stock layers the op and its arguments follow from the layer's
configuration, so `LeafShortcuts` gives each one a ``forward`` that hands the
recorder exactly the op and arguments torch would have dispatched (same aten
overload, same argument list, same shape rule), as that module's op. The `Trace`
is the one a full dispatch gives, op for op; ``tests/trace/test_leaves.py``
checks it for every zoo model and for models written as torchvision writes them.

Shortcuts, each exactly what the module's ``forward`` dispatches:

* ``nn.Conv2d`` (numeric padding, ``padding_mode="zeros"``): ``aten.convolution``.
* ``nn.BatchNorm2d`` in eval with running statistics: ``aten.native_batch_norm``.
* ``nn.ReLU``, ``nn.ReLU6``, ``nn.Hardtanh``: ``aten.relu(_)``, ``aten.hardtanh(_)``.
* ``nn.Dropout`` in eval: nothing (its forward returns its input, no op).

Anything unusual runs the module's own ``forward`` instead: a subclass (its
``forward`` may differ), any forward or pre-hook (global ones included), an
instance ``forward``, a compiled module, another dispatch or function mode
active, autocast on, a module in training mode (batch norm and dropout), a
weight that is not float32; and per call: keyword or extra arguments, an input
that is not a plain float32 contiguous tensor (channels_last is refused), or
not 4-D for convolution and batch norm.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules import module as _module_mod
from torch.utils.weak import WeakIdKeyDictionary

from edgefit.trace.replay import _HOOKS, _ReplayForward

_F32 = torch.float32
_Tensor = torch.Tensor
_GLOBAL_HOOKS = (
    "_global_forward_hooks",
    "_global_forward_pre_hooks",
    "_global_backward_hooks",
    "_global_backward_pre_hooks",
    "_global_forward_hooks_always_called",
)


def _float32_weights(m: nn.Module) -> bool:
    """Parameters and floating buffers (not batch norm's integer step count) are float32."""
    tensors = (*m._parameters.values(), *(b for n, b in m._buffers.items() if n != "num_batches_tracked"))
    return all(t is None or t.dtype is _F32 for t in tensors)


def _conv(m: nn.Conv2d):
    """``F.conv2d`` -> ``aten.convolution`` with lists, ``transposed=False``, ``output_padding=[0, 0]``."""
    conv = torch.ops.aten.convolution.default

    def args(x):
        if x.dim() != 4 or not x.is_contiguous():
            return None
        params, state = m._parameters, m.__dict__
        w, b = params["weight"], params.get("bias")
        args = [x, w, b, list(state["stride"]), list(state["padding"]), list(state["dilation"]), False, [0, 0], state["groups"]]
        return conv, args, [x, w] if b is None else [x, w, b]

    return args


def _conv_ok(m: nn.Conv2d) -> bool:
    return not isinstance(m.padding, str) and m.padding_mode == "zeros" and not m.transposed


def _batch_norm(m: nn.BatchNorm2d):
    """Eval with running statistics: ``F.batch_norm`` -> ``aten.native_batch_norm(..., False, momentum, eps)``."""
    bn = torch.ops.aten.native_batch_norm.default

    def args(x):
        state = m.__dict__
        if x.dim() != 4 or not x.is_contiguous() or state["training"]:
            return None
        params, buffers = m._parameters, m._buffers
        mean, var = buffers.get("running_mean"), buffers.get("running_var")
        if mean is None or var is None:
            return None
        momentum = state["momentum"]
        w, b = params.get("weight"), params.get("bias")
        args = [x, w, b, mean, var, False, 0.0 if momentum is None else momentum, state["eps"]]
        return bn, args, [t for t in args[:5] if t is not None]

    return args


def _relu(m: nn.ReLU):
    relu, relu_ = torch.ops.aten.relu.default, torch.ops.aten.relu_.default

    def args(x):
        return (relu_ if m.__dict__["inplace"] else relu), [x], [x]

    return args


def _hardtanh(m: nn.Hardtanh):
    ht, ht_ = torch.ops.aten.hardtanh.default, torch.ops.aten.hardtanh_.default

    def args(x):
        state = m.__dict__
        return (ht_ if state["inplace"] else ht), [x, state["min_val"], state["max_val"]], [x]

    return args


def _hardtanh_ok(m: nn.Hardtanh) -> bool:
    state = m.__dict__
    return type(state.get("min_val")) in (int, float) and type(state.get("max_val")) in (int, float)


def _always(m: nn.Module) -> bool:
    return True


# exact class -> (builder of the shortcut's argument maker, check run before each trace)
_BUILDERS = {
    nn.Conv2d: (_conv, _conv_ok),
    nn.BatchNorm2d: (_batch_norm, _always),
    nn.ReLU: (_relu, _always),
    nn.ReLU6: (_hardtanh, _hardtanh_ok),
    nn.Hardtanh: (_hardtanh, _hardtanh_ok),
}


_STOCK_FORWARDS = {kind: kind.forward for kind in (*_BUILDERS, nn.Dropout)}


def _plain_module(m: nn.Module) -> bool:
    """No hooks, no instance ``forward``, not compiled: its call runs the class's ``forward``."""
    state = m.__dict__
    return (
        "forward" not in state
        and state.get("_compiled_call_impl") is None
        and not any(state.get(h) for h in _HOOKS)
    )


def _context_is_plain() -> bool:
    """Only the tracer's dispatch mode, no function mode, no autocast, no global hook, and
    the stock classes' own ``forward`` (not patched since import)."""
    if any(kind.forward is not forward for kind, forward in _STOCK_FORWARDS.items()):
        return False
    if torch._C._len_torch_dispatch_stack() != 1 or torch._C._len_torch_function_stack() != 0:
        return False
    if any(torch.is_autocast_enabled(d) for d in ("cpu", "cuda")):
        return False
    return not any(getattr(_module_mod, h, None) for h in _GLOBAL_HOOKS)


class _Cell:
    """The recorder of the running trace, read by the cached shortcuts."""

    __slots__ = ("rec",)

    def __init__(self):
        self.rec = None


class _Cached:
    """A model's shortcuts, built once and installed for every trace while the model is unchanged."""

    __slots__ = ("key", "cell", "leaves")

    def __init__(self, key: list, named: list[tuple[str, nn.Module]]):
        self.key = key
        self.cell = _Cell()
        self.leaves: list[tuple[nn.Module, object, _ReplayForward]] = []
        for path, m in named:
            kind = type(m)
            if kind is nn.Dropout:
                self.leaves.append((m, _dropout_ok, _ReplayForward(_identity(m))))
            elif kind in _BUILDERS:
                build, ok = _BUILDERS[kind]
                self.leaves.append((m, ok, _ReplayForward(_shortcut(self.cell, m, path, build(m)))))

    def holds(self, model: nn.Module) -> bool:
        return any(m is model for m, _, _ in self.leaves)


# Shortcuts per model, weakly keyed: building them costs more than installing them.
_CACHE = WeakIdKeyDictionary()


class LeafShortcuts:
    """Installs recording ``forward`` shortcuts on the stock leaf modules of one traced model.

    Enter it inside the recorder's dispatch mode; it restores every ``forward`` on exit.
    """

    def __init__(self, rec, model: nn.Module, named: list[tuple[str, nn.Module]]):
        self.rec = rec
        self.model = model
        self.named = named
        self.installed: list[nn.Module] = []
        self.cached: _Cached | None = None

    def __enter__(self):
        if not _context_is_plain():
            return self
        key = [(path, id(m)) for path, m in self.named]
        cached = _CACHE.get(self.model)
        if cached is None or cached.key != key:
            cached = _Cached(key, self.named)
            if not cached.holds(self.model):  # else the cache would keep the model alive
                _CACHE[self.model] = cached
        cached.cell.rec = self.rec
        self.cached = cached
        installed = self.installed
        for m, ok, forward in cached.leaves:
            if _plain_module(m) and ok(m) and _float32_weights(m):
                m.__dict__["forward"] = forward
                installed.append(m)
        return self

    def __exit__(self, *exc):
        for m in self.installed:
            m.__dict__.pop("forward", None)
        self.installed.clear()
        if self.cached is not None:
            self.cached.cell.rec = None


def _shortcut(cell: _Cell, m: nn.Module, path: str, make_args):
    """The ``forward`` of one leaf: record its op from its configuration, or run the real one."""
    forward = type(m).forward.__get__(m)
    guard = torch._C._DisableTorchDispatch

    def shortcut(*args, **kwargs):
        x = args[0] if len(args) == 1 and not kwargs else None
        rec = cell.rec
        if type(x) is not _Tensor or x.dtype is not _F32 or not x.is_meta or rec is None:
            return forward(*args, **kwargs)
        op = make_args(x)
        if op is None:
            return forward(*args, **kwargs)
        rec.where = path
        rec.enter(path, m)
        rec.leaf_ops += 1
        with guard():
            out = rec.record_meta(op[0], op[1], op[2], path)
        return out[0] if type(out) is tuple else out

    return shortcut


def _dropout_ok(m: nn.Dropout) -> bool:
    return not m.training and 0.0 <= m.p <= 1.0


def _identity(m: nn.Module):
    """Dropout in eval: ``F.dropout`` returns its input without dispatching an op."""
    forward = type(m).forward.__get__(m)

    def shortcut(*args, **kwargs):
        x = args[0] if len(args) == 1 and not kwargs else None
        if type(x) is not _Tensor or m.__dict__["training"]:
            return forward(*args, **kwargs)
        return x

    return shortcut
