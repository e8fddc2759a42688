"""The tracer: no weights touched, nothing left behind, attribution, liveness, errors."""

import gc

import pytest
import torch
from torch import nn

import edgefit
from edgefit.errors import InputShapeError, TraceError
from edgefit.trace import trace
from edgefit.zoo import create


def snapshot(model):
    return (
        {k: (v.data_ptr(), v.device, v.dtype, v.clone()) for k, v in model.state_dict(keep_vars=True).items()},
        [(m._forward_hooks.copy(), m._forward_pre_hooks.copy(), m.training) for m in model.modules()],
        [id(p) for p in model.parameters()],
    )


def test_profiling_leaves_the_model_unchanged():
    model = create("mobilenet_v2", width_mult=0.5)
    model.train()
    before = snapshot(model)
    global_hooks = (dict(nn.modules.module._global_forward_hooks), dict(nn.modules.module._global_forward_pre_hooks))
    edgefit.profile(model, input_shape=(1, 3, 64, 64))
    after = snapshot(model)
    assert before[1] == after[1] and before[2] == after[2]
    for k, (ptr, dev, dtype, val) in before[0].items():
        ptr2, dev2, dtype2, val2 = after[0][k]
        assert (ptr, dev, dtype) == (ptr2, dev2, dtype2)
        assert torch.equal(val, val2)
    assert global_hooks == (dict(nn.modules.module._global_forward_hooks), dict(nn.modules.module._global_forward_pre_hooks))
    assert all(m.training for m in model.modules())


