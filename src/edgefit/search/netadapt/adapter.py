"""The network adapter: what NetAdapt needs to know about a model and its task.

The methods follow the reference code's ``network_utils`` (Yang et al., ECCV
2018, github.com/denru01/netadapt): a user plugs in a custom model or task by
implementing them. `ConvnetAdapter` implements them for any traceable convnet
trained on a classification `edgefit.data.ArrayDataset`; `FidelityAdapter`
scores a network by how closely it reproduces a reference network's outputs
(for tasks without labelled data, e.g. FastDepth's depth maps here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from edgefit.errors import ConfigError
from edgefit.search.netadapt.channels import find_blocks, shrink, widths_of


@dataclass
class Proposal:
    """One block shrunk just enough to meet an iteration's constraint."""

    block: str
    widths: dict[str, int]
    resources: dict[str, float]
    model: nn.Module


@runtime_checkable
class NetworkAdapter(Protocol):
    """The reference code's network-utils methods (names kept)."""

    def get_network_def_from_model(self, model: nn.Module) -> dict[str, int]:
        """``{block: channels}`` of ``model``."""

    def get_num_simplifiable_blocks(self) -> int:
        """How many blocks a proposal may shrink."""

    def compute_resource(self, model: nn.Module) -> dict[str, float]:
        """``{resource label: value}`` of ``model``."""

    def simplify_network_def_based_on_constraint(
        self, model: nn.Module, block: int, constraint: dict[str, float]
    ) -> Proposal | None:
        """Shrink block number ``block`` just enough that every resource meets ``constraint``; None if it cannot."""

    def simplify_model_based_on_network_def(self, model: nn.Module, network_def: dict[str, int]) -> nn.Module:
        """A copy of ``model`` with the widths of ``network_def`` (most important channels kept)."""

    def fine_tune(self, model: nn.Module, epochs: int, seed: int) -> nn.Module:
        """Train ``model`` in place for ``epochs``; returns it."""

    def evaluate(self, model: nn.Module) -> float:
        """The score NetAdapt maximizes (higher is better), on data not used to fine-tune."""


CALIBRATION_BATCH = 256  # images per forward pass when BatchNorm statistics are recalibrated


def candidate_widths(width: int, step: int) -> list[int]:
    """Widths below ``width`` on multiples of ``step`` (largest first), down to ``step``.

    >>> candidate_widths(64, 8)
    [56, 48, 40, 32, 24, 16, 8]
    >>> candidate_widths(20, 8)
    [16, 8]
    >>> candidate_widths(8, 8)
    []
    """
    top = (width - 1) // step * step
    return list(range(top, step - 1, -step))


