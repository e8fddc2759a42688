"""Replay of repeated blocks: trace a block once, copy its records for its twins.

A transformer runs the same layer dozens of times on the same input shapes
(LLaMA-7B: 32 decoder layers), and a deep ResNet stage repeats one bottleneck
(ResNet-101: 22 times). Each call dispatches the same aten ops on the same
shapes; only module names, weight names and value ids differ. `BlockMemo`
records the first call of each kind and, for every later call with the same
key, appends a copy of those records with names and ids remapped, without
running the block. The `Trace` is the one a full run would have produced, op
for op (``tests/trace/test_replay.py`` checks every zoo model both ways).

Twins: at least six modules with children, of one class, whose subtrees have
the same structure, the same parameter and buffer shapes, strides and dtypes and
the same plain attributes (numbers, strings and tuples by value, any other
object by identity), no forward hooks, no instance ``forward`` and no weight
shared with another module. A call is replayed when its arguments match the
recorded call's: tensor shapes, strides, dtypes and aliasing, weights by name,
every other argument a plain value, equal. A recording is used only if the
block read nothing but its arguments and weights, wrote into none of its
arguments, made no tensor outside the trace, attributed every op to its own
subtree and changed none of its attributes; otherwise every call runs.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.modules import module as _module_mod
from torch.utils._python_dispatch import _disable_current_modes

_META = torch.device("meta")
_PLAIN = (int, float, bool, str, type(None), torch.dtype, torch.device, torch.memory_format, torch.layout)
_HOOKS = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_backward_hooks",
    "_backward_pre_hooks",
)
# Module-wide hooks (``register_module_forward_hook``...), which a replayed block or a
# leaf shortcut would not run: replay checks the forward ones, leaves all of them.
_GLOBAL_HOOKS = (
    "_global_forward_hooks",
    "_global_forward_pre_hooks",
    "_global_backward_hooks",
    "_global_backward_pre_hooks",
    "_global_forward_hooks_always_called",
)
_INTERNAL = frozenset(
    {
        "_parameters", "_buffers", "_modules", "training", "_non_persistent_buffers_set",
        "_state_dict_hooks", "_state_dict_pre_hooks", "_load_state_dict_pre_hooks",
        "_load_state_dict_post_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
        "_forward_pre_hooks_with_kwargs", "_is_full_backward_hook", "forward", "_compiled_call_impl", *_HOOKS,
    }
)
_PLAIN_TYPES = frozenset(_PLAIN)
_MODULE_CALL = nn.Module.__call__
# Fewer twins than this are traced normally: finding twins and checking a recording
# cost about what they save on a few small blocks (a ResNet stage), while a transformer's
# dozens of layers replay many times over.
_MIN_TWINS = 6
_MAX_ATTEMPTS = 2  # recordings tried per key before the block always runs
_fake_keys = itertools.count(-1, -1)  # storage keys of replayed values that hold no tensor


class _NotPlain(Exception):
    pass


# Set on the call a leaf shortcut (`edgefit.trace.leaves`) installs as a module's
# ``_compiled_call_impl``: that module is still plain to `_signature`.
_LEAF_MARK = "_edgefit_leaf_call"


class _ReplayForward:
    """The ``forward`` a `BlockMemo` installs (told apart from a user's own)."""

    __slots__ = ("call",)

    def __init__(self, call):
        self.call = call

    def __call__(self, *args, **kwargs):
        return self.call(*args, **kwargs)


def _any_global_hook(names: tuple = _GLOBAL_HOOKS) -> bool:
    """Whether any of these module-wide hooks is registered."""
    return any(getattr(_module_mod, h, None) for h in names)


def _value_sig(v):
    kind = type(v)
    if kind in _PLAIN_TYPES:
        return v
    if kind is tuple or kind is list:
        return (kind, tuple(map(_value_sig, v)))
    return ("id", id(v))


def _shallow_key(m: nn.Module, depth: int = 2) -> tuple:
    """A cheap first sort: class, parameter shapes, and the same of children ``depth`` deep."""
    shapes = [t.shape for t in m._parameters.values() if t is not None]
    if depth == 0:
        return (type(m), *shapes)
    return (type(m), *shapes, *[(name, _shallow_key(c, depth - 1)) for name, c in m._modules.items() if c is not None])


def _signature(m: nn.Module, memo: dict) -> tuple | None:
    """Structure of ``m``'s subtree; ``None`` when it must never be replayed.

    Plain attributes are taken in the order they were set, so two twins built by
    the same code compare equal (a different order only costs a replay).
    """
    key = id(m)
    if key in memo:
        return memo[key]
    state = m.__dict__
    memo[key] = None
    forward = state.get("forward")
    compiled = state.get("_compiled_call_impl")
    if (
        (forward is not None and type(forward) is not _ReplayForward)
        or (compiled is not None and not getattr(compiled, _LEAF_MARK, False))
        or type(m).__call__ is not _MODULE_CALL
        or any(state.get(h) for h in _HOOKS)
    ):
        return None
    plain = tuple(
        [(k, v if type(v) in _PLAIN_TYPES else _value_sig(v)) for k, v in state.items() if k not in _INTERNAL]
    )
    tensors = tuple(
        [
            (name, t.shape, t.stride(), t.dtype, t.requires_grad)
            for table in (m._parameters, m._buffers)
            for name, t in table.items()
            if t is not None
        ]
    )
    children = []
    for name, child in m._modules.items():
        child_sig = None if child is None else _signature(child, memo)
        if child is not None and child_sig is None:
            return None
        children.append((name, child_sig))
    sig = memo[key] = (type(m), m.training, plain, tensors, tuple(children))
    return sig


def _candidates(named: list[tuple[str, nn.Module]]) -> list:
    """Modules with children sorted by `_shallow_key`: the buckets that could hold twins,
    as positions in ``named`` (the cache must not keep the model alive).

    Depends only on the model's structure and weight shapes, so the tracer keeps it
    while its swap plan is valid (the same modules at the same positions); a stale
    bucket could only cost a replay, since every member's full `_signature` is
    checked on each trace.
    """
    buckets: dict = {}
    for i, (path, m) in enumerate(named):
        if path and m._modules:
            buckets.setdefault(_shallow_key(m), []).append(i)
    return [bucket for bucket in buckets.values() if len(bucket) >= _MIN_TWINS]


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + ".")


