"""Leaf shortcuts: the trace is the one a full dispatch gives, op for op, or the shortcut is refused."""

import gc
import importlib.util
import weakref
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

import edgefit
from edgefit.metrics.counting import build_profile
from edgefit.trace import trace
from edgefit.zoo import create, get_spec, list_models

from .test_replay import canonical

ROOT = Path(__file__).resolve().parents[2]


def _foreign():
    """The models of ``benchmarks/_foreign.py``, written as torchvision writes them."""
    spec = importlib.util.spec_from_file_location("_foreign", ROOT / "benchmarks" / "_foreign.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_SLOTS = {"forward", "_compiled_call_impl"}  # where a module's call could be replaced


def _slots(model) -> list:
    """Each module's own ``forward`` and compiled-call slot (a shortcut sits in the latter)."""
    return [(vars(m).get("forward"), vars(m).get("_compiled_call_impl")) for m in model.modules()]


def check(model, shape=(1, 3, 8, 8), **kwargs):
    """Shortcuts on (default) and plain dispatch give the same trace; returns the default one."""
    before = _slots(model)
    fast = trace(model, input_shape=shape, **kwargs)
    full = trace(model, input_shape=shape, leaf_shortcuts=False, reuse_blocks=False, **kwargs)
    assert full.leaf_ops == 0
    assert canonical(fast) == canonical(full)
    assert _slots(model) == before  # every shortcut removed
    return fast


@pytest.mark.slow
@pytest.mark.parametrize("name", list_models())
def test_every_zoo_model_traces_the_same_with_shortcuts(name):
    spec = get_spec(name)
    model = create(name, device="meta")
    fast = check(model, spec.input_shape, input_dtype=getattr(torch, spec.input_dtype))
    stock = sum(type(m) in (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.ReLU6) for m in model.modules())
    assert (fast.leaf_ops > 0) == (stock > 0)


@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet50"])
def test_torchvision_style_models_with_real_weights(name):
    torch.manual_seed(0)
    model = _foreign().BUILDERS[name]().eval()
    fast = check(model, (1, 3, 224, 224))
    convs = sum(type(m) is nn.Conv2d for m in model.modules())
    bns = sum(type(m) is nn.BatchNorm2d for m in model.modules())
    acts = sum(type(m) in (nn.ReLU, nn.ReLU6) for m in model.modules())
    if name == "mobilenet_v2":
        assert fast.leaf_ops == convs + bns + acts == 52 + 52 + 35
    else:  # a ResNet bottleneck reuses one nn.ReLU three times: every call is a shortcut
        assert fast.leaf_ops == convs + bns + 49 == 53 + 53 + 49
    prof = edgefit.profile(model, input_shape=(1, 3, 224, 224))
    full = build_profile(trace(model, input_shape=(1, 3, 224, 224), leaf_shortcuts=False))
    assert prof.totals == full.totals and prof.layers == full.layers


def _cbr(**conv):
    return nn.Sequential(nn.Conv2d(3, 8, 3, **conv), nn.BatchNorm2d(8), nn.ReLU6(inplace=True), nn.Dropout(0.1)).eval()


def test_a_stock_block_records_every_op_by_shortcut():
    tr = check(_cbr(stride=2, padding=1, dilation=1, groups=1, bias=True))
    assert tr.leaf_ops == 3
    assert [op.name for op in tr.ops] == ["convolution", "native_batch_norm", "hardtanh_"]
    assert [op.module for op in tr.ops] == ["0", "1", "2"]
    assert "3" not in tr.modules  # dropout in eval runs no op
    conv = tr.ops[0]
    assert conv.args[3:] == ([2, 2], [1, 1], [1, 1], False, [0, 0], 1)
    assert [s.source for s in conv.inputs] == ["", "0.weight", "0.bias"]


def test_relu_inplace_and_not_and_hardtanh_with_integer_bounds():
    model = nn.Sequential(nn.ReLU(), nn.ReLU(inplace=True), nn.Hardtanh(0, 6), nn.Hardtanh(-1.5, 2.0, inplace=True))
    tr = check(model, (2, 4))
    assert tr.leaf_ops == 4
    assert [op.name for op in tr.ops] == ["relu", "relu_", "hardtanh", "hardtanh_"]
    assert tr.ops[2].args[1:] == (0, 6) and type(tr.ops[2].args[1]) is int


def test_batch_norm_without_affine_and_without_momentum():
    model = nn.Sequential(nn.BatchNorm2d(3, affine=False, momentum=None)).eval()
    tr = check(model)
    assert tr.leaf_ops == 1
    assert tr.ops[0].args[1:3] == (None, None) and tr.ops[0].args[6] == 0.0


def test_a_shared_module_called_twice_counts_two_calls():
    relu = nn.ReLU()
    model = nn.Sequential(nn.Conv2d(3, 3, 1), relu, nn.Conv2d(3, 3, 1), relu)
    tr = check(model)
    assert tr.leaf_ops == 4 and tr.modules["1"].calls == 2


# --------------------------------------------------------------------------- refusals


def test_forward_hook_pre_hook_and_global_hook_refuse_the_shortcut():
    model = _cbr()
    seen = []
    model[0].register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape)))
    model[1].register_forward_pre_hook(lambda m, i: None)
    tr = check(model)
    assert tr.leaf_ops == 1  # only the activation
    assert seen == [(1, 8, 6, 6), (1, 8, 6, 6)]
    handle = nn.modules.module.register_module_forward_hook(lambda m, i, o: None)
    try:
        assert check(_cbr()).leaf_ops == 0
    finally:
        handle.remove()