def test_model_unchanged_even_when_forward_raises():
    class Bad(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            self.fc(x)
            raise RuntimeError("boom")

    model = Bad()
    w = model.fc.weight
    with pytest.raises(TraceError, match="boom"):
        edgefit.profile(model, input_shape=(1, 4))
    assert model.fc.weight is w and w.device.type == "cpu"
    assert not nn.modules.module._global_forward_hooks


def test_meta_model_and_cpu_model_count_the_same():
    cpu = edgefit.profile(create("resnet50"), input_shape=(1, 3, 64, 64))
    meta = edgefit.profile(create("resnet50", device="meta"), input_shape=(1, 3, 64, 64))
    real_input = edgefit.profile(create("resnet50"), (torch.randn(1, 3, 64, 64),))
    assert cpu.totals == meta.totals == real_input.totals


def test_shared_module_counted_once():
    shared = nn.Linear(8, 8)

    class Parent(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = shared

        def forward(self, x):
            return self.fc(x)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = Parent(), Parent()

        def forward(self, x):
            return self.b(self.a(x))

    p = edgefit.profile(Net(), input_shape=(1, 8))
    assert p.totals.params == 8 * 8 + 8  # once, though two parents hold it
    row = p.layer("a.fc")
    assert row.calls == 2 and row.params == 72
    assert p.totals.macs == 2 * 64  # it runs twice: the work is done twice


def test_tied_weights_counted_once():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(100, 16)
            self.head = nn.Linear(16, 100, bias=False)
            self.head.weight = self.emb.weight

        def forward(self, ids):
            return self.head(self.emb(ids))

    p = edgefit.profile(Tied(), input_shape=(1, 5), input_dtype=torch.long)
    assert p.totals.params == 1600
    assert p.layer("emb").params == 1600 and p.layer("head").params == 0
    assert p.totals.macs == 5 * 16 * 100


def test_peak_live_sees_residual_branches():
    class Res(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(4, 4, 3, padding=1, bias=False)
            self.b = nn.Conv2d(4, 4, 3, padding=1, bias=False)

        def forward(self, x):
            return x + self.b(self.a(x))

    p = edgefit.profile(Res(), input_shape=(1, 4, 8, 8))
    n = 4 * 8 * 8
    # at conv b: x (held for the add), a's output, b's output are alive together
    assert p.totals.peak_live_activations == 3 * n
    assert p.totals.peak_activations == 2 * n  # the lectures' per-layer definition


def test_inplace_ops_do_not_double_count_live_memory():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.ReLU(inplace=True))
    p = edgefit.profile(net, input_shape=(1, 3, 10, 10))
    assert p.totals.peak_live_activations == 3 * 100 + 8 * 64


def test_trace_records_module_paths_and_shapes():
    tr = trace(create("alexnet", device="meta"), input_shape=(1, 3, 224, 224))
    conv = next(op for op in tr.ops if op.name == "convolution")
    assert conv.module == "features.0"
    assert conv.outputs[0].shape == (1, 96, 55, 55)
    assert [s.role for s in conv.inputs] == ["activation", "param", "param"]
    assert conv.inputs[1].source == "features.0.weight"


@pytest.mark.parametrize("shape", [(1, 3, 0, 224), (1, -3, 224, 224), (), (1, 3.5)])
def test_bad_shapes(shape):
    with pytest.raises(InputShapeError):
        edgefit.profile(create("alexnet", device="meta"), input_shape=shape)


def test_input_that_does_not_fit_names_the_layer():
    with pytest.raises(InputShapeError, match=r"features\.0.*3 channels"):
        edgefit.profile(create("alexnet", device="meta"), input_shape=(1, 4, 224, 224))
    with pytest.raises(InputShapeError, match="features.12"):
        edgefit.profile(create("alexnet", device="meta"), input_shape=(1, 3, 32, 32))


def test_data_dependent_model_is_a_clear_error():
    class DataDependent(nn.Module):
        def forward(self, x):
            return x[: int(x.sum().item())]

    with pytest.raises(TraceError, match="tensor values"):
        edgefit.profile(DataDependent(), input_shape=(4,))


def test_not_a_module():
    with pytest.raises(TraceError, match="nn.Module"):
        edgefit.profile(lambda x: x, input_shape=(1,))


def test_constants_built_in_forward_on_cpu_are_moved_to_meta():
    class Masked(nn.Module):
        def forward(self, x):
            mask = torch.ones(x.shape[-1], x.shape[-1]).tril()
            return (x @ x.transpose(-1, -2)) * mask

    p = edgefit.profile(Masked(), input_shape=(2, 6, 6))
    assert p.totals.macs == 2 * 6 * 6 * 6


def test_weights_changed_between_profiles_are_seen():
    """Swap plans are cached per model; any change to its weights invalidates them."""
    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    assert edgefit.profile(net, input_shape=(1, 8)).totals.params == 8 * 16 + 16 + 16 * 4 + 4
    net[2] = nn.Linear(16, 2)  # a new module
    assert edgefit.profile(net, input_shape=(1, 8)).totals.params == 8 * 16 + 16 + 16 * 2 + 2
    net[0].weight = nn.Parameter(torch.randn(16, 8))  # a new tensor, same shape
    p = edgefit.profile(net, input_shape=(1, 8))
    assert p.totals.params == 8 * 16 + 16 + 16 * 2 + 2
    net[0].register_buffer("scale", torch.ones(16))  # a new buffer
    net[0].bias = None  # a removed parameter
    assert edgefit.profile(net, input_shape=(1, 8)).totals.params == 8 * 16 + 16 * 2 + 2
    with torch.no_grad():
        net[2].weight.data = torch.randn(2, 16)[:, :16]  # same object, same shape: still valid
    assert edgefit.profile(net, input_shape=(1, 8)).totals.macs == 8 * 16 + 16 * 2
    assert net[0].weight.device.type == "cpu" and net[2].weight.device.type == "cpu"


def test_index_with_none_in_the_index_list():
    class Gather(nn.Module):
        def forward(self, x, idx):
            return x[:, idx]

    p = edgefit.profile(Gather(), (torch.randn(2, 5), torch.tensor([0, 3])))
    assert p.uncounted == {} and p.layers[0].output_shape == (2, 2)


def test_a_view_keeps_its_base_alive_and_counts_nothing():
    class Keep(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(2, 4, 1, bias=False)
            self.b = nn.Conv2d(2, 8, 1, bias=False)

        def forward(self, x):
            flat = self.a(x).view(-1)  # a view of a's output, returned at the end
            return self.b(x), flat

    p = edgefit.profile(Keep(), input_shape=(1, 2, 5, 5))
    # x (50), a's output (100, alive to the end through the view), b's output (200)
    assert p.totals.peak_live_activations == 50 + 100 + 200
    assert p.totals.macs == 4 * 25 * 2 + 8 * 25 * 2


def test_a_view_that_does_not_fit_is_an_input_error():
    class Reshape(nn.Module):
        def forward(self, x):
            return x.view(5, -1)

    with pytest.raises(InputShapeError, match="view"):
        edgefit.profile(Reshape(), input_shape=(3, 4))


def test_a_changed_module_tree_between_profiles_is_seen():
    """The swap plan keeps the module tree; any change to it (added, removed, reordered,
    replaced children, at any depth) makes a new one."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Sequential(nn.Conv2d(4, 4, 1), nn.ReLU()))
    p = edgefit.profile(net, input_shape=(1, 3, 6, 6))
    assert [r.name for r in p.layers] == ["0", "1.0", "1.1"] and p.totals.macs == 4 * 16 * 27 + 4 * 16 * 4
    net[1].add_module("2", nn.Conv2d(4, 8, 1))  # a new grandchild
    p = edgefit.profile(net, input_shape=(1, 3, 6, 6))
    assert [r.name for r in p.layers] == ["0", "1.0", "1.1", "1.2"] and p.totals.macs == 1728 + 256 + 8 * 16 * 4
    net[1]._modules = {"2": net[1]._modules["2"], "0": net[1]._modules["0"]}  # reordered, ReLU gone
    with pytest.raises(InputShapeError):  # 8 channels out of "1.2" do not fit "1.0"
        edgefit.profile(net, input_shape=(1, 3, 6, 6))
    net[1] = nn.Conv2d(4, 2, 1)  # replaced
    p = edgefit.profile(net, input_shape=(1, 3, 6, 6))
    assert [r.name for r in p.layers] == ["0", "1"] and p.totals.params == 4 * 27 + 4 + 2 * 4 + 2


def test_a_module_freed_and_replaced_between_profiles_is_seen():
    net = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 4))
    assert edgefit.profile(net, input_shape=(1, 8)).totals.macs == 64 + 32
    for width in (2, 3, 4, 5):
        net[1] = None  # the old layer dies before the new one is made: its address may be reused
        gc.collect()
        net[1] = nn.Linear(8, width)
        assert edgefit.profile(net, input_shape=(1, 8)).totals.macs == 64 + 8 * width


def test_a_weight_whose_shape_changed_in_place_is_seen():
    lin = nn.Linear(8, 4, bias=False)
    assert edgefit.profile(lin, input_shape=(1, 8)).totals.params == 32
    with torch.no_grad():
        lin.weight.data = torch.randn(6, 8)  # same Parameter object, another shape
    p = edgefit.profile(lin, input_shape=(1, 8))
    assert (p.totals.params, p.totals.macs, p.layers[0].output_shape) == (48, 48, (1, 6))
    lin.weight.data = lin.weight.data.double()  # another dtype
    assert edgefit.profile(lin, example_inputs=(torch.zeros(1, 8, dtype=torch.float64),)).totals.model_size_bytes == 48 * 4


def test_a_bias_added_to_an_empty_slot_between_profiles_is_seen():
    net = nn.Sequential(nn.Conv2d(3, 4, 1, bias=False))
    assert edgefit.profile(net, input_shape=(1, 3, 4, 4)).totals.params == 12
    net[0].bias = nn.Parameter(torch.zeros(4))  # the same number of slots: 'bias' held None
    assert edgefit.profile(net, input_shape=(1, 3, 4, 4)).totals.params == 16
    net[0].bias = None
    assert edgefit.profile(net, input_shape=(1, 3, 4, 4)).totals.params == 12


class _TwiceConv(nn.Conv2d):
    def forward(self, x):
        return super().forward(super().forward(x))


def test_a_module_whose_class_is_reassigned_between_profiles_is_seen():
    net = nn.Sequential(nn.Conv2d(4, 4, 1))
    assert edgefit.profile(net, input_shape=(1, 4, 2, 2)).totals.macs == 4 * 4 * 4
    net[0].__class__ = _TwiceConv  # a subclass: its own forward runs, no Conv2d shortcut
    p = edgefit.profile(net, input_shape=(1, 4, 2, 2))
    assert p.totals.macs == 2 * 4 * 4 * 4 and p.layers[0].kind == "_TwiceConv"


def test_a_class_forward_patched_between_profiles_is_seen():
    """The plan keeps the code of each class's forward (to attribute ops to modules):
    a class whose forward changed gets its ops attributed by the new code."""

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 1)

        def forward(self, x):
            return self.conv(x)

    def doubled(self, x):
        return self.conv(x) * 2  # a functional op of the block itself

    net = nn.Sequential(Block())
    assert [r.name for r in edgefit.profile(net, input_shape=(1, 2, 3, 3)).layers] == ["0.conv"]
    original = Block.forward
    Block.forward = doubled
    try:
        p = edgefit.profile(net, input_shape=(1, 2, 3, 3))
    finally:
        Block.forward = original
    assert [(r.name, r.ops) for r in p.layers] == [("0.conv", ("convolution",)), ("0", ("mul",))]


def test_hooks_and_modes_set_between_profiles_are_seen():
    net = nn.Sequential(nn.Conv2d(2, 2, 1), nn.BatchNorm2d(2), nn.ReLU())
    first = trace(net, input_shape=(1, 2, 3, 3))
    assert first.leaf_ops == 3
    seen = []
    handle = net[1].register_forward_hook(lambda m, i, o: seen.append(o.shape))
    assert trace(net, input_shape=(1, 2, 3, 3)).leaf_ops == 2 and seen == [torch.Size([1, 2, 3, 3])]
    handle.remove()
    assert trace(net, input_shape=(1, 2, 3, 3)).leaf_ops == 3 and len(seen) == 1
    net.train()  # the model's own flags: batch statistics (8 ops per element), one step count add
    p = edgefit.profile(net, input_shape=(1, 2, 3, 3), mode=None)
    assert p.layer("1").other_ops == 8 * 18 + 1 and p.layer("1").ops == ("add_", "native_batch_norm")
    net.eval()
    assert edgefit.profile(net, input_shape=(1, 2, 3, 3), mode=None).layer("1").other_ops == 2 * 18


def test_no_shortcut_is_left_on_a_module():
    net = nn.Sequential(nn.Conv2d(2, 2, 1), nn.BatchNorm2d(2), nn.ReLU(), nn.Dropout())
    trace(net, input_shape=(1, 2, 3, 3))
    with pytest.raises(InputShapeError):
        trace(net, input_shape=(1, 3, 3, 3))
    assert not any({"forward", "_compiled_call_impl"} & set(vars(m)) for m in net.modules())
