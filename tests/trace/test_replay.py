"""Replay of repeated blocks: the trace is the one a full run gives, op for op."""

import pytest
import torch
from torch import nn

import edgefit
from edgefit.trace import trace
from edgefit.zoo import create, get_spec, list_models


def _shape(a):
    if isinstance(a, torch.Tensor):
        return ("tensor", tuple(a.shape), a.dtype)
    if isinstance(a, (list, tuple)):
        return tuple(_shape(x) for x in a)
    return a


def canonical(tr):
    """Everything a trace holds, with storage keys renumbered by first appearance."""
    storages: dict = {}
    values = [
        (vid, v.numel, v.nbytes, v.producer, v.last_use, storages.setdefault(v.storage, len(storages)), v.is_output)
        for vid, v in sorted(tr.values.items())
    ]
    ops = [
        (o.index, o.name, o.overload, o.module, o.inputs, o.outputs, o.inplace, o.view, _shape(o.args),
         _shape(tuple(sorted(o.kwargs.items()))))
        for o in tr.ops
    ]
    modules = [(k, m.kind, m.calls, m.order) for k, m in tr.modules.items()]
    return ops, values, modules, tr.inputs, tr.outputs, tr.params, tr.param_owner, tr.buffers


def both(model, *args, **kwargs):
    fast = trace(model, *args, **kwargs)
    full = trace(model, *args, reuse_blocks=False, **kwargs)
    return fast, full


@pytest.mark.slow
@pytest.mark.parametrize("name", list_models())
def test_every_zoo_model_traces_the_same_with_replay(name):
    spec = get_spec(name)
    model = create(name, device="meta")
    fast, full = both(model, input_shape=spec.input_shape, input_dtype=getattr(torch, spec.input_dtype))
    assert full.replayed_blocks == 0
    assert canonical(fast) == canonical(full)


@pytest.mark.parametrize(("name", "replayed"), [("llama_tiny", None), ("bert_tiny", None), ("llama_7b", 31), ("bert_base", 11)])
def test_transformer_layers_are_replayed(name, replayed):
    spec = get_spec(name)
    model = create(name, device="meta")
    layers = sum(1 for path, _ in model.named_modules() if path.count(".") == 1 and path.split(".")[1].isdigit())
    fast, full = both(model, input_shape=spec.input_shape, input_dtype=getattr(torch, spec.input_dtype))
    if layers >= 6:
        assert fast.replayed_blocks == (replayed if replayed is not None else layers - 1)
    assert canonical(fast) == canonical(full)


def test_profile_equal_with_and_without_replay():
    model = create("llama_7b", device="meta", seq_len=16)
    prof = edgefit.profile(model, input_shape=(1, 16), input_dtype=torch.long)
    from edgefit.metrics.counting import build_profile

    full = build_profile(trace(model, input_shape=(1, 16), input_dtype=torch.long, reuse_blocks=False))
    assert prof.totals == full.totals and prof.layers == full.layers


# --------------------------------------------------------------------------- refusals


class Block(nn.Module):
    def __init__(self, d=8, scale=1.0):
        super().__init__()
        self.fc = nn.Linear(d, d)
        self.act = nn.ReLU()
        self.scale = scale

    def forward(self, x):
        return self.act(self.fc(x)) * self.scale + x


class Stack(nn.Module):
    def __init__(self, blocks):
        super().__init__()
        self.layers = nn.ModuleList(blocks)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


def check(model, shape=(2, 8), replayed=None):
    fast, full = both(model, input_shape=shape)
    assert canonical(fast) == canonical(full)
    if replayed is not None:
        assert fast.replayed_blocks == replayed
    return fast


def test_identical_blocks_replay_and_keep_their_own_names():
    tr = check(Stack([Block() for _ in range(8)]), replayed=7)
    linears = [op for op in tr.ops if op.name == "addmm"]
    assert [op.module for op in linears] == [f"layers.{i}.fc" for i in range(8)]
    assert {s.source for op in linears for s in op.inputs if s.role == "param"} == {
        f"layers.{i}.fc.{w}" for i in range(8) for w in ("weight", "bias")
    }


def test_fewer_than_six_twins_run_normally():
    check(Stack([Block() for _ in range(5)]), replayed=0)


def test_a_different_plain_attribute_is_a_different_block():
    tr = check(Stack([Block(scale=2.0 if i == 4 else 1.0) for i in range(8)]), replayed=6)
    assert tr.replayed_blocks == 6  # the odd block runs; the other seven replay from one


def test_new_input_shape_records_again():
    class Widen(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList(Block() for _ in range(8))

        def forward(self, x):
            for i, layer in enumerate(self.layers):
                x = layer(x[:1] if i == 4 else x)  # layers 4-7 see one row: recorded again
            return x

    check(Widen(), replayed=6)


def test_a_block_that_changes_its_attributes_is_never_replayed():
    class Counting(Block):
        def forward(self, x):
            self.calls = getattr(self, "calls", 0) + 1
            return super().forward(x)

    model = Stack([Counting() for _ in range(8)])
    check(model, replayed=0)
    assert [b.calls for b in model.layers] == [2] * 8  # one trace each way: every block ran twice


def test_forward_hooks_run_on_every_block():
    model = Stack([Block() for _ in range(8)])
    seen = []
    for b in model.layers:
        b.register_forward_hook(lambda m, i, o: seen.append(m))
    check(model, replayed=0)
    assert len(seen) == 16


def test_a_block_that_writes_into_its_input_is_not_replayed():
    class InPlace(Block):
        def forward(self, x):
            x.add_(1.0)
            return self.fc(x)

    check(Stack([InPlace() for _ in range(8)]), replayed=0)


def test_a_block_reading_an_activation_it_was_not_passed_is_not_replayed():
    class Shared:
        mask = None

    shared = Shared()

    class Reads(Block):
        def __init__(self):
            super().__init__()
            self.shared = shared

        def forward(self, x):
            return self.fc(x) * self.shared.mask

    class Model(Stack):
        def forward(self, x):
            shared.mask = x.sigmoid()
            return super().forward(x)

    check(Model([Reads() for _ in range(8)]), replayed=0)


def test_tied_weights_are_not_replayed():
    blocks = [Block() for _ in range(8)]
    for b in blocks[1:]:
        b.fc.weight = blocks[0].fc.weight
    check(Stack(blocks), replayed=0)


def test_outputs_that_pass_an_input_through_and_tuples():
    class Pair(Block):
        def forward(self, x, y):
            return self.fc(x), y

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList(Pair() for _ in range(8))

        def forward(self, x):
            y = x * 2
            for layer in self.layers:
                x, y = layer(x, y)
            return x + y

    check(Model(), replayed=7)


def test_buffers_passed_to_every_block_and_kwargs():
    class Rot(Block):
        def forward(self, x, *, table):
            return self.fc(x) * table[: x.shape[0]]

    class Model(Stack):
        def __init__(self):
            super().__init__([Rot() for _ in range(8)])
            self.register_buffer("table", torch.ones(4, 8))

        def forward(self, x):
            for layer in self.layers:
                x = layer(x, table=self.table)
            return x

    tr = check(Model(), replayed=7)
    assert sum(s.source == "table" for op in tr.ops for s in op.inputs) == 8


def test_replayed_trace_leaves_the_model_unchanged():
    model = Stack([Block() for _ in range(8)])
    trace(model, input_shape=(2, 8))
    assert all("forward" not in vars(b) for b in model.modules())
    assert not any(p.is_meta for p in model.parameters())