def test_training_mode_batch_norm_and_dropout_run_their_own_forward():
    model = _cbr().train()
    tr = check(model, mode=None)
    assert tr.leaf_ops == 2  # conv and activation; batch norm and dropout dispatch
    names = [op.name for op in tr.ops]
    assert names[:4] == ["convolution", "add_", "native_batch_norm", "hardtanh_"]  # add_: the step count
    assert tr.ops[2].args[5] is True and "bernoulli_" in names  # batch statistics; a dropout mask
    assert all(m.training for m in model.modules())


class ScaledConv(nn.Conv2d):
    def forward(self, x):
        return super().forward(x) * 2


class QuietReLU(nn.ReLU):
    pass


def test_subclasses_are_refused_even_without_their_own_forward():
    model = nn.Sequential(ScaledConv(3, 4, 3), QuietReLU()).eval()
    tr = check(model)
    assert tr.leaf_ops == 0
    assert [op.name for op in tr.ops] == ["convolution", "mul", "relu"]


def test_instance_forward_and_patched_class_forward_are_refused():
    model = _cbr()
    model[2].forward = lambda x: x + 1
    tr = check(model)
    assert tr.leaf_ops == 2 and tr.ops[2].name == "add"
    original = nn.ReLU.forward
    nn.ReLU.forward = lambda self, x: torch.sigmoid(x)
    try:
        tr = check(nn.Sequential(nn.Conv2d(3, 3, 1), nn.ReLU()))
        assert tr.leaf_ops == 0 and tr.ops[-1].name == "sigmoid"
    finally:
        nn.ReLU.forward = original


def test_channels_last_other_dtypes_and_unbatched_inputs_dispatch():
    model = _cbr()
    x = torch.empty(1, 3, 8, 8).to(memory_format=torch.channels_last)
    fast = trace(model, x)
    full = trace(model, x, leaf_shortcuts=False, reuse_blocks=False)
    assert canonical(fast) == canonical(full)
    assert fast.leaf_ops == 2  # the conv dispatches; its output is contiguous, so batch norm and ReLU6 do not
    assert check(_cbr().double(), input_dtype=torch.float64).leaf_ops == 0
    assert check(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), (3, 8, 8)).leaf_ops == 1  # 3-D input: relu only


def test_same_padding_and_reflect_padding_dispatch():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding="same"), nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"))
    tr = check(model)
    assert tr.leaf_ops == 0


def test_unusual_settings_and_weights_moved_to_buffers_dispatch():
    conv = nn.Conv2d(3, 4, 3)
    w = conv.weight.detach().clone()
    del conv.weight
    conv.register_buffer("weight", w)  # forward reads self.weight: now a buffer
    bn = nn.BatchNorm2d(4, momentum=1)  # an integer momentum reaches aten as a float
    bn_eps = nn.BatchNorm2d(4)
    bn_eps.eps = 1  # likewise
    tr = check(nn.Sequential(conv, bn, bn_eps).eval())
    assert tr.leaf_ops == 0
    assert tr.ops[1].args[6] == 1.0 and type(tr.ops[1].args[6]) is float


def test_a_function_mode_turns_shortcuts_off():
    class Counting(TorchFunctionMode):
        calls = 0

        def __torch_function__(self, func, types, args=(), kwargs=None):
            Counting.calls += 1
            return func(*args, **(kwargs or {}))

    with Counting():
        tr = check(_cbr())
    assert tr.leaf_ops == 0 and Counting.calls > 0