class ConvnetAdapter:
    """NetAdapt on any traceable convnet: channel blocks from its dependency graph.

    Args:
        model: the unadapted network (its blocks are found once here).
        example: an example input batch (shapes only matter).
        meter: a `edgefit.search.netadapt.ResourceMeter` (or any callable ``model -> {label: value}``).
        data: the classification dataset; a fixed stratified ``val_share`` of its
            training images is held out to choose proposals, the rest fine-tunes,
            and ``test`` is only reported.
        lr, batch_size: Adam fine-tuning settings.
        channel_step: proposals remove multiples of this many channels (8).
        recalibrate_bn: after every fine-tune (a zero-epoch one too), set each
            BatchNorm's running statistics to those of the fine-tuned network on the
            first ``calibration_images`` tuning images (`calibrate_batchnorm_`): one
            forward pass, without which a short fine-tune is scored with statistics of
            the network before shrinking.
    """

    def __init__(
        self,
        model: nn.Module,
        example: torch.Tensor,
        meter,
        data=None,
        *,
        lr: float = 1e-3,
        batch_size: int = 64,
        channel_step: int = 8,
        val_share: float = 0.2,
        recalibrate_bn: bool = True,
        calibration_images: int = 512,
    ) -> None:
        if channel_step < 1:
            raise ConfigError(f"channel_step must be >= 1, got {channel_step}")
        if calibration_images < 2:
            raise ConfigError(f"calibration_images must be >= 2, got {calibration_images}")
        self.example = example
        self.meter = meter
        self.blocks = list(find_blocks(model, example))
        self.lr, self.batch_size, self.channel_step = lr, batch_size, channel_step
        self.recalibrate_bn, self.calibration_images = recalibrate_bn, calibration_images
        self.data = data
        self.tune_data = split_validation(data, val_share) if data is not None else None

    def __getstate__(self):  # the lookup table reopens itself in a worker; the meter is not needed there
        state = dict(self.__dict__)
        state["meter"] = None
        return state

    def get_network_def_from_model(self, model: nn.Module) -> dict[str, int]:
        return widths_of(model, self.blocks, self.example)

    def get_num_simplifiable_blocks(self) -> int:
        return len(self.blocks)

    def compute_resource(self, model: nn.Module) -> dict[str, float]:
        return self.meter(model)

    def simplify_model_based_on_network_def(self, model: nn.Module, network_def: dict[str, int]) -> nn.Module:
        return shrink(model, self.example, network_def)

    def simplify_network_def_based_on_constraint(
        self, model: nn.Module, block: int, constraint: dict[str, float]
    ) -> Proposal | None:
        name = self.blocks[block]
        current = self.get_network_def_from_model(model)
        widths = candidate_widths(current[name], self.channel_step)
        cache: dict[int, Proposal] = {}

        def meets(i: int) -> bool:
            if i not in cache:
                net_def = {**current, name: widths[i]}
                m = self.simplify_model_based_on_network_def(model, {name: widths[i]})
                cache[i] = Proposal(name, net_def, self.compute_resource(m), m)
            return all(cache[i].resources[k] <= v for k, v in constraint.items())

        found = _smallest_cut(len(widths), meets)
        return None if found is None else cache[found]

    def fine_tune(self, model: nn.Module, epochs: float, seed: int) -> nn.Module:
        """Adam on the tuning images, then BatchNorm statistics recalibrated on them (``recalibrate_bn``).

        A fractional ``epochs`` below 1 is one epoch over that seeded share of the images.
        """
        from edgefit.data import TrainConfig, train

        data = self.tune_data
        if 0 < epochs < 1:
            data, epochs = subset(data, epochs, seed), 1
        if epochs != int(epochs):
            raise ConfigError(f"fine-tuning epochs must be a whole number or below 1, got {epochs}")
        if epochs > 0:
            train(model, data, TrainConfig(epochs=int(epochs), lr=self.lr, batch_size=self.batch_size, seed=seed))
        if self.recalibrate_bn and self.tune_data is not None:
            images = torch.from_numpy(self.tune_data.x_train[: self.calibration_images])
            calibrate_batchnorm_(model, images, CALIBRATION_BATCH)
        return model.eval()

    def evaluate(self, model: nn.Module) -> float:
        from edgefit.data import evaluate

        return evaluate(model, self.tune_data)

    def test_accuracy(self, model: nn.Module) -> float | None:
        """Accuracy on the dataset's test split (reported, never used to choose)."""
        from edgefit.data import evaluate

        return None if self.data is None else evaluate(model, self.data)


def _smallest_cut(n: int, meets) -> int | None:
    """The first index in ``0..n-1`` with ``meets(i)``, assuming it stays true after; galloping then bisecting."""
    if n == 0:
        return None
    hi = 0
    while not meets(hi):
        lo = hi
        if hi == n - 1:
            return None
        hi = min(2 * hi + 1, n - 1)
    else:
        lo = -1 if hi == 0 else lo
    while hi - lo > 1:  # meets(hi) holds, meets(lo) does not (or lo = -1)
        mid = (lo + hi) // 2
        if meets(mid):
            hi = mid
        else:
            lo = mid
    return hi


def subset(data, share: float, seed: int):
    """``data`` with a seeded random ``share`` of its training images (the held-out split unchanged)."""
    from edgefit.data import ArrayDataset

    n = len(data.y_train)
    idx = np.sort(np.random.default_rng(seed).permutation(n)[: max(1, round(share * n))])
    return ArrayDataset(data.name, data.x_train[idx], data.y_train[idx], data.x_test, data.y_test, data.num_classes)


def split_validation(data, share: float):
    """``data`` with ``share`` of its training images moved to ``x_test`` (stratified, fixed seed 0)."""
    from sklearn.model_selection import train_test_split

    from edgefit.data import ArrayDataset

    idx = np.arange(len(data.y_train))
    keep, val = train_test_split(idx, test_size=share, random_state=0, stratify=data.y_train)
    return ArrayDataset(
        f"{data.name} (train minus validation)",
        data.x_train[keep], data.y_train[keep], data.x_train[val], data.y_train[val], data.num_classes,
    )


