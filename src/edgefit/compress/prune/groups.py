"""Channel dependency groups: which channels must be removed together.

Built from edgefit's tracer (every aten op with its tensors and owning module,
functional calls included). Each tensor element gets the id of the channel
*node* it belongs to; ops propagate the ids:

* a convolution or Linear creates one new node per output channel / feature;
* batch norm, activations, pooling, dropout, copies keep their input's nodes;
* ``add``/``mul``/... tie the nodes of their operands element by element
  (residual adds tie every branch's output channels, an SE gate ties its scale);
* ``cat`` concatenates node ranges (DenseNet, GoogLeNet, SqueezeNet);
* views are replayed exactly on the tensor's storage, so ``flatten -> Linear``
  maps channel ``c`` to the features ``c*HW .. (c+1)*HW - 1``;
* a depthwise convolution ties output channel ``o`` to input channel ``o // m``;
  a grouped convolution keeps an equal number of channels per group;
* a channel shuffle (one producer's ``g*n`` channels viewed as ``(g, n)`` and
  transposed, recognised from the replayed ids) ties each *row* ``j`` (channel ``j``
  of every block) into one component, a coupled set of ``g`` channels: only whole
  rows keep the shuffle a shuffle. A set that straddles two blocks of a later grouped
  conv is kept whole (with as few single-block sets as balance the blocks); the
  other sets prune an equal number per block, so every grouped conv keeps its group
  count (ShuffleNet v1's bottlenecks).

* a multi-head attention with separate ``q_proj``/``k_proj``/``v_proj``/``out_proj``
  Linears (`edgefit.compress.prune.heads`) is one group of heads named after the
  module: q/k/v consume the input's channels, ``out_proj`` makes new ones, and
  the ops between them stay inside a head.

Tied nodes form a *component*: one channel of every coupled layer. Components
with the same set of member layers form a `ChannelGroup` (e.g. the 256
channels of a ResNet stage's residual stream). A group is *frozen* (named in
`ChannelGroups.unprunable` with the reason, never skipped silently) when any of
its channels reaches the model input or output, an op edgefit does not model,
a slice of the channel dim (``chunk``/``split``), a reshape that permutes
channels other than a shuffle, a functional conv/linear whose weight does not
belong to an ``nn.Conv*``/``nn.Linear``, or a grouped conv shared by several groups.

API (stable):

>>> import torch
>>> from edgefit.zoo import create
>>> from edgefit.compress.prune.groups import channel_groups
>>> from edgefit.compress.prune.channel import prune_groups_
>>> m = create("lenet5_digits")
>>> groups = channel_groups(m, torch.zeros(1, 1, 8, 8))
>>> [(g.name, g.width) for g in groups.values()]
[('features.0', 20), ('features.3', 50), ('classifier.0', 500)]
>>> groups["features.3"].layers
('features.3', 'classifier.0')
>>> kept = prune_groups_(m, {"features.3": [0, 1, 2, 3]}, groups=groups)
>>> m.features[3].out_channels, m.classifier[0].in_features
(4, 16)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from edgefit.compress.prune.heads import MHA_REASON, head_layouts, multihead_modules
from edgefit.errors import ConfigError, TraceError

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_BNS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)

_UNARY = frozenset({
    "relu", "relu_", "relu6", "hardtanh", "hardtanh_", "sigmoid", "sigmoid_", "silu", "silu_", "gelu",
    "tanh", "tanh_", "hardswish", "hardswish_", "hardsigmoid", "hardsigmoid_", "leaky_relu", "leaky_relu_",
    "elu", "elu_", "clone", "_to_copy", "contiguous", "detach", "alias", "lift_fresh", "clamp", "clamp_",
    "clamp_min", "clamp_min_", "clamp_max", "abs", "neg", "exp", "sqrt", "rsqrt", "dropout", "native_dropout",
    "copy", "mish", "softplus", "gelu_",
})
_BINARY = frozenset({
    "add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_", "maximum", "minimum", "where", "addcmul",
    "copy_", "rsub",
})
_CHANNELWISE = frozenset({
    "max_pool1d", "max_pool2d", "max_pool3d", "max_pool2d_with_indices", "max_pool3d_with_indices",
    "avg_pool1d", "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
    "_adaptive_avg_pool2d", "adaptive_avg_pool3d", "_adaptive_avg_pool3d", "adaptive_max_pool2d",
    "upsample_nearest2d", "upsample_bilinear2d", "mean", "sum", "amax", "_log_softmax_backward_data",
})
_BN_OPS = frozenset({"native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training"})
_LINEAR_OPS = frozenset({"addmm", "mm"})


@dataclass(frozen=True)
class ChannelGroup:
    """Channels that are removed together.

    Attributes:
        name: the first layer that produces these channels (``"layer1.0.conv1"``).
        width: number of channels (components) in the group.
        index: ``{(module, role): LongTensor[width, k]}``: channel ``i`` of the group
            is entries ``index[(module, role)][i]`` of that module's dimension.
            Roles: ``"out"`` (conv/Linear output channels), ``"in"`` (conv/Linear
            input channels or features), ``"bn"`` (batch-norm channels).
        blocks: ``LongTensor[width]`` of conv-group ids when a grouped conv needs an
            equal number of kept channels per block, else ``None``.
        kind: ``"channels"``, or ``"heads"`` for an attention module's heads (one
            unit = one key/value head with its query heads; named after the module).
    """

    name: str
    width: int
    index: Mapping[tuple[str, str], torch.Tensor]
    blocks: torch.Tensor | None = None
    kind: str = "channels"

    @property
    def layers(self) -> tuple[str, ...]:
        """Member modules in first-seen order (each once)."""
        return tuple(dict.fromkeys(m for m, _ in self.index))

    @property
    def producers(self) -> tuple[str, ...]:
        """Conv/Linear modules whose output channels this group is."""
        return tuple(m for m, r in self.index if r == "out")

    @property
    def consumers(self) -> tuple[str, ...]:
        """Conv/Linear modules whose input channels this group is."""
        return tuple(m for m, r in self.index if r == "in")


@dataclass
class ChannelGroups(Mapping):
    """The groups of one traced model (a ``{name: ChannelGroup}`` mapping).

    Attributes:
        groups: prunable groups in trace order.
        unprunable: ``{name: reason}`` for groups that cannot be pruned.
        input_shapes: the batch-1 input shapes the groups were traced with.
    """

    groups: dict[str, ChannelGroup]
    unprunable: dict[str, str] = field(default_factory=dict)
    input_shapes: tuple[tuple[int, ...], ...] = ()

    def __getitem__(self, name: str) -> ChannelGroup:
        if name not in self.groups:
            from edgefit.errors import close_names

            raise ConfigError(f"no channel group {name!r}.{close_names(name, self.groups)}"
                              f" Groups: {', '.join(self.groups) or 'none'}")
        return self.groups[name]

    def __contains__(self, name: object) -> bool:
        return name in self.groups

    def __iter__(self) -> Iterator[str]:
        return iter(self.groups)

    def __len__(self) -> int:
        return len(self.groups)

    def group_of(self, layer: str) -> str | None:
        """Name of the prunable group whose output channels ``layer`` produces (or None)."""
        for name, g in self.groups.items():
            if layer in g.producers:
                return name
        return None


class _Nodes:
    """Union-find over channel nodes, with freeze reasons and members."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.reason: list[str | None] = []
        self.producer: list[int] = []  # producer id; -1 for sentinel (frozen) nodes
        self.base: list[int] = []  # first node id of each producer
        self.count: list[int] = []  # nodes of each producer
        self.members: dict[int, list[tuple[str, str, int]]] = {}

    def new(self, n: int) -> torch.Tensor:
        start = len(self.parent)
        pid = len(self.base)
        self.base.append(start)
        self.count.append(n)
        self.parent.extend(range(start, start + n))
        self.reason.extend([None] * n)
        self.producer.extend([pid] * n)
        return torch.arange(start, start + n)

    def sentinel(self, reason: str) -> int:
        i = len(self.parent)
        self.parent.append(i)
        self.reason.append(reason)
        self.producer.append(-1)
        return i

    def find(self, a: int) -> int:
        p = self.parent
        root = a
        while p[root] != root:
            root = p[root]
        while p[a] != root:
            p[a], a = root, p[a]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self.reason[rb] is not None and self.reason[ra] is None:
            ra, rb = rb, ra
        self.parent[rb] = ra

    def union_pairs(self, a: torch.Tensor, b: torch.Tensor) -> None:
        a, b = torch.broadcast_tensors(a, b)
        code = torch.unique_consecutive(a.reshape(-1) * (1 << 31) + b.reshape(-1))
        code = torch.unique(code)
        for x, y in zip((code >> 31).tolist(), (code & ((1 << 31) - 1)).tolist(), strict=True):
            if x != y:
                self.union(x, y)

    def freeze(self, ids: torch.Tensor, reason: str) -> None:
        s = self.sentinel(reason)
        for x in torch.unique(torch.unique_consecutive(ids.reshape(-1))).tolist():
            self.union(s, x)

    def add_member(self, node: int, module: str, role: str, i: int) -> None:
        self.members.setdefault(node, []).append((module, role, i))


