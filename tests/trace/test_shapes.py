"""Every shape rule agrees with torch's own meta kernel (shape and dtype)."""

import pytest
import torch

from edgefit.trace.shapes import SHAPE_RULES, rule_for

aten = torch.ops.aten


def m(*shape, dtype=torch.float32):
    return torch.empty(shape, dtype=dtype, device="meta")


x4 = m(2, 8, 9, 9)
c = m(8)
CASES = [
    (aten.relu.default, (x4,)),
    (aten.gelu.default, (m(3, 5),)),
    (aten.tril.default, (m(7, 7),)),
    (aten.triu.default, (m(2, 7, 7), 1)),
    (aten.logical_not.default, (m(3, dtype=torch.bool),)),
    (aten.hardtanh.default, (x4, 0.0, 6.0)),
    (aten.add.Tensor, (m(3, 1, 5), m(4, 5))),
    (aten.mul.Tensor, (m(2, 3), m(3, dtype=torch.float16))),
    (aten.mul.Tensor, (m(2, 3, dtype=torch.int64), m(dtype=torch.float32))),
    (aten.div.Tensor, (m(2, 3, dtype=torch.int64), m(2, 3, dtype=torch.int64))),
    (aten.mul.Scalar, (m(2, 3, dtype=torch.int64), 2.5)),
    (aten.div.Scalar, (m(2, 3, dtype=torch.int64), 2)),
    (aten.pow.Tensor_Scalar, (m(4, 4), 2)),
    (aten.where.self, (m(4, 1, dtype=torch.bool), m(4, 5), m(5))),
    (aten.masked_fill.Scalar, (m(2, 4, 4), m(4, 4, dtype=torch.bool), 0.0)),
    (aten.eq.Scalar, (m(3, 3), 1)),
    (aten._native_batch_norm_legit_no_training.default, (x4, c, c, c, c, 0.1, 1e-5)),
    (aten.native_layer_norm.default, (m(2, 5, 16), [16], m(16), m(16), 1e-5)),
    (aten._softmax.default, (m(2, 7), -1, False)),
    (aten._safe_softmax.default, (m(2, 3, 7), -1)),
    (aten.mean.dim, (m(2, 3, 7), [-1], True)),
    (aten.mean.dim, (m(2, 3, 7), [1, 2])),
    (aten.sum.dim_IntList, (m(2, 3, dtype=torch.int32), [0])),
    (aten.addmm.default, (m(6), m(4, 5), m(5, 6))),
    (aten.mm.default, (m(4, 5), m(5, 6))),
    (aten.bmm.default, (m(3, 4, 5), m(3, 5, 6))),
    (aten.baddbmm.default, (m(3, 4, 6), m(3, 4, 5), m(3, 5, 6))),
    (aten.cat.default, ([m(2, 3), m(2, 5)], 1)),
    (aten.stack.default, ([m(2, 3), m(2, 3)], -1)),
    (aten.max_pool2d_with_indices.default, (x4, [3, 3], [2, 2], [1, 1])),
    (aten.max_pool2d_with_indices.default, (x4, [3, 3], [2, 2], [0, 0], [1, 1], True)),
    (aten.avg_pool2d.default, (x4, [2, 2], [2, 2])),
    (aten.convolution.default, (x4, m(16, 4, 3, 3), None, [2, 2], [1, 1], [1, 1], False, [0, 0], 2)),
    (aten.convolution.default, (x4, m(8, 4, 3, 3), None, [2, 2], [1, 1], [1, 1], True, [1, 1], 2)),
    (aten.convolution.default, (m(1, 4, 20), m(6, 4, 5), None, [1], [2], [2], False, [0], 1)),
    (aten.embedding.default, (m(10, 4), m(2, 3, dtype=torch.long))),
    (aten._adaptive_avg_pool2d.default, (x4, [1, 1])),
    (aten.native_dropout.default, (m(3, 4), 0.5, True)),
    (aten.arange.default, (7,)),
    (aten.arange.start, (2, 9)),
    (aten.arange.start_step, (0, 1.0, 0.25)),
    (aten.arange.start_step, (10, 0, -3)),
]


def test_profiling_imports_neither_sympy_nor_dynamo():
    """Slow Python meta kernels import sympy, and torch's dispatch-mode wrapper imports
    dynamo, on first use (0.4 s and 1.5 s on a first call). Models are built on CPU:
    building on meta runs weight init through Python refs that import sympy themselves."""
    import subprocess
    import sys

    code = (
        "import sys, edgefit\n"
        "from edgefit.zoo import create, get_spec\n"
        "names = ['alexnet', 'resnet50', 'mobilenet_v2', 'googlenet', 'densenet121', 'shufflenet_v1',\n"
        "         'squeezenet1_0', 'lenet5', 'bert_tiny', 'llama_tiny', 'transformer_encoder']\n"
        "models = [(create(n), get_spec(n)) for n in names]\n"
        "before = ('sympy' in sys.modules, 'torch._dynamo' in sys.modules)\n"
        "for m, s in models:\n"
        "    edgefit.profile(m, input_shape=s.input_shape, input_dtype=s.input_dtype)\n"
        "print(*before, 'sympy' in sys.modules, 'torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False"] * 4


def test_every_rule_names_a_real_aten_op():
    for key in SHAPE_RULES:
        packet, overload = key.rsplit(".", 1)
        assert getattr(getattr(aten, packet), overload) is not None, key


def _flat(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


@pytest.mark.parametrize("op,args", CASES, ids=lambda v: str(v) if not isinstance(v, tuple) else "")
def test_rule_matches_meta_kernel(op, args):
    assert rule_for(op) is not None
    ours = _flat(rule_for(op)(args, {}))
    theirs = _flat(op(*args, device="meta") if "arange" in str(op) else op(*args))
    assert [(t.shape, t.dtype) for t in ours] == [(t.shape, t.dtype) for t in theirs]


def test_inplace_rules_return_their_input():
    x = m(2, 3)
    assert rule_for(aten.relu_.default)((x,), {}) is x
    assert rule_for(aten.add_.Tensor)((x, m(3)), {}) is x


@pytest.mark.parametrize(
    "op,args",
    [
        (aten.add.Tensor, (m(3, 4), m(5))),
        (aten.mm.default, (m(2, 3), m(4, 5))),
        (aten.convolution.default, (m(1, 3, 8, 8), m(4, 5, 3, 3), None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1)),
        (aten.cat.default, ([m(2, 3), m(3, 5)], 1)),
    ],
)
def test_rules_reject_what_the_kernels_reject(op, args):
    with pytest.raises(RuntimeError):
        rule_for(op)(args, {})
    with pytest.raises(RuntimeError):
        op(*args)
