"""One forward pass on the meta device that records every tensor op.

The tracer swaps every parameter and buffer for a meta tensor of the same
shape, dtype and strides (the real weights are never read, copied or moved),
runs the model once under a `TorchDispatchMode`, and records per aten op:

* its input and output tensors as `TensorSpec` (shape, dtype, and whether the
  tensor is an activation, a parameter or a buffer),
* the innermost module whose forward was running (functional calls included),
* value ids, so later passes can follow data between ops and compute liveness.

Everything it changes (parameters, buffers, the training flags, the ``forward``
of repeated blocks, see `edgefit.trace.replay`) is restored before it returns,
even when the model raises.

Ops whose meta kernels are slow Python reference implementations (elementwise
ops, batch norm, softmax...) get their output shape from a shape rule instead;
see `edgefit.trace.shapes`.
"""

from __future__ import annotations

import contextlib
import gc
import math
import sys
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.weak import WeakIdKeyDictionary

from edgefit.errors import InputShapeError, TraceError
from edgefit.trace.leaves import LeafShortcuts
from edgefit.trace.replay import BlockMemo, _fake_keys
from edgefit.trace.shapes import rule_for

_META = torch.device("meta")


class TensorSpec(NamedTuple):
    """What the counters may know of a tensor: shape, dtype and role.

    Attributes:
        shape: the tensor's shape.
        dtype: the tensor's dtype.
        role: ``"activation"``, ``"param"`` or ``"buffer"``.
        value: id of the value (activations: changes on every write).
        source: parameter or buffer name for weights, else ``""``.
    """

    shape: tuple[int, ...]
    dtype: torch.dtype
    role: str
    value: int
    source: str = ""

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def itemsize(self) -> int:
        return self.dtype.itemsize


@dataclass(slots=True)
class OpRecord:
    """One aten op as run by the traced forward.

    Attributes:
        index: position in execution order.
        name: overload packet name without namespace (``"convolution"``).
        overload: full op name (``"aten.convolution.default"``).
        module: path of the innermost running module (``""`` is the root).
        args: positional arguments as run: tensors are meta tensors (formulas read
            only their ``.shape`` and ``.dtype``; a `TensorSpec` works the same).
        kwargs: keyword arguments, likewise.
        inputs: every tensor argument, flattened, in order.
        outputs: every tensor result, flattened, in order.
        inplace: the op wrote into one of its inputs.
        view: the op returned a view of an input (no new data).
    """

    index: int
    name: str
    overload: str
    module: str
    args: tuple
    kwargs: dict
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    inplace: bool = False
    view: bool = False


@dataclass(slots=True)
class ValueInfo:
    """An activation value: one write of one storage."""

    numel: int
    nbytes: int
    producer: int  # op index, -1 for model inputs
    last_use: int
    storage: int = 0  # values that share a storage (in-place writes) share memory
    is_output: bool = False


@dataclass(slots=True)
class ModuleInfo:
    kind: str
    calls: int = 0
    order: int = -1


@dataclass
class Trace:
    """Everything one traced forward pass ran.

    Attributes:
        ops: the aten ops in execution order.
        modules: module path -> kind, call count, order of first call.
        params: parameter name -> (numel, dtype); shared tensors appear once.
        param_owner: parameter name -> path of the module that holds it.
        buffers: buffer name -> numel.
        inputs: the example inputs as `TensorSpec`.
        outputs: the model outputs as `TensorSpec`.
        values: value id -> `ValueInfo` for activations.
        model_name: the model's class name.
        replayed_blocks: calls of repeated blocks whose records were copied from
            a twin's instead of being run (`edgefit.trace.replay`).
        leaf_ops: ops recorded by a stock layer's shortcut instead of being
            dispatched (`edgefit.trace.leaves`).
    """

    ops: list[OpRecord]
    modules: dict[str, ModuleInfo]
    params: dict[str, tuple[int, torch.dtype]]
    param_owner: dict[str, str]
    buffers: dict[str, int]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    values: dict[int, ValueInfo]
    model_name: str
    replayed_blocks: int = 0
    leaf_ops: int = 0
    _storage_of: dict = field(default_factory=dict, repr=False)


def _storage_key(t: torch.Tensor) -> int:
    return t.untyped_storage()._cdata


