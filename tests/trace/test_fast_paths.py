"""The tracer's shortcuts change nothing that is counted."""

from torch import nn

import edgefit
from edgefit.trace import trace


class CountsTrainCalls(nn.Sequential):
    def __init__(self):
        super().__init__(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU())
        self.train_calls = 0

    def train(self, mode: bool = True):
        self.train_calls += 1
        return super().train(mode)


def test_model_already_in_eval_is_not_switched():
    model = CountsTrainCalls().eval()
    calls = model.train_calls
    trace(model, input_shape=(1, 3, 8, 8))
    assert model.train_calls == calls
    assert not any(m.training for m in model.modules())


def test_model_in_train_mode_is_traced_in_eval_and_restored():
    model = CountsTrainCalls().train()
    tr = trace(model, input_shape=(1, 3, 8, 8))
    assert model.train_calls == 2  # train() above, then train(False) for the trace
    assert all(m.training for m in model.modules())  # restored
    assert [op.name for op in tr.ops] == ["convolution", "native_batch_norm", "relu"]
    assert tr.ops[1].args[5] is False  # traced in eval: running statistics, not the batch's


def test_batch_norm_reserve_is_not_an_op_and_counts_are_unchanged():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8)).eval()
    tr = trace(model, input_shape=(1, 3, 8, 8))
    assert "empty" not in [op.name for op in tr.ops]
    p = edgefit.profile(model, input_shape=(1, 3, 8, 8))
    # 8 * 6 * 6 outputs x 27 MACs; BN: 2 other ops per element (scale, shift)
    assert p.totals.macs == 8 * 36 * 27
    assert p.layer("1").activations == 0 and p.layer("1").output_shape == (1, 8, 6, 6)