def _rename(path: str, old: str, new: str) -> str:
    return new + path[len(old):]


@dataclass(slots=True)
class _Entry:
    """One recorded call, checked on its first replay, then copied for each twin call."""

    prefix: str
    module: nn.Module
    gid: int
    attempts: int = 0
    recorded: bool = False  # a clean recording waits to be checked
    ok: bool = False  # checked: every twin call replays it
    first_op: int = 0
    end_op: int = 0
    first_vid: int = 0
    end_vid: int = 0
    log: tuple = (0, 0)  # slice of the recorder's call log
    arg_vids: list | None = None  # value id of each activation argument, in order
    arg_storages: frozenset = frozenset()
    storages: list | None = None  # (recorded storage key, nelem, dtype) of outputs' storages
    out_tensors: list | None = None  # (slot, size, stride, offset) per new output tensor
    out_vids: list | None = None  # value id held by each output storage
    out_tree: object = None
    # filled by the check:
    ops: list | None = None
    values: list | None = None  # (numel, nbytes, producer, last_use, storage) of new values
    arg_last_read: list | None = None  # last op index reading each argument, or -1
    modules: list | None = None  # (path, kind, calls)


class BlockMemo:
    """Installs replaying ``forward`` wrappers on twin modules of one traced model."""

    def __init__(self, rec, named: list[tuple[str, nn.Module]], cache: dict | None = None):
        self.rec = rec
        self.active = False
        self.entries: dict = {}
        self.installed: list[nn.Module] = []
        self.replayed = 0
        self.groups: list = []
        if _any_global_hook(_GLOBAL_HOOKS[:2]):
            return
        candidates = None if cache is None else cache.get("twin_candidates")
        if candidates is None:
            candidates = _candidates(named)
            if cache is not None:
                cache["twin_candidates"] = candidates
        sigs: dict = {}
        groups: dict = {}
        for bucket in candidates:  # each holds at least _MIN_TWINS modules
            for path, m in (named[i] for i in bucket):
                sig = _signature(m, sigs)
                if sig is not None:
                    groups.setdefault(sig, []).append((path, m))
        self.groups = [(sig, g) for sig, g in groups.items() if len(g) >= _MIN_TWINS]

    def __enter__(self):
        names = {key: name for key, (_, name) in self.rec.weights.items()} if self.groups else {}
        for gid, (_, group) in enumerate(self.groups):
            for path, m in group:
                if _owns_weights(names, path, m):
                    m.__dict__["forward"] = _ReplayForward(self._wrapper(m, path, gid))
                    self.installed.append(m)
        return self

    def __exit__(self, *exc):
        for m in self.installed:
            m.__dict__.pop("forward", None)
        self.installed.clear()

    # calls ---------------------------------------------------------------------
    def _wrapper(self, m: nn.Module, path: str, gid: int):
        forward = type(m).forward.__get__(m)

        def forward_or_replay(*args, **kwargs):
            if self.active:
                return forward(*args, **kwargs)
            key = self._key(gid, args, kwargs)
            if key is None:
                return forward(*args, **kwargs)
            entry = self.entries.get(key)
            if entry is not None and entry.recorded and not entry.ok:
                entry.recorded = entry.ok = self._check(entry)
            if entry is not None and entry.ok:
                self.replayed += 1
                return self._replay(entry, path, args, kwargs)
            if entry is not None and entry.attempts >= _MAX_ATTEMPTS:
                return forward(*args, **kwargs)
            if entry is None:
                entry = self.entries[key] = _Entry(path, m, gid)
            return self._record(entry, m, path, forward, args, kwargs)

        return forward_or_replay

    def _key(self, gid: int, args, kwargs):
        """What must be equal for a replay: shapes, aliasing, weight names, plain values."""
        rec = self.rec
        classes: dict[int, int] = {}
        parts: list = [gid]

        def walk(a):
            if isinstance(a, torch.Tensor):
                if a.device != _META:
                    raise _NotPlain
                skey = a.untyped_storage()._cdata
                weight = rec.weights.get(skey)
                if weight is not None:
                    tag = ("w", weight[1])
                elif skey in rec.current:
                    tag = ("a", classes.setdefault(skey, len(classes)))
                else:
                    raise _NotPlain
                parts.append((tag, tuple(a.shape), a.stride(), a.storage_offset(), a.dtype))
            elif isinstance(a, (tuple, list)):
                parts.append((type(a), len(a)))
                for x in a:
                    walk(x)
            elif isinstance(a, _PLAIN):
                parts.append(a)
            else:
                raise _NotPlain

        try:
            walk(args)
            walk(tuple(sorted(kwargs.items())))
        except (_NotPlain, TypeError):
            return None
        return tuple(parts)

    # record and check -----------------------------------------------------------
    def _record(self, entry: _Entry, m, path, forward, args, kwargs):
        """Run the block normally, noting where its records start and end."""
        rec = self.rec
        entry.attempts += 1
        entry.prefix, entry.module, entry.recorded, entry.ok = path, m, False, False
        first_op, first_vid, adopted, log0 = len(rec.ops), len(rec.values), rec.adopted, len(rec.call_log)
        arg_tensors = [t for t in _flat(args, kwargs) if t.untyped_storage()._cdata not in rec.weights]
        self.active = True
        try:
            out = forward(*args, **kwargs)
        finally:
            self.active = False
        if rec.adopted != adopted:
            return out
        layout = _OutputLayout(rec, arg_tensors, first_vid)
        tree = layout.tree(out)
        if tree is None:
            return out
        entry.first_op, entry.end_op, entry.first_vid, entry.end_vid = first_op, len(rec.ops), first_vid, len(rec.values)
        entry.log = (log0, len(rec.call_log))
        entry.arg_vids = [rec.current[t.untyped_storage()._cdata] for t in arg_tensors]
        entry.arg_storages = frozenset(t.untyped_storage()._cdata for t in arg_tensors)
        entry.storages, entry.out_tensors, entry.out_vids, entry.out_tree = (
            layout.storages, layout.tensors, layout.vids, tree,
        )
        entry.recorded = True
        return out

    def _check(self, entry: _Entry) -> bool:
        """Whether the recorded call depends on nothing a twin call could change; snapshot it."""
        rec, path = self.rec, entry.prefix
        if _signature(entry.module, {}) != self.groups[entry.gid][0]:
            return False  # the forward changed an attribute
        ops = rec.ops[entry.first_op:entry.end_op]
        first_vid, in_vids = entry.first_vid, set(entry.arg_vids)
        last = {v: rec.values[v].producer for v in range(first_vid, entry.end_vid)}
        for op in ops:
            if not _under(op.module, path):
                return False
            for s in op.inputs:
                if s.role != "activation":
                    continue
                if s.value < first_vid and s.value not in in_vids:
                    return False
                last[s.value] = op.index
        values = [rec.values[v] for v in range(first_vid, entry.end_vid)]
        if any(v.storage in entry.arg_storages or v.producer < entry.first_op for v in values):
            return False
        calls: dict[str, int] = {}
        for name in rec.call_log[entry.log[0]:entry.log[1]]:
            calls[name] = calls.get(name, 0) + 1
        if not all(_under(name, path) for name in calls):
            return False
        entry.ops = ops
        entry.values = [(v.numel, v.nbytes, v.producer, last[first_vid + i], v.storage) for i, v in enumerate(values)]
        entry.arg_last_read = [last.get(v, -1) if last.get(v, -1) >= entry.first_op else -1 for v in entry.arg_vids]
        entry.modules = [(name, rec.modules[name].kind, n) for name, n in calls.items()]
        return True

    # replay -----------------------------------------------------------------
    def _replay(self, entry: _Entry, path: str, args, kwargs):
        """Append the recorded call's ops, values and module calls, renamed for ``path``."""
        rec = self.rec
        shift = len(rec.ops) - entry.first_op
        base = len(rec.values)
        arg_tensors = [t for t in _flat(args, kwargs) if t.untyped_storage()._cdata not in rec.weights]
        vid_map = {
            old: rec.current[t.untyped_storage()._cdata] for old, t in zip(entry.arg_vids, arg_tensors, strict=True)
        }
        with _disable_current_modes():
            bases = [torch.empty((n,), dtype=dt, device=_META) for _, n, dt in entry.storages]
        _replay_values(rec, entry, bases, vid_map, shift)
        _replay_ops(rec, entry, path, vid_map, shift, base)
        with _disable_current_modes():
            outs = [bases[slot].as_strided(size, stride, offset) for slot, size, stride, offset in entry.out_tensors]
        for b, vid in zip(bases, entry.out_vids, strict=True):
            rec.current[b.untyped_storage()._cdata] = vid - entry.first_vid + base
            rec.keep.append(b)
        return _build(entry.out_tree, arg_tensors, outs)


