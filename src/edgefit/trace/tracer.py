"""One forward pass on the meta device that records every tensor op.

The tracer swaps every parameter and buffer for a meta tensor of the same
shape, dtype and strides (the real weights are never read, copied or moved),
runs the model once under a `TorchDispatchMode`, and records per aten op:

* its input and output tensors as `TensorSpec` (shape, dtype, and whether the
  tensor is an activation, a parameter or a buffer),
* the innermost module whose forward was running (functional calls included),
* value ids, so later passes can follow data between ops and compute liveness.

Everything it changes (parameters, buffers, the training flags, two global
module hooks) is restored before it returns, even when the model raises.

Ops whose meta kernels are slow Python reference implementations (elementwise
ops, batch norm, softmax...) get their output shape from a shape rule instead;
see `edgefit.trace.shapes`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from edgefit.errors import InputShapeError, TraceError
from edgefit.trace.shapes import SHAPE_RULES

_META = torch.device("meta")


@dataclass(frozen=True, slots=True)
class TensorSpec:
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
        n = 1
        for d in self.shape:
            n *= d
        return n

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
        args: positional arguments with tensors replaced by `TensorSpec`.
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

    def __init__(self, names: dict[int, str], weights: dict[int, tuple[str, str]]):
        super().__init__()
        self.names = names  # id(module) -> path
        self.weights = weights  # storage key -> (role, name)
        self.stack: list[str] = []
        self.ops: list[OpRecord] = []
        self.values: dict[int, ValueInfo] = {}
        self.current: dict[int, int] = {}  # storage key -> current value id
        self.keep: list[torch.Tensor] = []  # keeps storages alive so keys stay unique
        self.moved: dict[int, torch.Tensor] = {}  # id(non-meta tensor) -> meta twin
        self.modules: dict[str, ModuleInfo] = {}

    # module attribution -------------------------------------------------
    def pre_hook(self, module, args):
        name = self.names.get(id(module))
        if name is None:  # a module built during forward: attribute to its caller
            name = self.stack[-1] if self.stack else ""
        info = self.modules.get(name)
        if info is None:
            info = self.modules[name] = ModuleInfo(type(module).__name__, 0, len(self.modules))
        info.calls += 1
        self.stack.append(name)

    def post_hook(self, module, args, output):
        if self.stack:
            self.stack.pop()

    # values ---------------------------------------------------------------
    def new_value(self, t: torch.Tensor, producer: int) -> int:
        key = _storage_key(t)
        vid = len(self.values)
        nbytes = t.untyped_storage().nbytes()
        itemsize = t.dtype.itemsize
        numel = nbytes // itemsize if nbytes else t.numel()
        self.values[vid] = ValueInfo(numel, nbytes or numel * itemsize, producer, producer, key)
        self.current[key] = vid
        self.keep.append(t)
        return vid

    def spec(self, t: torch.Tensor, index: int, use: bool) -> TensorSpec:
        key = _storage_key(t)
        weight = self.weights.get(key)
        if weight is not None:
            return TensorSpec(tuple(t.shape), t.dtype, weight[0], -1, weight[1])
        vid = self.current.get(key)
        if vid is None:  # a tensor made outside the trace (constant, cached mask...)
            vid = self.new_value(t, index)
        elif use:
            self.values[vid].last_use = index
        return TensorSpec(tuple(t.shape), t.dtype, "activation", vid)

    def to_meta(self, t: torch.Tensor) -> torch.Tensor:
        if t.device.type == "meta":
            return t
        twin = self.moved.get(id(t))
        if twin is None:
            twin = torch.empty_strided(t.size(), t.stride(), dtype=t.dtype, device=_META)
            self.moved[id(t)] = twin
            self.keep.append(t)
        return twin

    def _convert(self, obj):
        if isinstance(obj, torch.Tensor):
            return self.to_meta(obj)
        if isinstance(obj, (list, tuple)) and any(isinstance(o, torch.Tensor) for o in obj):
            return type(obj)(self._convert(o) for o in obj)
        if isinstance(obj, torch.device) and obj.type != "meta":
            return _META
        return obj

    def _describe(self, obj, index, inputs):
        if isinstance(obj, torch.Tensor):
            s = self.spec(obj, index, use=True)
            inputs.append(s)
            return s
        if isinstance(obj, (list, tuple)) and obj and any(isinstance(o, torch.Tensor) for o in obj):
            return type(obj)(self._describe(o, index, inputs) for o in obj)
        return obj

    # dispatch -------------------------------------------------------------
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        args = tuple(self._convert(a) for a in args)
        if kwargs:
            kwargs = {k: self._convert(v) for k, v in kwargs.items()}
        index = len(self.ops)
        schema = func._schema
        inplace = schema.is_mutable
        rule = SHAPE_RULES.get(func)
        try:
            out = rule(args, kwargs) if rule is not None else func(*args, **kwargs)
        except (RuntimeError, ValueError, TypeError, IndexError, NotImplementedError) as exc:
            raise _OpFailed(func, exc) from exc
        # Arguments are described after running so a view's base is known.
        inputs: list[TensorSpec] = []
        d_args = tuple(self._describe(a, index, inputs) for a in args)
        d_kwargs = {k: self._describe(v, index, inputs) for k, v in kwargs.items()} if kwargs else {}
        in_keys = None
        outputs: list[TensorSpec] = []
        is_view = False
        for t in _flat_tensors(out):
            key = _storage_key(t)
            if key in self.weights:
                outputs.append(TensorSpec(tuple(t.shape), t.dtype, self.weights[key][0], -1, self.weights[key][1]))
                continue
            if key in self.current:
                if in_keys is None:
                    in_keys = {_storage_key(a) for a in _flat_tensors(args)}
                if inplace and key in in_keys:
                    vid = self.new_value(t, index)
                else:  # a view (or alias) of an existing value
                    is_view = True
                    vid = self.current[key]
                outputs.append(TensorSpec(tuple(t.shape), t.dtype, "activation", vid))
            else:
                outputs.append(TensorSpec(tuple(t.shape), t.dtype, "activation", self.new_value(t, index)))
        packet = func.overloadpacket
        self.ops.append(
            OpRecord(
                index=index,
                name=packet.__name__,
                overload=str(func),
                module=self.stack[-1] if self.stack else "",
                args=d_args,
                kwargs=d_kwargs,
                inputs=tuple(inputs),
                outputs=tuple(outputs),
                inplace=inplace,
                view=is_view and not inplace,
            )
        )
        return out


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
def _meta_weights(model: nn.Module):
    """Swap parameters and buffers for meta twins; restore them afterwards.

    Yields (storage key -> (role, name), params, param_owner, buffers).
    """
    saved: list[tuple[dict, str, object]] = []
    twins: dict[int, torch.Tensor] = {}
    weights: dict[int, tuple[str, str]] = {}
    params: dict[str, tuple[int, torch.dtype]] = {}
    owner: dict[str, str] = {}
    buffers: dict[str, int] = {}
    try:
        for mod_name, module in model.named_modules(remove_duplicate=True):
            for role, table in (("param", module._parameters), ("buffer", module._buffers)):
                for attr, tensor in table.items():
                    if tensor is None:
                        continue
                    twin = twins.get(id(tensor))
                    first = twin is None
                    if first:
                        if tensor.device.type == "meta":
                            twin = tensor
                        else:
                            twin = torch.empty_strided(tensor.size(), tensor.stride(), dtype=tensor.dtype, device=_META)
                            if role == "param":
                                twin = nn.Parameter(twin, requires_grad=tensor.requires_grad)
                        twins[id(tensor)] = twin
                        full = f"{mod_name}.{attr}" if mod_name else attr
                        weights[_storage_key(twin)] = (role, full)
                        if role == "param":
                            params[full] = (tensor.numel(), tensor.dtype)
                            owner[full] = mod_name
                        else:
                            buffers[full] = tensor.numel()
                    if twin is not tensor:
                        saved.append((table, attr, tensor))
                        table[attr] = twin
        yield weights, params, owner, buffers
    finally:
        for table, attr, tensor in reversed(saved):
            table[attr] = tensor


@contextlib.contextmanager
def _eval_mode(model: nn.Module, mode: str | None):
    if mode is None:
        yield
        return
    flags = [(m, m.training) for m in model.modules()]
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
    names = {id(m): n for n, m in model.named_modules(remove_duplicate=True)}
    with _meta_weights(model) as (weights, params, owner, buffers), _eval_mode(model, mode):
        rec = _Recorder(names, weights)
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
        handles = [
            nn.modules.module.register_module_forward_pre_hook(rec.pre_hook),
            nn.modules.module.register_module_forward_hook(rec.post_hook),
        ]
        try:
            with torch.inference_mode(False), torch.no_grad(), rec:
                out = model(*meta_inputs)
        except _OpFailed as exc:
            raise _explain(exc, rec, model) from None
        except (RuntimeError, ValueError, TypeError, IndexError, AttributeError, AssertionError, KeyError, NotImplementedError) as exc:
            where = rec.stack[-1] if rec.stack else ""
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            label = f"module {where!r}" if where else type(model).__name__
            raise TraceError(f"{label} raised while tracing: {type(exc).__name__}: {msg}") from None
        finally:
            for h in handles:
                h.remove()
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
        params=params,
        param_owner=owner,
        buffers=buffers,
        inputs=input_specs,
        outputs=outputs,
        values=rec.values,
        model_name=type(model).__name__,
    )


def _flatten_output(out):
    if isinstance(out, dict):
        return list(out.values())
    if hasattr(out, "to_tuple"):  # dataclass-like model outputs
        return list(out.to_tuple())
    return out


_SHAPE_WORDS = ("shape", "size", "dimension", "dim", "mat1 and mat2", "channels", "expected input", "must match")


def _explain(exc: _OpFailed, rec: _Recorder, model: nn.Module) -> Exception:
    where = rec.stack[-1] if rec.stack else ""
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