class _Recorder(TorchDispatchMode):
    """Records every aten op; see the module docstring."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # torch wraps __torch_dispatch__ in a dynamo-disable decorator whose first
        # call imports torch._dynamo (1.5 s or more). Nothing is compiled inside a
        # trace, so the wrapper is not needed.
        return False

    def __init__(
        self, names: dict[int, str], weights: dict[int, tuple[str, str]], codes: frozenset = frozenset(),
        weight_specs: dict | None = None,
    ):
        super().__init__()
        self.names = names  # id(module) -> path
        self.weights = weights  # storage key -> (role, name)
        self.weight_specs = weight_specs or {}  # id(weight twin) -> its TensorSpec
        self.codes = codes  # code objects of the model's forward methods
        self.frames: dict = {}  # running forward frame -> module path (kept alive while tracing)
        self.where = ""  # module of the op being dispatched, for error messages
        self.ops: list[OpRecord] = []
        self.values: dict[int, ValueInfo] = {}
        self.current: dict[int, int] = {}  # storage key -> current value id
        self.keep: list[torch.Tensor] = []  # keeps storages alive so keys stay unique
        self.moved: dict[int, torch.Tensor] = {}  # id(non-meta tensor) -> meta twin
        self.modules: dict[str, ModuleInfo] = {}
        self.adopted = 0  # tensors first seen as inputs (made outside the trace)
        self.call_log: list[str] = []  # module path of every forward call that ran an op
        self.leaf_ops = 0  # ops recorded by leaf shortcuts

    # module attribution -------------------------------------------------
    def owner(self, frame) -> str:
        """Path of the innermost module whose ``forward`` is running (``""``: the root).

        Found by walking the Python frames out from the op to the first frame of
        a module's ``forward``: no hooks are installed, module calls keep torch's
        fast path, and ``module.forward(x)`` called directly is attributed too.
        """
        codes, frames = self.codes, self.frames
        while frame is not None:
            if frame.f_code in codes:
                name = frames.get(frame)
                if name is not None:
                    return name
                module = frame.f_locals.get("self")
                name = self.names.get(id(module))
                if name is not None:  # else a module built during forward: its caller owns the op
                    frames[frame] = name
                    self.enter(name, type(module).__name__)
                    return name
            frame = frame.f_back
        return ""

    def enter(self, name: str, kind: str, calls: int = 1) -> None:
        """Count ``calls`` calls that run ops of module ``name``, of class ``kind``
        (one as its forward starts; a replayed block's all at once)."""
        info = self.modules.get(name)
        if info is None:
            info = self.modules[name] = ModuleInfo(kind, 0, len(self.modules))
        info.calls += calls
        if calls == 1:
            self.call_log.append(name)
        else:
            self.call_log.extend([name] * calls)

    # values ---------------------------------------------------------------
    def new_value(self, t: torch.Tensor, producer: int) -> int:
        storage = t.untyped_storage()
        key = storage._cdata
        vid = len(self.values)
        nbytes = storage.nbytes()
        itemsize = t.dtype.itemsize
        numel = nbytes // itemsize if nbytes else t.numel()
        self.values[vid] = ValueInfo(numel, nbytes or numel * itemsize, producer, producer, key)
        self.current[key] = vid
        self.keep.append(t)
        return vid

    def _unseen_value(self, u: Unseen, index: int) -> TensorSpec:
        """The value of a result no code can read: what `new_value` records for a fresh
        tensor of that shape, under a storage key no tensor has (as replay's)."""
        vid = len(self.values)
        numel = math.prod(u.shape)
        self.values[vid] = ValueInfo(numel, numel * u.dtype.itemsize, index, index, next(_fake_keys))
        return TensorSpec(u.shape, u.dtype, "activation", vid)

    def spec(self, t: torch.Tensor, index: int, use: bool) -> TensorSpec:
        known = self.weight_specs.get(id(t))
        if known is not None and known.shape == t.shape and known.dtype is t.dtype:
            return known
        key = t.untyped_storage()._cdata
        weight = self.weights.get(key)
        if weight is not None:
            return TensorSpec(t.shape, t.dtype, weight[0], -1, weight[1])
        vid = self.current.get(key)
        if vid is None:  # a tensor made outside the trace (constant, cached mask...)
            self.adopted += 1
            vid = self.new_value(t, index)
        elif use:
            self.values[vid].last_use = index
        return TensorSpec(t.shape, t.dtype, "activation", vid)

    def to_meta(self, t: torch.Tensor) -> torch.Tensor:
        twin = self.moved.get(id(t))
        if twin is None:
            twin = torch.empty_strided(t.size(), t.stride(), dtype=t.dtype, device=_META)
            self.moved[id(t)] = twin
            self.keep.append(t)
        return twin

    def _arg(self, a, index: int, inputs: list):
        """Move one argument to meta, recording a `TensorSpec` for every tensor in it."""
        kind = type(a)
        if kind in _PLAIN:
            return a
        if isinstance(a, torch.Tensor):
            if not a.is_meta:
                a = self.to_meta(a)
            inputs.append(self.spec(a, index, True))
            return a
        if (kind is list or kind is tuple) and a and (
            type(a[0]) not in _PLAIN or (a[0] is None and any(isinstance(x, torch.Tensor) for x in a))
        ):
            return kind(self._arg(x, index, inputs) for x in a)
        if kind is torch.device and a.type != "meta":
            return _META
        return a

    # dispatch -------------------------------------------------------------
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is _EMPTY and 0 in args[0]:
            # Batch norm's reserve scratch, made from nothing and holding nothing: one
            # per batch norm call, so it skips the frame walk and argument recording.
            return torch.empty(args[0], dtype=(kwargs or {}).get("dtype"), device=_META)
        info = _FUNC_INFO.get(func) or _func_info(func)
        if info[4]:
            # A view moves no data and does no work; its result shares the storage of
            # its input, so whoever reads it later is attributed, and keeps the data
            # alive, through that storage. Half the ops of a transformer are views.
            try:
                return func(*[self.to_meta(a) if isinstance(a, torch.Tensor) and not a.is_meta else a for a in args], **(kwargs or {}))
            except (RuntimeError, ValueError, TypeError, IndexError, NotImplementedError) as exc:
                self.where = self.owner(sys._getframe(1))
                raise _OpFailed(func, exc) from exc
        self.where = where = self.owner(sys._getframe(1))
        return self.record(func, args, kwargs, where, info)

    def record(self, func, args, kwargs, where: str, info: tuple):
        """Run one op as module ``where``'s and record it; returns its result.

        Called from ``__torch_dispatch__`` (dispatch modes off) with the op's
        `func_info`; a leaf module's shortcut (`edgefit.trace.leaves`) calls
        `record_meta` instead.
        """
        index = len(self.ops)
        inputs: list[TensorSpec] = []
        arg = self._arg
        run_args = [arg(a, index, inputs) for a in args]
        run_kwargs = {k: arg(v, index, inputs) for k, v in kwargs.items()} if kwargs else {}
        return self._run(func, info, where, run_args, run_kwargs, inputs, None)

    def record_meta(self, func, info: tuple, args: list, tensors: list, where: str):
        """`record` for arguments already on meta whose tensors, in order, are ``tensors``;
        ``info`` is the op's `func_info`, with a shape rule (it may return `Unseen` results).

        What `_run` records, found with fewer checks where the rule's results tell it
        all: tensors it made (new values) or, for an in-place op, its first argument
        when that is an activation (a new value of the same storage). Anything else
        goes through `_run`.
        """
        index = len(self.ops)
        spec = self.spec  # a weight's known spec first, as for any op
        inputs = [spec(t, index, True) for t in tensors]
        name, overload, inplace, rule, _ = info
        if inplace and inputs[0].role != "activation":
            return self._run(func, info, where, args, {}, inputs, tensors)
        try:
            out = rule(args, _NO_KWARGS)
        except (RuntimeError, ValueError, TypeError, IndexError, NotImplementedError) as exc:
            raise _OpFailed(func, exc) from exc
        if inplace and out is not tensors[0]:
            return self._run(func, info, where, args, {}, inputs, tensors)
        if inplace or type(out) is torch.Tensor:  # in place: its first argument, a new value
            outputs = (TensorSpec(out.shape, out.dtype, "activation", self.new_value(out, index)),)
        else:
            outputs = tuple([self._made(t, index) for t in out])
        self.ops.append(OpRecord(index, name, overload, where, tuple(args), {}, tuple(inputs), outputs, inplace, False))
        return out

    def _made(self, t, index: int) -> TensorSpec:
        """The spec of a result a shape rule made: a new value (`Unseen` ones too)."""
        if type(t) is Unseen:
            return self._unseen_value(t, index)
        return TensorSpec(t.shape, t.dtype, "activation", self.new_value(t, index))

    def _run(self, func, info: tuple, where: str, run_args: list, run_kwargs: dict, inputs: list, tensors):
        """Run the op (its shape rule if it has one), record its outputs and the `OpRecord`.

        ``tensors``: the tensor arguments when the caller knows them, else ``None``.
        """
        index = len(self.ops)
        name, overload, inplace, rule, _ = info
        try:
            out = rule(run_args, run_kwargs) if rule is not None else func(*run_args, **run_kwargs)
        except (RuntimeError, ValueError, TypeError, IndexError, NotImplementedError) as exc:
            raise _OpFailed(func, exc) from exc
        if not inputs and isinstance(out, torch.Tensor) and out.numel() == 0:
            # Made from nothing and holding nothing (batch norm's reserve scratch):
            # no data, no work. A later reader registers it on first sight.
            return out
        outputs: list[TensorSpec] = []
        is_view = False
        in_keys = None
        results = (out,) if isinstance(out, torch.Tensor) else out if isinstance(out, (tuple, list)) else ()
        weights, current = self.weights, self.current
        for t in results:
            if not isinstance(t, torch.Tensor):
                if type(t) is Unseen:
                    outputs.append(self._unseen_value(t, index))
                continue
            key = t.untyped_storage()._cdata
            weight = weights.get(key)
            if weight is not None:
                outputs.append(TensorSpec(t.shape, t.dtype, weight[0], -1, weight[1]))
                continue
            vid = current.get(key)
            if vid is None:
                vid = self.new_value(t, index)
            elif inplace:
                if in_keys is None:
                    in_keys = {a.untyped_storage()._cdata for a in (tensors or _flat_tensors(run_args))}
                if key in in_keys:
                    vid = self.new_value(t, index)
                else:
                    is_view = True
            else:  # a view (or alias) of an existing value
                is_view = True
            outputs.append(TensorSpec(t.shape, t.dtype, "activation", vid))
        self.ops.append(
            OpRecord(
                index, name, overload, where, tuple(run_args), run_kwargs,
                tuple(inputs), tuple(outputs), inplace, is_view and not inplace,
            )
        )
        return out


_FUNC_INFO: dict = {}


class Unseen(NamedTuple):
    """A result of an op that no code will ever read, returned by a shortcut's rule
    instead of a meta tensor: batch norm's saved statistics, which ``F.batch_norm``
    drops. It is recorded as a value of its own, exactly as a tensor would be."""

    shape: torch.Size
    dtype: torch.dtype


def func_info(func) -> tuple:
    """(packet name, full name, in place, shape rule, aliasing) of an aten op."""
    return _FUNC_INFO.get(func) or _func_info(func)


def _func_info(func) -> tuple:
    """(packet name, full name, in place, shape rule, aliasing) of an aten op, cached."""
    packet = func.overloadpacket.__name__
    mutable = func._schema.is_mutable
    aliasing = (func.is_view or packet in _ALIASING) and not mutable
    info = _FUNC_INFO[func] = (packet, str(func), mutable, rule_for(func), aliasing)
    return info

_EMPTY = torch.ops.aten.empty.memory_format
_NO_KWARGS: dict = {}  # the keyword arguments of a leaf shortcut's op (none; never written)
_ALIASING = frozenset({"_unsafe_view", "_reshape_alias"})
_PLAIN = frozenset({int, float, bool, str, type(None), torch.dtype, torch.memory_format, torch.layout})


class _OpFailed(Exception):
    def __init__(self, func, exc):
        super().__init__(str(exc))
        self.func = func
        self.exc = exc


def _flat_tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _flat_tensors(o)


@contextlib.contextmanager
def gc_paused():
    """Pause the cyclic garbage collector.

    A trace allocates thousands of small objects; on a first call that triggers
    full collections over everything the process holds (a ResNet-50 profile took
    89 ms instead of 32). Nothing a trace makes needs the collector to be freed
    promptly; collection resumes afterwards.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class _Plan:
    """How to swap one model's weights for meta twins, reused while the model is unchanged.

    Also keeps what the tracer derives from the model's module tree (paths, the
    code of each class's ``forward``), checked on every trace without walking
    ``named_modules()`` again. Modules are held by weak reference: the plan lives
    as long as the model (`_PLANS`) and must not keep it alive.
    """

    __slots__ = (
        "tree", "forwards", "names", "codes", "checks", "swaps", "weights", "specs", "params", "owner",
        "buffers", "cache",
    )

    def __init__(self, named):
        # per module, in named_modules() order: (path, weak ref, class, child names, child ids, weight count);
        # equal child names and ids at every module mean named_modules() would list the same tree
        self.tree = [
            (path, weakref.ref(m), type(m), tuple(m._modules), tuple(map(id, m._modules.values())),
             len(m._parameters) + len(m._buffers))
            for path, m in named
        ]
        self.names = {id(m): path for path, m in named}
        kinds = {type(m) for _, m in named}
        self.forwards = [(kind, getattr(kind, "forward", None)) for kind in kinds]
        self.codes = _forward_codes(kinds)
        # every weight: (its table, name, tensor, shape, dtype), an empty slot with Nones;
        # those not on meta: (table, name, tensor, twin)
        self.checks: list[tuple[dict, str, torch.Tensor | None, torch.Size | None, torch.dtype | None]] = []
        self.swaps: list[tuple[dict, str, torch.Tensor, torch.Tensor]] = []
        # What other parts of the tracer derive from the model's structure and weights
        # (leaf shortcuts, candidate twin blocks): valid as long as the plan is.
        self.cache: dict = {}
        self.weights: dict[int, tuple[str, str]] = {}
        self.specs: dict[int, TensorSpec] = {}  # id(twin) -> its spec, the same in every trace
        self.params: dict[str, tuple[int, torch.dtype]] = {}
        self.owner: dict[str, str] = {}
        self.buffers: dict[str, int] = {}
        twins: dict[int, torch.Tensor] = {}
        for mod_name, module in named:
            for role, table in (("param", module._parameters), ("buffer", module._buffers)):
                for attr, tensor in table.items():
                    if tensor is None:  # an empty slot (``bias=False``): checked for staying empty
                        self.checks.append((table, attr, None, None, None))
                        continue
                    twin = twins.get(id(tensor))
                    if twin is None:
                        twin = twins[id(tensor)] = _make_twin(tensor, role)
                        full = f"{mod_name}.{attr}" if mod_name else attr
                        self.weights[_storage_key(twin)] = (role, full)
                        self.specs[id(twin)] = TensorSpec(twin.shape, twin.dtype, role, -1, full)
                        if role == "param":
                            self.params[full] = (tensor.numel(), tensor.dtype)
                            self.owner[full] = mod_name
                        else:
                            self.buffers[full] = tensor.numel()
                    self.checks.append((table, attr, tensor, tensor.shape, tensor.dtype))
                    if twin is not tensor:
                        self.swaps.append((table, attr, tensor, twin))

    def named(self) -> list[tuple[str, nn.Module]] | None:
        """``named_modules()`` as it was when the plan was made, or ``None`` if it no longer is:
        a module died, changed class (``__class__`` assigned) or holds other children (names,
        objects or order) or another number of parameters and buffers, or a class's
        ``forward`` changed."""
        named = []
        for path, ref, kind, keys, ids, n_weights in self.tree:
            m = ref()
            if m is None or type(m) is not kind:
                return None
            children = m._modules
            if children:
                if tuple(children) != keys or tuple(map(id, children.values())) != ids:
                    return None
            elif keys:
                return None
            if len(m._parameters) + len(m._buffers) != n_weights:
                return None
            named.append((path, m))
        for kind, forward in self.forwards:
            if getattr(kind, "forward", None) is not forward:
                return None
        return named

    def weights_unchanged(self) -> bool:
        """The same tensors in every parameter table, with the same shapes and dtypes, and
        the empty slots still empty."""
        for table, attr, tensor, shape, dtype in self.checks:
            if table.get(attr) is not tensor:
                return False
            if tensor is not None and (tensor.dtype is not dtype or tensor.shape != shape):
                return False
        return True


def _make_twin(tensor: torch.Tensor, role: str) -> torch.Tensor:
    if tensor.is_meta:
        return tensor
    twin = torch.empty_strided(tensor.size(), tensor.stride(), dtype=tensor.dtype, device=_META)
    if role == "param":
        twin = nn.Parameter(twin, requires_grad=tensor.requires_grad)
    return twin


# Swap plans per model: building one (creating ~300 meta twins for a ResNet-50)
# costs more than checking it is still valid. Weakly keyed: a plan dies with its model.
_PLANS = WeakIdKeyDictionary()


def _plan_for(model: nn.Module) -> tuple[_Plan, list[tuple[str, nn.Module]]]:
    """The model's swap plan, made anew if the model changed, and its ``named_modules()``."""
    plan = _PLANS.get(model)
    named = plan.named() if plan is not None else None
    if named is None or named[0][1] is not model or not plan.weights_unchanged():
        named = list(model.named_modules(remove_duplicate=True))
        plan = _PLANS[model] = _Plan(named)
    return plan, named


@contextlib.contextmanager
def _meta_weights(plan: _Plan):
    """Swap parameters and buffers for their meta twins in ``plan``; restore them afterwards."""
    done = 0
    try:
        for table, attr, _, twin in plan.swaps:
            table[attr] = twin
            done += 1
        yield plan
    finally:
        for table, attr, tensor, _ in plan.swaps[:done]:
            table[attr] = tensor


@contextlib.contextmanager
def _eval_mode(model: nn.Module, mode: str | None, named: list | None = None):
    if mode is None:
        yield
        return
    modules = [m for _, m in named] if named is not None else list(model.modules())
    target = mode == "train"
    if all(m.training is target for m in modules):
        # Already in that mode (a user's model.eval()): nothing to switch or restore;
        # train() walks every module through nn.Module.__setattr__ twice otherwise.
        yield
        return
    flags = [(m, m.training) for m in modules]
    try:
        model.train(mode == "train")
        yield
    finally:
        for m, flag in flags:
            m.training = flag


def make_inputs(
    input_shape: Sequence[int] | Sequence[Sequence[int]] | None,
    input_dtype: torch.dtype | str = torch.float32,
) -> tuple[torch.Tensor, ...]:
    """Meta example inputs for one shape or a list of shapes.

    Raises:
        InputShapeError: a dimension is zero, negative or not an integer.
    """
    if input_shape is None:
        raise InputShapeError("an input shape is needed (e.g. 1,3,224,224)")
    try:
        flat = all(not isinstance(d, (list, tuple)) for d in input_shape)
    except TypeError:
        raise InputShapeError(f"input shape {input_shape!r} must be a list of integers") from None
    shapes = [input_shape] if flat else list(input_shape)
    dtype = getattr(torch, input_dtype) if isinstance(input_dtype, str) else input_dtype
    out = []
    for shape in shapes:
        shape = tuple(shape) if isinstance(shape, (list, tuple, torch.Size)) else (shape,)
        if not shape or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
            raise InputShapeError(f"input shape {shape} must be a non-empty list of integers")
        bad = [d for d in shape if d <= 0]
        if bad:
            raise InputShapeError(f"input shape {shape} has a dimension <= 0 ({bad[0]}); every dimension must be positive")
        out.append(torch.empty(shape, dtype=dtype, device=_META))
    return tuple(out)


def trace(
    model: nn.Module,
    example_inputs: Sequence | torch.Tensor | None = None,
    *,
    input_shape: Sequence[int] | Sequence[Sequence[int]] | None = None,
    input_dtype: torch.dtype | str = torch.float32,
    mode: str | None = "eval",
    reuse_blocks: bool = True,
    leaf_shortcuts: bool = True,
) -> Trace:
    """Trace one forward pass of ``model`` on the meta device.

    Args:
        model: any ``nn.Module``; on any device, meta included. It is left unchanged.
        example_inputs: a tensor or a tuple of forward arguments (tensors on any
            device; only their shapes and dtypes are used). Non-tensor arguments
            are passed through.
        input_shape: instead of ``example_inputs``: one shape, or a list of shapes.
        input_dtype: dtype of inputs built from ``input_shape`` (``torch.long``
            for token ids).
        mode: ``"eval"`` (default) or ``"train"`` to trace in that mode, restoring
            every module's flag afterwards; ``None`` keeps the model's own flags.
        reuse_blocks: record a repeated block (a transformer layer, a ResNet
            bottleneck) once and copy its records for its twins called with the
            same input shapes, instead of running each (`edgefit.trace.replay`;
            the trace is the same either way).
        leaf_shortcuts: record the op of a stock leaf layer (``Conv2d``,
            ``BatchNorm2d`` in eval, ReLU, ``Dropout`` in eval...) from its
            configuration instead of dispatching it (`edgefit.trace.leaves`;
            the trace is the same either way).

    Returns:
        The `Trace`.

    Raises:
        InputShapeError: the inputs are malformed or do not fit the model.
        TraceError: the model raised for another reason.
    """
    if not isinstance(model, nn.Module):
        raise TraceError(f"expected an nn.Module, got {type(model).__name__}")
    if example_inputs is None:
        inputs = make_inputs(input_shape, input_dtype)
    else:
        inputs = example_inputs if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    plan, named = _plan_for(model)
    with _meta_weights(plan), _eval_mode(model, mode, named):
        rec = _Recorder(plan.names, plan.weights, plan.codes, plan.specs)
        meta_inputs = []
        input_specs = []
        for x in inputs:
            if isinstance(x, torch.Tensor):
                mx = torch.empty_strided(x.size(), x.stride(), dtype=x.dtype, device=_META)
                vid = rec.new_value(mx, -1)
                input_specs.append(TensorSpec(tuple(mx.shape), mx.dtype, "activation", vid))
                meta_inputs.append(mx)
            else:
                meta_inputs.append(x)
        memo = BlockMemo(rec, named, plan.cache) if reuse_blocks else contextlib.nullcontext()
        leaves = LeafShortcuts(rec, named, plan.cache) if leaf_shortcuts else contextlib.nullcontext()
        try:
            with torch.inference_mode(False), torch.no_grad(), rec, memo, leaves:
                out = model(*meta_inputs)
        except _OpFailed as exc:
            raise _explain(exc, rec, model) from None
        except (RuntimeError, ValueError, TypeError, IndexError, AttributeError, AssertionError, KeyError, NotImplementedError) as exc:
            where = _innermost_module(exc.__traceback__, rec)
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            label = f"module {where!r}" if where else type(model).__name__
            raise TraceError(f"{label} raised while tracing: {type(exc).__name__}: {msg}") from None
        finally:
            rec.frames.clear()
    outputs = []
    for t in _flat_tensors(_flatten_output(out)):
        s = rec.spec(t, len(rec.ops), use=False)
        if s.role == "activation":
            rec.values[s.value].is_output = True
            rec.values[s.value].last_use = len(rec.ops)
        outputs.append(s)
    return Trace(
        ops=rec.ops,
        modules=rec.modules,
        params=dict(plan.params),
        param_owner=dict(plan.owner),
        buffers=dict(plan.buffers),
        inputs=input_specs,
        outputs=outputs,
        values=rec.values,
        model_name=type(model).__name__,
        replayed_blocks=getattr(memo, "replayed", 0),
        leaf_ops=rec.leaf_ops,
    )


def _flatten_output(out):
    if isinstance(out, dict):
        return list(out.values())
    if hasattr(out, "to_tuple"):  # dataclass-like model outputs
        return list(out.to_tuple())
    return out


_SHAPE_WORDS = ("shape", "size", "dimension", "dim", "mat1 and mat2", "channels", "expected input", "must match")


def _forward_codes(classes) -> frozenset:
    """Code objects of the ``forward`` methods of these module classes (unwrapped too)."""
    import inspect

    codes = set()
    for cls in classes:
        fn = getattr(cls, "forward", None)
        for f in (fn, inspect.unwrap(fn) if fn is not None else None):
            code = getattr(f, "__code__", None)
            if code is not None:
                codes.add(code)
    return frozenset(codes)


def _innermost_module(tb, rec: _Recorder) -> str:
    """The innermost model module whose forward appears in a traceback."""
    where = ""
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code in rec.codes:
            name = rec.names.get(id(frame.f_locals.get("self")))
            if name is not None:
                where = name
        tb = tb.tb_next
    return where


def _explain(exc: _OpFailed, rec: _Recorder, model: nn.Module) -> Exception:
    where = rec.where
    label = f"module {where!r}" if where else type(model).__name__
    if where in rec.modules:
        label += f" ({rec.modules[where].kind})"
    msg = str(exc.exc).strip().splitlines()[0] if str(exc.exc).strip() else type(exc.exc).__name__
    op = exc.func.overloadpacket.__name__
    if "meta" in msg.lower() and ("item" in msg.lower() or "data-dependent" in msg.lower() or "data" in msg.lower()):
        return TraceError(
            f"{label} needs tensor values at op {op!r} ({msg}); edgefit traces without data, "
            "so data-dependent control flow cannot be profiled"
        )
    if any(w in msg.lower() for w in _SHAPE_WORDS):
        return InputShapeError(f"the input does not fit the model: {label} failed at {op!r}: {msg}")
    return TraceError(f"{label} raised while tracing at op {op!r}: {msg}")