def _transposed_split(sub: torch.Tensor) -> tuple[int, int] | None:
    """``(g, n)`` when ``sub`` is ``arange(g*n).view(g, n).t().flatten()`` with ``g, n > 1``.

    >>> _transposed_split(torch.tensor([0, 2, 4, 1, 3, 5]))  # 3 blocks of 2, shuffled
    (3, 2)
    >>> _transposed_split(torch.tensor([1, 0, 2])) is None
    True
    """
    c = sub.numel()
    for g in range(2, c):
        if c % g == 0 and torch.equal(sub, torch.arange(c).view(g, c // g).t().reshape(-1)):
            return g, c // g
    return None


def _subset(group: ChannelGroup, mask: torch.Tensor, blocks: torch.Tensor | None = None) -> ChannelGroup:
    """The group's channels where ``mask`` is True (with their block ids)."""
    index = {key: idx[mask] for key, idx in group.index.items()}
    return ChannelGroup(group.name, int(mask.sum()), index, blocks, group.kind)


def _balance_(whole: torch.Tensor, prof: torch.Tensor) -> bool:
    """Mark single-block sets kept whole until every block holds as many kept-whole channels.

    ``prof[i, b]``: channels of set ``i`` in block ``b`` of one grouped conv. False when
    no choice of whole sets balances the blocks.

    >>> whole = torch.tensor([False, True, False, False])
    >>> _balance_(whole, torch.tensor([[2, 0], [1, 1], [0, 2], [0, 2]])), whole.tolist()
    (True, [False, True, False, False])
    >>> whole = torch.tensor([False, True, False])
    >>> _balance_(whole, torch.tensor([[2, 0], [2, 2], [0, 2]]))
    True
    """
    fixed = prof[whole].sum(0)
    top = int(fixed.max()) if fixed.numel() else 0
    single = (prof > 0).sum(1) == 1
    for b in range(prof.shape[1]):
        free = torch.nonzero(~whole & single & (prof[:, b] > 0)).flatten()
        need = top - int(fixed[b])
        for i in free.tolist():
            if need <= 0:
                break
            whole[i] = True
            need -= int(prof[i, b])
        if need != 0:
            return False
    return True


def _flat(obj) -> list:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for x in obj for t in _flat(x)]
    return []


class _Builder:
    def __init__(self, model: nn.Module, tr) -> None:
        self.modules = dict(model.named_modules())
        self.tr = tr
        self.nodes = _Nodes()
        self.store: dict[int, torch.Tensor] = {}
        self.grouped: dict[str, int] = {}  # grouped (non-depthwise) convs -> groups
        self.whole: dict[tuple[str, str], int] = {}  # channels kept whole: (module, role) -> count
        self.heads = head_layouts(model)
        self.mha = multihead_modules(model)

    # ids of tensors ---------------------------------------------------------
    def ids(self, t: torch.Tensor, spec) -> torch.Tensor:
        store = self.store.get(spec.value)
        need = t.storage_offset() + sum((s - 1) * st for s, st in zip(t.shape, t.stride(), strict=True)) + 1
        if store is None or store.numel() < need:
            s = self.nodes.sentinel(f"a tensor made inside the model ({tuple(t.shape)})")
            return torch.full(tuple(t.shape), s, dtype=torch.long)
        return torch.as_strided(store, tuple(t.shape), tuple(t.stride()), t.storage_offset())

    def write(self, spec, ids: torch.Tensor, target: torch.Tensor | None = None, old=None) -> None:
        if spec.role != "activation":
            return
        numel = self.tr.values[spec.value].numel
        if target is not None and old is not None:  # in place: write through the target's view
            buf = old.clone()
            torch.as_strided(buf, tuple(target.shape), tuple(target.stride()), target.storage_offset()).copy_(ids)
            self.store[spec.value] = buf
            return
        flat = ids.expand(tuple(spec.shape)).reshape(-1)
        if flat.numel() != numel:
            buf = torch.full((numel,), self.nodes.sentinel("a strided output"), dtype=torch.long)
            buf[: min(numel, flat.numel())] = flat[:numel]
            flat = buf
        self.store[spec.value] = flat.clone()

    # channel sequences --------------------------------------------------------
    def channel_seq(self, ids: torch.Tensor, dim: int, where: str) -> torch.Tensor:
        """Node of each index along ``dim``; freezes what a width change would break."""
        c = ids.shape[dim]
        rows = ids.movedim(dim, -1).reshape(-1, c)
        seq = rows[0]
        if rows.shape[0] > 1 and not bool((rows == seq).all()):
            self.nodes.freeze(rows, f"channels mixed with other dims at {where}")
            return seq
        prod = torch.tensor([self.nodes.producer[i] for i in seq.tolist()])
        bad = False
        for p in torch.unique(prod).tolist():
            if p < 0:
                continue
            sub = seq[prod == p] - self.nodes.base[p]
            n = self.nodes.count[p]
            run = int((sub != sub[0]).nonzero()[0]) if bool((sub != sub[0]).any()) else sub.numel()
            if sub.numel() % (n * run):
                bad = True
                break
            want = torch.arange(n).repeat_interleave(run).repeat(sub.numel() // (n * run))
            if not torch.equal(sub, want):
                bad = True
                break
        if bad and not self.couple_shuffle(seq, prod):
            self.nodes.freeze(seq, f"a slice or permutation of the channel dim (split, chunk or shuffle) at {where}")
        return seq

    def couple_shuffle(self, seq: torch.Tensor, prod: torch.Tensor) -> bool:
        """Tie the rows of a channel shuffle; False when ``seq`` is not one.

        A shuffle views one producer's ``g*n`` channels as ``(g, n)`` and transposes:
        position ``j*g + b`` holds channel ``b*n + j``. It stays a shuffle of the kept
        channels only when row ``j`` (channel ``j`` of every one of the ``g`` blocks)
        goes as a whole, so the row's ``g`` nodes become one coupled component.
        """
        p = int(prod[0])
        if p < 0 or not bool((prod == p).all()) or seq.numel() != self.nodes.count[p]:
            return False
        split = _transposed_split(seq - self.nodes.base[p])
        if split is None:
            return False
        g, n = split
        rows = self.nodes.base[p] + torch.arange(g * n).view(g, n)
        self.nodes.union_pairs(rows[:1].expand(g, n), rows)
        return True

    # ops -----------------------------------------------------------------------
    def run(self) -> None:
        for spec in self.tr.inputs:
            s = self.nodes.sentinel("model input")
            self.store[spec.value] = torch.full((self.tr.values[spec.value].numel,), s, dtype=torch.long)
        for op in self.tr.ops:
            where = f"{op.name} in {op.module or 'the model'}"
            tensors = _flat(op.args) + _flat(list(op.kwargs.values()))
            pairs = list(zip(tensors, op.inputs, strict=False))
            acts = [(t, s) for t, s in pairs if s.role == "activation"]
            attention = self.attention_of(op.module)
            if attention is not None:
                self.attention_op(attention, op, pairs, acts, where)
                continue
            handler = self.handler(op.name)
            handler(op, pairs, acts, where)
        for spec in self.tr.outputs:
            if spec.role == "activation" and spec.value in self.store:
                self.nodes.freeze(self.store[spec.value], "model output")

    def handler(self, name: str):
        if name == "convolution":
            return self.conv
        if name in _BN_OPS:
            return self.bn
        if name in _LINEAR_OPS:
            return self.linear
        if name in _UNARY:
            return self.pointwise
        if name in _BINARY:
            return self.binary
        if name in _CHANNELWISE:
            return self.channelwise
        if name == "cat":
            return self.cat
        return self.unknown

    def attention_of(self, module: str | None):
        for name, lay in self.heads.items():
            if module == name or (module or "").startswith(f"{name}." if name else ""):
                return lay
        return None

    def attention_op(self, lay, op, pairs, acts, where) -> None:
        """Inside a multi-head attention: q/k/v consume the input's channels, out_proj makes new
        ones; what lies between mixes features only within a head, which the head group covers."""
        if op.name not in _LINEAR_OPS:
            return
        if op.module in (lay.proj("q_proj"), lay.proj("k_proj"), lay.proj("v_proj")):
            self.linear(op, pairs, acts, where, produce=False)
        elif op.module == lay.proj("out_proj"):
            self.linear(op, pairs, acts, where, consume=False)

    def out_specs(self, op):
        return [s for s in op.outputs if s.role == "activation"]

    def finish(self, op, acts, out_ids: torch.Tensor) -> None:
        outs = self.out_specs(op)
        if op.inplace and acts:
            t, s = acts[0]
            old = self.store.get(s.value)
            if old is not None and outs:
                self.write(outs[0], out_ids, t, old)
                for o in outs[1:]:
                    self.write(o, out_ids)
                return
        for o in outs:
            self.write(o, out_ids if tuple(o.shape) == tuple(out_ids.shape) else self.fresh_frozen(o, op))

    def fresh_frozen(self, spec, op) -> torch.Tensor:
        s = self.nodes.sentinel(f"output of {op.name} in {op.module or 'the model'}")
        return torch.full(tuple(spec.shape), s, dtype=torch.long)

    def unknown(self, op, pairs, acts, where) -> None:
        for t, s in acts:
            self.nodes.freeze(self.ids(t, s), f"an op edgefit does not model ({where})")
        for o in self.out_specs(op):
            self.write(o, self.fresh_frozen(o, op))

    def pointwise(self, op, pairs, acts, where) -> None:
        if not acts:
            return self.unknown(op, pairs, acts, where)
        t, s = acts[0]
        self.finish(op, acts, self.ids(t, s))

    def binary(self, op, pairs, acts, where) -> None:
        if not acts:
            return self.unknown(op, pairs, acts, where)
        for t, s in pairs:
            if s.role != "activation" and t.numel() > 1:  # a learned per-channel scale: not modelled
                self.nodes.freeze(self.ids(*acts[0]), f"a parameter {s.source} combined elementwise ({where})")
        ids = [self.ids(t, s) for t, s in acts]
        for other in ids[1:]:
            self.nodes.union_pairs(ids[0], other)
        out = self.out_specs(op)
        shape = tuple(out[0].shape) if out else tuple(ids[0].shape)
        big = next((x for x in ids if tuple(x.shape) == shape), None)
        self.finish(op, acts, big if big is not None else torch.broadcast_tensors(*ids)[0])

    def channelwise(self, op, pairs, acts, where) -> None:
        if not acts or len(acts[0][0].shape) < 2:
            return self.unknown(op, pairs, acts, where)
        t, s = acts[0]
        if op.name in ("mean", "sum", "amax"):
            dims = op.args[1] if len(op.args) > 1 else None
            dims = [dims] if isinstance(dims, int) else dims
            if not dims or any(d % t.dim() in (0, 1) for d in dims):
                return self.unknown(op, pairs, acts, where)
        seq = self.channel_seq(self.ids(t, s), 1, where)
        for o in self.out_specs(op):
            shape = tuple(o.shape)
            if len(shape) >= 2 and shape[1] == seq.numel():
                self.write(o, seq.view(1, -1, *[1] * (len(shape) - 2)).expand(shape))
            else:
                self.write(o, self.fresh_frozen(o, op))

    def cat(self, op, pairs, acts, where) -> None:
        dim = op.args[1] if len(op.args) > 1 else op.kwargs.get("dim", 0)
        parts = [self.ids(t, s) for t, s in pairs]
        try:
            out = torch.cat(parts, dim)
        except RuntimeError:
            return self.unknown(op, pairs, acts, where)
        self.finish(op, acts, out)

    def owned(self, source: str, kinds, where: str, acts) -> str | None:
        owner = self.tr.param_owner.get(source)
        if owner is None or not isinstance(self.modules.get(owner), kinds):
            for t, s in acts:
                self.nodes.freeze(self.ids(t, s), f"weight {source or '?'} not held by a {kinds[0].__name__} ({where})")
            return None
        return owner

    def conv(self, op, pairs, acts, where) -> None:
        weights = [s for t, s in pairs if s.role == "param"]
        if not acts or not weights or op.args[6]:  # transposed convs are not modelled
            return self.unknown(op, pairs, acts, where)
        mod = self.owned(weights[0].source, _CONVS, where, acts)
        out = self.out_specs(op)
        if mod is None:
            return [self.write(o, self.fresh_frozen(o, op)) for o in out]
        t, s = acts[0]
        seq = self.channel_seq(self.ids(t, s), 1, where)
        groups = int(op.args[8])
        cin, cout = seq.numel(), int(out[0].shape[1])
        new = self.nodes.new(cout)
        for o in range(cout):
            self.nodes.add_member(int(new[o]), mod, "out", o)
        if groups > 1 and groups == cin:  # depthwise (multiplier cout // cin)
            mult = cout // cin
            for o in range(cout):
                self.nodes.union(int(new[o]), int(seq[o // mult]))
        else:
            for c in range(cin):
                self.nodes.add_member(int(seq[c]), mod, "in", c)
            if groups > 1:
                self.grouped[mod] = groups
        shape = tuple(out[0].shape)
        self.write(out[0], new.view(1, -1, *[1] * (len(shape) - 2)).expand(shape))

    def bn(self, op, pairs, acts, where) -> None:
        params = [s for t, s in pairs if s.role != "activation"]
        if not acts:
            return self.unknown(op, pairs, acts, where)
        mod = self.owned(params[0].source, _BNS, where, acts) if params else None
        t, s = acts[0]
        ids = self.ids(t, s)
        seq = self.channel_seq(ids, 1, where)
        if mod is not None:
            for c in range(seq.numel()):
                self.nodes.add_member(int(seq[c]), mod, "bn", c)
        outs = self.out_specs(op)
        if outs:
            self.write(outs[0], ids)
        for o in outs[1:]:
            self.write(o, self.fresh_frozen(o, op))

    def linear(self, op, pairs, acts, where, *, produce: bool = True, consume: bool = True) -> None:
        weights = [s for t, s in pairs if s.role == "param" and len(s.shape) == 2]
        if len(acts) != 1 or not weights or len(acts[0][0].shape) != 2:
            return self.unknown(op, pairs, acts, where)
        mod = self.owned(weights[0].source, (nn.Linear,), where, acts)
        out = self.out_specs(op)
        if mod is None:
            return [self.write(o, self.fresh_frozen(o, op)) for o in out]
        if consume:
            t, s = acts[0]
            seq = self.channel_seq(self.ids(t, s), 1, where)
            for j in range(seq.numel()):
                self.nodes.add_member(int(seq[j]), mod, "in", j)
        if not produce:
            return
        cout = int(out[0].shape[1])
        new = self.nodes.new(cout)
        for o in range(cout):
            self.nodes.add_member(int(new[o]), mod, "out", o)
        self.write(out[0], new.view(1, -1).expand(tuple(out[0].shape)))

    # groups ------------------------------------------------------------------
    def groups(self) -> ChannelGroups:
        nodes = self.nodes
        comps: dict[int, list[tuple[str, str, int]]] = {}
        first: dict[int, int] = {}
        for node, members in nodes.members.items():
            root = nodes.find(node)
            comps.setdefault(root, []).extend(members)
            first[root] = min(first.get(root, node), node)
        by_sig: dict[tuple, list[int]] = {}
        for root, members in comps.items():
            count: dict[tuple[str, str], int] = {}
            for m, r, _ in members:
                count[(m, r)] = count.get((m, r), 0) + 1
            sig = tuple(sorted(count.items()))
            by_sig.setdefault(sig, []).append(root)
        out: dict[str, ChannelGroup] = {}
        frozen: dict[str, str] = {}
        order = sorted(by_sig.items(), key=lambda kv: min(first[r] for r in kv[1]))
        for _sig, roots in order:
            roots.sort(key=lambda r: first[r])
            per_root = []
            for rt in roots:
                d: dict[tuple[str, str], list[int]] = {}
                for m, r, i in comps[rt]:
                    d.setdefault((m, r), []).append(i)
                per_root.append(d)
            keys = list(per_root[0])
            index = {key: torch.tensor([sorted(d[key]) for d in per_root]) for key in keys}
            name = next((m for m, r in keys if r == "out"), f"{keys[0][0]}.{keys[0][1]}")
            base, k = name, 2
            while name in out or name in frozen:
                name, k = f"{base}#{k}", k + 1
            reason = next((nodes.reason[r] for r in roots if nodes.reason[r] is not None), None)
            if reason is None and not any(r == "out" for _, r in keys):
                reason = "no layer produces these channels"
            group = ChannelGroup(name, len(roots), index)
            if reason is None:
                group, reason, straddling = self.with_blocks(group)
                if straddling is not None:
                    self.keep_whole(straddling, frozen)
            if reason is not None:
                frozen[name] = reason
            else:
                out[name] = group
        self.check_grouped(out, frozen)
        for name, lay in self.heads.items():
            out[name] = ChannelGroup(name, lay.n_kv_heads, lay.index(), kind="heads")
        for name in self.mha:
            frozen[name] = MHA_REASON
        return ChannelGroups(out, frozen)

    def with_blocks(self, group: ChannelGroup) -> tuple[ChannelGroup, str | None, ChannelGroup | None]:
        """Block ids of the group's channels for its grouped convs: ``(group, reason, kept_whole)``.

        Per grouped conv, a channel (coupled set) that spreads evenly over every block
        (a shuffle row seen by the conv before the shuffle) constrains nothing; one
        inside a single block is counted in that block. Sets that straddle blocks are
        split off into ``kept_whole`` (never removed), with as few single-block sets
        as make every block hold the same number of kept-whole channels; the rest
        then prunes an equal number of sets per block.
        """
        keys = []
        for (m, r), idx in group.index.items():
            g = self.grouped.get(m)
            if g is None or r == "bn":
                continue
            mod = self.modules[m]
            size = (mod.in_channels if r == "in" else mod.out_channels) // g
            prof = torch.zeros(group.width, g, dtype=torch.long).scatter_add_(1, idx // size, torch.ones_like(idx))
            if not bool((prof == prof[:, :1]).all()):
                keys.append((m, prof))
        if not keys:
            return group, None, None
        whole = torch.zeros(group.width, dtype=torch.bool)
        for _, prof in keys:
            whole |= (prof > 0).sum(1) > 1
        for m, prof in keys:
            if not _balance_(whole, prof) or bool(whole.all()):
                return group, f"coupled channels straddle the blocks of grouped conv {m} unevenly", None
        for m, prof in keys:  # a later conv's balancing must not unbalance an earlier one
            fixed = prof[whole].sum(0)
            if not bool((fixed == fixed[0]).all()):
                return group, f"coupled channels straddle the blocks of grouped conv {m} unevenly", None
        keep = ~whole
        combo = torch.stack([prof[keep].argmax(1) for _, prof in keys], 1)
        _, blocks = torch.unique(combo, dim=0, return_inverse=True)
        counts = torch.bincount(blocks)
        if not bool((counts == counts[0]).all()):
            return group, "grouped convolutions that split these channels into unequal blocks", None
        return _subset(group, keep, blocks), None, _subset(group, whole) if bool(whole.any()) else None

    def keep_whole(self, group: ChannelGroup, frozen: dict) -> None:
        """Freeze the channels split off a group because they straddle grouped-conv blocks."""
        frozen[f"{group.name}#kept"] = ("coupled channels that straddle two blocks of a grouped conv, or balance "
                                       "them across its blocks (kept whole; the rest of the group is prunable)")
        for key, idx in group.index.items():
            self.whole[key] = self.whole.get(key, 0) + idx.numel()

    def check_grouped(self, out: dict, frozen: dict) -> None:
        for mod, g in self.grouped.items():
            for role in ("in", "out"):
                holders = [n for n, grp in out.items() if (mod, role) in grp.index]
                total = sum(out[n].index[(mod, role)].numel() for n in holders) + self.whole.get((mod, role), 0)
                full = getattr(self.modules[mod], "in_channels" if role == "in" else "out_channels")
                if holders and total != full or len(holders) > 1:
                    for n in holders:
                        frozen[n] = f"grouped conv {mod} (groups={g}) spans several channel groups"
                        out.pop(n)


def _batch1(example_inputs) -> tuple:
    xs = example_inputs if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    out = []
    for x in xs:
        if isinstance(x, torch.Tensor) and x.dim() > 0:
            out.append(torch.empty((1, *x.shape[1:]), dtype=x.dtype, device="meta"))
        else:
            out.append(x)
    return tuple(out)


def channel_groups(model: nn.Module, example_inputs: torch.Tensor | Sequence | None = None, *,
                   input_shape: Sequence[int] | None = None) -> ChannelGroups:
    """Trace ``model`` once (meta device, batch 1) and build its channel groups.

    Args:
        model: any ``nn.Module``; left unchanged.
        example_inputs: a tensor or tuple of forward arguments (shapes only).
        input_shape: instead of ``example_inputs``.

    Raises:
        TraceError: the model cannot be traced with these inputs.
    """
    from edgefit.trace import make_inputs, trace

    if example_inputs is None:
        if input_shape is None:
            raise ConfigError("channel groups need an example input or an input shape (e.g. 1,3,224,224)")
        example_inputs = make_inputs(tuple(input_shape))
    inputs = _batch1(example_inputs)
    tr = trace(model, inputs)
    if not tr.ops:
        raise TraceError(f"{type(model).__name__} ran no tensor ops; nothing to prune")
    b = _Builder(model, tr)
    b.run()
    groups = b.groups()
    groups.input_shapes = tuple(tuple(x.shape) for x in inputs if isinstance(x, torch.Tensor))
    return groups