def test_a_model_that_fails_restores_every_forward():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Linear(3, 3))
    with pytest.raises(edgefit.errors.EdgefitError):
        trace(model, input_shape=(1, 3, 8, 8))
    assert not any(_SLOTS & set(vars(m)) for m in model.modules())
    with pytest.raises(edgefit.errors.InputShapeError, match="module '0'"):
        trace(model, input_shape=(1, 5, 8, 8))  # a shortcut's op fails: same message as dispatch
    assert not any(_SLOTS & set(vars(m)) for m in model.modules())


def test_what_is_kept_per_model_does_not_keep_the_model_alive():
    blocks = [nn.Sequential(nn.Linear(8, 8), nn.ReLU()) for _ in range(8)]  # twins: replay candidates
    model = nn.Sequential(*blocks)
    for block in blocks:
        block.back = [model]  # a cycle through a plain attribute
    tr = trace(model, input_shape=(2, 8))
    assert tr.replayed_blocks == 7 and tr.leaf_ops == 1  # the first block ran; its ReLU by shortcut
    ref = weakref.ref(model)
    del model, blocks, block, tr
    gc.collect()
    assert ref() is None


class _ByKeyword(nn.Module):
    """Calls its stock layers with keyword arguments, which the shortcuts refuse per call."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn, self.act, self.drop = _cbr()

    def forward(self, x):
        return self.drop(input=self.act(input=self.bn(input=self.conv(input=x))))


def test_keyword_arguments_dispatch():
    tr = check(_ByKeyword().eval())
    assert tr.leaf_ops == 0
    assert [op.name for op in tr.ops] == ["convolution", "native_batch_norm", "hardtanh_"]


def test_batch_norm_without_running_statistics_dispatches():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, track_running_stats=False)).eval()
    tr = check(model)
    assert tr.leaf_ops == 1  # the conv; batch norm uses batch statistics
    assert tr.ops[1].name == "native_batch_norm" and tr.ops[1].args[5] is True


def test_hardtanh_bounds_that_are_not_plain_numbers_dispatch():
    act = nn.Hardtanh()
    act.max_val = True  # a bool: an int subclass, not the plain number the shortcut passes on
    tr = check(nn.Sequential(act), (2, 4))
    assert tr.leaf_ops == 0 and tr.ops[0].name == "hardtanh"


def test_autocast_and_an_outer_dispatch_mode_turn_shortcuts_off():
    from torch.utils._python_dispatch import TorchDispatchMode

    with torch.autocast("cpu", dtype=torch.bfloat16):
        tr = check(_cbr())
    assert tr.leaf_ops == 0

    class Passing(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            return func(*args, **(kwargs or {}))

    with Passing():
        tr = check(_cbr())
    assert tr.leaf_ops == 0


def test_a_compiled_module_is_refused():
    model = _cbr()
    model[0]._compiled_call_impl = model[0]._call_impl  # what ``m.compile()`` installs, without compiling
    tr = check(model)
    assert tr.leaf_ops == 2 and tr.ops[0].name == "convolution"  # batch norm and ReLU6 by shortcut


def test_dropout_with_an_invalid_probability_fails_as_its_own_forward_does():
    model = nn.Sequential(nn.Conv2d(3, 3, 1), nn.Dropout(0.1)).eval()
    model[1].p = 1.5  # the shortcut is refused, so F.dropout's own check reports it
    for shortcuts in (True, False):
        with pytest.raises(edgefit.errors.TraceError, match="module '1' raised.*dropout probability"):
            trace(model, input_shape=(1, 3, 4, 4), leaf_shortcuts=shortcuts)
    assert not any(_SLOTS & set(vars(m)) for m in model.modules())


def test_a_dropout_probability_that_is_not_a_number_is_refused():
    model = nn.Sequential(nn.Conv2d(3, 3, 1), nn.Dropout(0.1)).eval()
    model[1].p = None  # F.dropout's own comparison reports it, in the dropout's row
    with pytest.raises(edgefit.errors.TraceError, match="module '1' raised"):
        trace(model, input_shape=(1, 3, 4, 4))
    assert not any("_compiled_call_impl" in vars(m) for m in model.modules())


def test_a_check_that_fails_while_installing_removes_the_shortcuts_installed(monkeypatch):
    import edgefit.trace.leaves as leaves

    def broken(m):
        raise RuntimeError("check failed")

    monkeypatch.setattr(leaves, "_dropout_ok", broken)  # read when the model's shortcuts are built
    model = nn.Sequential(nn.Conv2d(3, 3, 1), nn.Dropout(0.1)).eval()
    with pytest.raises(Exception, match="check failed"):
        trace(model, input_shape=(1, 3, 4, 4))
    assert not any("_compiled_call_impl" in vars(m) for m in model.modules())  # the conv's too
    seen = []
    model[0].register_forward_hook(lambda m, i, o: seen.append(o.shape))
    model(torch.zeros(1, 3, 4, 4))
    assert seen == [torch.Size([1, 3, 4, 4])]  # no shortcut left to bypass the hook


# --------------------------------------------------------------------------- outputs made again


def _activations_read(tr) -> list:
    """The activation tensors the trace's ops read first."""
    return [op.args[0] for op in tr.ops if op.inputs and op.inputs[0].role == "activation"]