class FidelityAdapter(ConvnetAdapter):
    """Scores a network by its output fidelity to a reference network (no labels needed).

    ``evaluate`` is ``1 - ||y - y_ref|| / ||y_ref||`` over ``inputs`` (1 = identical
    outputs); ``fine_tune`` distils: it minimizes the mean squared error to the
    reference outputs on ``inputs`` with Adam. A proxy for task accuracy where no
    task data is at hand, and reported as such.
    """

    def __init__(self, model: nn.Module, example: torch.Tensor, meter, inputs: torch.Tensor, **kw) -> None:
        super().__init__(model, example, meter, None, **kw)
        self.inputs = inputs
        with torch.no_grad():
            self.reference = model.eval()(inputs)

    def fine_tune(self, model: nn.Module, epochs: int, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        opt = torch.optim.Adam(model.parameters(), lr=self.lr)
        model.eval()  # BatchNorm keeps its statistics: a few inputs would make them noise
        for _ in range(int(epochs)):
            for i in range(0, len(self.inputs), self.batch_size):
                opt.zero_grad()
                loss = torch.nn.functional.mse_loss(model(self.inputs[i : i + self.batch_size]),
                                                    self.reference[i : i + self.batch_size])
                loss.backward()
                opt.step()
        return model.eval()

    def evaluate(self, model: nn.Module) -> float:
        with torch.no_grad():
            out = model.eval()(self.inputs)
        return float(1 - torch.linalg.vector_norm(out - self.reference) / torch.linalg.vector_norm(self.reference))

    def test_accuracy(self, model: nn.Module) -> float | None:
        return None


def calibrate_batchnorm_(model: nn.Module, inputs: torch.Tensor, batch_size: int | None = None) -> nn.Module:
    """Set every BatchNorm's running statistics to the exact mean and variance of its input over ``inputs``, in place.

    The network runs on ``inputs`` (in batches of ``batch_size``; default: one
    batch; a last batch of one image joins the one before) with only its
    BatchNorms in training mode (each normalizes with its batch's statistics, as
    in training; dropout stays off); every BatchNorm's
    input is summed per channel in float64, and its running mean and (unbiased)
    variance become those of all the inputs together. Nothing else changes.

    Why: a BatchNorm's running statistics describe the network they were
    gathered on. A randomly initialised deep network with default statistics
    (mean 0, variance 1) lets activations fade layer by layer until the output
    ignores the deep layers. After channels are removed, every BatchNorm behind
    a shrunk layer sees a different input, and a short fine-tune in training
    mode (a few steps at momentum 0.1) leaves its statistics a blend of the old
    network and a few noisy batches: evaluated with them, a good proposal scores
    as badly as a broken one.

    >>> bn = nn.BatchNorm1d(1)
    >>> m = calibrate_batchnorm_(nn.Sequential(bn), torch.tensor([[1.0], [2.0], [6.0]]), batch_size=2)
    >>> bn.running_mean.item(), bn.running_var.item()
    (3.0, 7.0)
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return model.eval()
    sums: dict[nn.Module, list] = {bn: [0, 0.0, 0.0] for bn in bns}

    def record(bn, args):
        x = args[0].detach().to(torch.float64).transpose(0, 1).reshape(args[0].shape[1], -1)
        s = sums[bn]
        s[0] += x.shape[1]
        s[1] = s[1] + x.sum(1)
        s[2] = s[2] + (x * x).sum(1)

    hooks = [bn.register_forward_pre_hook(record) for bn in bns]
    momenta = {bn: bn.momentum for bn in bns}
    model.eval()
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # BatchNorm's own cumulative average: exact for one batch
        bn.train()
    step = len(inputs) if batch_size is None else batch_size
    starts = list(range(0, len(inputs), step))
    if len(starts) > 1 and len(inputs) - starts[-1] == 1:
        starts.pop()  # a batch of one image has no batch statistics: the last batch takes it
    try:
        with torch.no_grad():
            for a, b in zip(starts, [*starts[1:], len(inputs)], strict=True):
                model(inputs[a:b])
    finally:
        for h in hooks:
            h.remove()
        for bn, momentum in momenta.items():
            bn.momentum = momentum
    if len(starts) == 1:
        return model.eval()
    with torch.no_grad():  # several batches: the statistics of all of them together
        for bn, (n, total, squares) in sums.items():
            mean = total / n
            var = (squares - n * mean * mean) / max(n - 1, 1)
            bn.running_mean.copy_(mean.to(bn.running_mean.dtype))
            bn.running_var.copy_(var.clamp_min(0).to(bn.running_var.dtype))
    return model.eval()
