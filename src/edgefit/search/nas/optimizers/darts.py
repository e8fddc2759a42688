"""Gradient descent on the architecture: DARTS (Liu et al., "DARTS: Differentiable
Architecture Search", ICLR 2019), first-order variant, on a one-shot supernet.

Every choice of a cell space becomes a softmax over architecture weights: a node's
operation is the softmax-weighted sum of all candidate operations (`MixedOp`), its input
the softmax-weighted sum of the candidate earlier nodes. Network weights step on
training batches and architecture weights on validation batches, alternately (weight
sharing: one supernet is trained once for all samples). The search then proposes the
argmax architecture first and samples the next ones from the learned softmax, each
evaluated like any other trial. The architecture weights are kept in the study, so a
resumed search does not train the supernet again.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import torch
from torch import nn

from edgefit.errors import ConfigError
from edgefit.search.nas.optimizers import (
    OptimizerConfig,
    check_int,
    check_positive,
    register_optimizer,
)
from edgefit.search.nas.optimizers.base import ProposalSampler, arch_key


@dataclass(frozen=True)
class DartsConfig(OptimizerConfig):
    """Attributes: epochs: supernet epochs; weight_lr, arch_lr: Adam steps of the
    network and architecture weights; batch_size: mini-batch size."""

    epochs: int = 10
    weight_lr: float = 3e-3
    arch_lr: float = 3e-2
    batch_size: int = 64

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("epochs", self.epochs, 1)
        check_int("batch_size", self.batch_size, 1)
        check_positive("weight_lr", self.weight_lr)
        check_positive("arch_lr", self.arch_lr)


class MixedOp(nn.Module):
    """The softmax(alpha)-weighted sum of candidate operations (shape preserving)."""

    def __init__(self, channels: int, names) -> None:
        super().__init__()
        from edgefit.search.nas.builders import make_operation

        self.names = list(names)
        self.ops = nn.ModuleList(make_operation(n, channels) for n in self.names)
        self.alpha = nn.Parameter(torch.zeros(len(self.names)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.softmax(self.alpha, 0)
        return sum(wi * op(x) for wi, op in zip(w, self.ops, strict=True))


class SuperCell(nn.Module):
    """Every node: MixedOp over its op choices of a softmax-weighted mix of its input choices."""

    def __init__(self, channels: int, space, nodes: int) -> None:
        super().__init__()
        self.mixed = nn.ModuleList(MixedOp(channels, space.params[f"node{i}.op"]) for i in range(1, nodes + 1))
        self.sources = [list(space.params.get(f"node{i}.input", (0,))) for i in range(1, nodes + 1)]
        self.beta = nn.ParameterList(nn.Parameter(torch.zeros(len(s))) for s in self.sources)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states = [x]
        for op, src, beta in zip(self.mixed, self.sources, self.beta, strict=True):
            w = torch.softmax(beta, 0)
            states.append(op(sum(wi * states[j] for wi, j in zip(w, src, strict=True))))
        return sum(states[1:])


def build_supernet(space) -> nn.Module:
    """The one-shot supernet of a ``cell`` space (same stem, reductions and head as its networks)."""
    from edgefit.search.nas.builders import ClassifierHead
    from edgefit.zoo.blocks import ConvBNAct

    if space.builder != "cell":
        raise ConfigError(
            f"darts needs a cell space (operations mixed in a supernet); space {space.name!r} uses builder {space.builder!r}"
        )
    o = space.options
    channels, nodes = int(o.get("channels", 16)), int(o["nodes"])
    layers: list[nn.Module] = [ConvBNAct(int(o.get("in_channels", 3)), channels, 3)]
    for c in range(int(o.get("cells", 2))):
        if c:
            layers.append(nn.MaxPool2d(2))
        layers.append(SuperCell(channels, space, nodes))
    return nn.Sequential(nn.Sequential(*layers), ClassifierHead(channels, int(o.get("num_classes", 10))))


def split_parameters(model: nn.Module) -> tuple[list, list]:
    """(architecture weights, network weights) of a supernet."""
    arch = [p for n, p in model.named_parameters() if n.rsplit(".", 1)[-1] in ("alpha",) or ".beta." in n]
    ids = {id(p) for p in arch}
    return arch, [p for p in model.parameters() if id(p) not in ids]


def learn_architecture(model, loss_fn, train_batches, val_batches, *, arch_lr: float, weight_lr: float, epochs: int):
    """First-order DARTS: alternate a weight step on a training batch and an
    architecture step on a validation batch. Batches are callables returning an
    iterable (a fresh pass each epoch); an epoch lasts as many steps as the shorter."""
    arch, weights = split_parameters(model)
    opt_a = torch.optim.Adam(arch, lr=arch_lr, betas=(0.5, 0.999))
    opt_w = torch.optim.Adam(weights, lr=weight_lr) if weights else None
    model.train()
    for _ in range(epochs):
        for (xt, yt), (xv, yv) in zip(train_batches(), val_batches(), strict=False):
            if opt_w is not None:
                opt_w.zero_grad(set_to_none=True)
                loss_fn(model(xt), yt).backward()
                opt_w.step()
            opt_a.zero_grad(set_to_none=True)
            loss_fn(model(xv), yv).backward()
            opt_a.step()
    model.eval()


def architecture_weights(model: nn.Module, space) -> dict[str, list[float]]:
    """param name -> softmax probabilities of its choices, averaged over the stacked cells."""
    cells = [m for m in model.modules() if isinstance(m, SuperCell)]
    out: dict[str, list[float]] = {}
    for i in range(len(cells[0].mixed)):
        for key, weights in ((f"node{i + 1}.op", [c.mixed[i].alpha for c in cells]),
                             (f"node{i + 1}.input", [c.beta[i] for c in cells])):
            if key in space.params:
                probs = sum(torch.softmax(w.detach(), 0) for w in weights) / len(weights)
                out[key] = [float(x) for x in probs]
    return out


def train_supernet(space, data, config: DartsConfig, threads: int = 1) -> dict[str, list[float]]:
    """Train the supernet of ``space`` on ``data`` (train split for weights, test split
    as the validation set for the architecture) and return the choice probabilities."""
    from edgefit.data import torch_threads
    from edgefit.data.train import iterate_batches

    with torch_threads(threads):
        torch.manual_seed(config.seed)
        model = build_supernet(space)
        gen = torch.Generator().manual_seed(config.seed)
        xt, yt = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
        xv, yv = torch.from_numpy(data.x_test), torch.from_numpy(data.y_test)
        learn_architecture(
            model, nn.CrossEntropyLoss(),
            lambda: iterate_batches(xt, yt, config.batch_size, gen),
            lambda: iterate_batches(xv, yv, config.batch_size, gen),
            arch_lr=config.arch_lr, weight_lr=config.weight_lr, epochs=config.epochs,
        )
    return architecture_weights(model, space)


class DartsSampler(ProposalSampler):
    """Proposes the argmax architecture, then samples from the learned probabilities."""

    def __init__(self, space, seed: int, probs: dict[str, list[float]]) -> None:
        super().__init__(space, seed)
        self.probs = probs

    def derived(self) -> dict:
        arch = self.space.smallest()
        for key, p in self.probs.items():
            arch[key] = self.space.params[key][max(range(len(p)), key=p.__getitem__)]
        return arch

    def propose(self, history, scores, seen, rng):
        best = self.derived()
        if arch_key(best) not in seen:
            return best
        for _ in range(100):
            arch = {k: rng.choices(v, weights=self.probs.get(k) or [1.0] * len(v))[0] for k, v in self.space.params.items()}
            if arch_key(arch) not in seen:
                return arch
        return self.unseen_random(seen, rng)


@register_optimizer("darts", DartsConfig)
def _darts(config: DartsConfig, space, context):
    build_supernet(space)  # fails early on a space it cannot relax
    study = context.study
    stored = study.user_attrs.get("darts_probs")
    if stored is None:
        start = time.perf_counter()
        probs = train_supernet(space, context.search_data(), config, context.threads)
        study.set_user_attr("darts_probs", json.dumps(probs))
        study.set_user_attr("darts_supernet_seconds", time.perf_counter() - start)
    else:
        probs = json.loads(stored)
    return DartsSampler(space, config.seed, probs)