def test_a_leaf_output_nothing_holds_is_made_again_from_the_previous_trace():
    torch.manual_seed(0)
    model = _foreign().BUILDERS["mobilenet_v2"]().eval()
    full = canonical(trace(model, input_shape=(1, 3, 64, 64), leaf_shortcuts=False, reuse_blocks=False))
    first = trace(model, input_shape=(1, 3, 64, 64))
    kept = trace(model, input_shape=(1, 3, 64, 64))  # ``first`` holds its tensors: new ones
    assert not {id(t) for t in _activations_read(first)} & {id(t) for t in _activations_read(kept)}
    assert canonical(first) == canonical(kept) == full
    made = [weakref.ref(t) for t in _activations_read(kept)]
    del first, kept
    kept_by_leaves = {id(r()): r for r in made if r() is not None}  # weakly: they must be free
    # every output a leaf made and a later op reads first (the ten residual adds read theirs second)
    assert len(kept_by_leaves) == 52 + 52 - 10
    again = trace(model, input_shape=(1, 3, 64, 64))  # nothing else holds them now: handed out again
    read = {id(t) for t in _activations_read(again)}
    assert all(r() is not None and id(r()) in read for r in kept_by_leaves.values())
    assert canonical(again) == full
    assert edgefit.profile(model, input_shape=(1, 3, 64, 64)).totals == build_profile(again).totals


class _Stash(nn.Module):
    """Keeps, views or changes its convolution's output: that tensor must never come back."""

    def __init__(self, how):
        super().__init__()
        self.conv, self.act, self.how = nn.Conv2d(2, 2, 1), nn.ReLU(), how

    def forward(self, x):
        y = self.conv(x)
        if self.how == "keep":
            self.kept = y
        elif self.how == "view":
            self.kept = y.view(-1)
        elif self.how == "grad":
            y.requires_grad_()
        elif self.how == "strides":
            y.as_strided_(y.shape, (18, 1, 6, 2))
        return self.act(y)


@pytest.mark.parametrize("how", ["keep", "view", "grad", "strides"])
def test_an_output_a_model_kept_viewed_or_changed_is_not_made_again(how):
    model = _Stash(how)
    trace(model, input_shape=(1, 2, 3, 3))
    kept = getattr(model, "kept", None)
    model.how = "none"  # the second call leaves its output alone
    tr = trace(model, input_shape=(1, 2, 3, 3))
    y = tr.ops[1].args[0]  # the convolution's output, read by the ReLU
    if how == "keep":
        assert y is not kept
    elif how == "view":
        assert y.untyped_storage()._cdata != kept.untyped_storage()._cdata
    else:  # as torch.empty makes it, not as the first call left it
        assert not y.requires_grad and y.stride() == (18, 9, 3, 1)
    assert canonical(tr) == canonical(trace(model, input_shape=(1, 2, 3, 3), leaf_shortcuts=False))


def test_a_spare_output_is_handed_out_again_only_when_nothing_else_holds_it():
    from edgefit.trace.leaves import _ALONE, _Spare

    spare = _Spare()
    spare.empty((2, 3))
    first = id(spare.tensor)
    assert _ALONE > 0 and id(spare.empty((2, 3))) == first  # free: reused
    kept = spare.empty((2, 3))
    assert spare.empty((2, 3)) is not kept  # held by this test: a new tensor
    assert spare.empty((4,)).shape == (4,)  # another shape: a new tensor


def test_without_a_reference_count_no_output_is_handed_out_again(monkeypatch):
    import sys

    import edgefit.trace.leaves as leaves

    monkeypatch.delattr(sys, "getrefcount")  # an interpreter that cannot count references
    assert leaves._alone_references() == -1
    monkeypatch.setattr(leaves, "_ALONE", -1)
    spare = leaves._Spare()
    first = spare.empty((2, 3))
    del first
    assert spare.empty((2, 3)).shape == (2, 3)  # a new tensor each call, and no count read