def _replay_values(rec, entry: _Entry, bases: list, vid_map: dict, shift: int) -> None:
    """New values for the ones the block made; the arguments' last reads moved on."""
    from edgefit.trace.tracer import ValueInfo

    smap = {key: b.untyped_storage()._cdata for (key, _, _), b in zip(entry.storages, bases, strict=True)}
    for numel, nbytes, producer, last_use, storage in entry.values:
        new_key = smap.get(storage)
        if new_key is None:  # a storage that dies inside the block: no tensor needed
            new_key = smap[storage] = next(_fake_keys)
        rec.values[len(rec.values)] = ValueInfo(numel, nbytes, producer + shift, last_use + shift, new_key)
    for old, last in zip(entry.arg_vids, entry.arg_last_read, strict=True):
        if last >= 0:
            info = rec.values[vid_map[old]]
            info.last_use = max(info.last_use, last + shift)


def _replay_ops(rec, entry: _Entry, path: str, vid_map: dict, shift: int, base: int) -> None:
    """The recorded ops with module names, weight names and value ids remapped."""
    from edgefit.trace.tracer import OpRecord, TensorSpec

    old, first_vid = entry.prefix, entry.first_vid

    def spec(s):
        if s.role == "activation":
            v = s.value
            return TensorSpec(s.shape, s.dtype, s.role, v - first_vid + base if v >= first_vid else vid_map[v])
        if _under(s.source, old):
            return TensorSpec(s.shape, s.dtype, s.role, -1, _rename(s.source, old, path))
        return s  # a weight passed in from outside the block: the same one

    for op in entry.ops:
        rec.ops.append(
            OpRecord(
                op.index + shift, op.name, op.overload, _rename(op.module, old, path), op.args, op.kwargs,
                tuple(map(spec, op.inputs)), tuple(map(spec, op.outputs)), op.inplace, op.view,
            )
        )
    for name, kind, calls in entry.modules:
        rec.enter(_rename(name, old, path), kind, calls)


class _OutputLayout:
    """How a block's outputs relate to its arguments and to the values it made."""

    def __init__(self, rec, arg_tensors, first_vid):
        self.rec, self.args, self.first_vid = rec, arg_tensors, first_vid
        self.storages: list = []
        self.tensors: list = []
        self.vids: list = []
        self.slots: dict[int, int] = {}

    def tree(self, out):
        try:
            return self._leaf(out)
        except _NotPlain:
            return None

    def _leaf(self, out):
        if isinstance(out, torch.Tensor):
            return self._tensor(out)
        if isinstance(out, (tuple, list)) and type(out) in (tuple, list):
            return (type(out), [self._leaf(x) for x in out])
        if isinstance(out, _PLAIN):
            return ("const", out)
        raise _NotPlain

    def _tensor(self, t: torch.Tensor):
        for i, a in enumerate(self.args):
            if t is a:
                return ("arg", i)
        key = t.untyped_storage()._cdata
        vid = self.rec.current.get(key)
        if t.device != _META or vid is None or vid < self.first_vid or key in self.rec.weights:
            raise _NotPlain
        slot = self.slots.get(key)
        if slot is None:
            nbytes = t.untyped_storage().nbytes()
            if nbytes % t.dtype.itemsize:
                raise _NotPlain
            slot = self.slots[key] = len(self.storages)
            self.storages.append((key, nbytes // t.dtype.itemsize, t.dtype))
            self.vids.append(vid)
        elif self.storages[slot][2] != t.dtype:
            raise _NotPlain
        self.tensors.append((slot, tuple(t.shape), t.stride(), t.storage_offset()))
        return ("new", len(self.tensors) - 1)


def _build(tree, args, outs):
    kind, payload = tree
    if kind == "arg":
        return args[payload]
    if kind == "new":
        return outs[payload]
    if kind == "const":
        return payload
    return kind(_build(x, args, outs) for x in payload)


def _flat(args, kwargs):
    out: list[torch.Tensor] = []

    def walk(a):
        if isinstance(a, torch.Tensor):
            out.append(a)
        elif isinstance(a, (tuple, list)):
            for x in a:
                walk(x)

    walk(args)
    walk(tuple(v for _, v in sorted(kwargs.items())))
    return out


def _owns_weights(names: dict, path: str, m: nn.Module) -> bool:
    """Every weight of the subtree is named under ``path`` (none is shared from elsewhere)."""
    for rel, t in itertools.chain(m.named_parameters(remove_duplicate=False), m.named_buffers(remove_duplicate=False)):
        if names.get(t.untyped_storage()._cdata) != f"{path}.{rel}":
            return False
    return True
