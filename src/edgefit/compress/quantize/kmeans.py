"""Trained quantization by k-means weight sharing (Han et al., Deep Compression,
ICLR 2016, Sec. 3; reference/004 "Non Uniform Quantization / Weight Sharing").

Per layer, the nonzero weights are clustered into ``k = 2**bits`` centroids that
minimize ``sum_i sum_j ||w_i - c_j||^2`` over members; each weight is replaced by
its centroid and stored as a ``bits``-bit index into the layer's codebook.

* Pruned weights stay exactly zero: k-means runs over the nonzero weights only,
  zeros are labelled ``-1`` and never get a centroid.
* Initialization (paper Sec. 3.2): ``"linear"`` (default, the paper's best)
  spaces the centroids evenly between the min and max weight; ``"density"``
  places them at evenly spaced quantiles of the weights' CDF; ``"random"``
  picks ``k`` weights with a seeded generator.
* When a layer has no more than ``k`` distinct nonzero values they become the
  codebook as they are (re-quantizing is lossless).
* Fine-tuning (paper Sec. 3.3): each centroid moves by the sum of the gradients
  of the weights that share it, ``dL/dc_k = sum_{ij} dL/dW_ij 1(I_ij = k)``.
* Activations (``act_bits``, optional): the lectures' summary table runs weight
  sharing with 16-bit activations. Each quantized layer's input goes through the
  linear family's calibrated uniform quantizer (:class:`.activation.UniformAct`,
  range by ``minmax``, ``percentile`` or ``mse`` on calibration data seen by the
  float model), installed as a forward pre-hook and stored in the ``.efz``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from edgefit.compress._layers import check_each, check_int_range, per_layer, select_layers
from edgefit.compress.quantize._family import calibrate_inputs, check_bits
from edgefit.compress.quantize.activation import CALIBRATION_METHODS, UniformAct
from edgefit.errors import ConfigError

_INITS = ("linear", "density", "random")
KMEANS_BITS = (1, 16)
KMEANS_ACT_BITS = (2, 16)  # the linear family's uniform activation widths


@dataclass(frozen=True)
class KMeansConfig:
    """K-means weight sharing options.

    Attributes:
        bits: index bits per layer, 1..16 (``2**bits`` centroids), one value or
            ``{layer: bits}`` (the paper: 8 for conv, 5 for fc).
        init: ``"linear"``, ``"density"`` or ``"random"``.
        max_iter: Lloyd iterations at most.
        seed: for ``init="random"``.
        layers: layers to quantize (default: all Linear/Conv, or the keys of a mapping).
        act_bits: uniform activation bits of each quantized layer's input, 2..16
            (the lectures: 16), calibrated on data; None keeps float activations.
        calibration: activation range method: ``minmax``, ``percentile`` or ``mse``.
    """

    bits: int | Mapping[str, int] = 5
    init: str = "linear"
    max_iter: int = 100
    seed: int = 0
    layers: tuple[str, ...] | None = None
    act_bits: int | None = None
    calibration: str = "minmax"

    family = "kmeans"

    def __post_init__(self) -> None:
        check_each(self.bits, check_int_range(*KMEANS_BITS), "bits")
        if self.act_bits is not None:
            check_bits(self.act_bits, *KMEANS_ACT_BITS, "activations", self.family)
        if self.calibration not in CALIBRATION_METHODS:
            raise ConfigError(f"calibration must be one of {CALIBRATION_METHODS}, got {self.calibration!r}")
        if self.init not in _INITS:
            raise ConfigError(f"init must be one of {_INITS}, got {self.init!r}")
        if not isinstance(self.max_iter, int) or self.max_iter < 1:
            raise ConfigError(f"max_iter must be an integer >= 1, got {self.max_iter!r}")
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(self.layers))


@dataclass
class KMeansState:
    """One quantized layer: ``weight == where(labels >= 0, codebook[labels], 0)``.

    Attributes:
        codebook: float32 centroids, sorted ascending, at most ``2**bits``.
        labels: int64, the weight's shape; ``-1`` marks a pruned (zero) weight.
        bits: the configured index width.
        act: JSON spec of the layer's activation quantizer (None: float activations).
        act_bits: activation bits (32 when float).
    """

    codebook: torch.Tensor
    labels: torch.Tensor
    bits: int
    act: dict | None = None
    act_bits: int = 32

    def weight(self) -> torch.Tensor:
        """The shared weights as a float32 tensor (pruned entries are +0.0)."""
        w = self.codebook[self.labels.clamp(min=0)]
        return torch.where(self.labels >= 0, w, torch.zeros((), dtype=w.dtype))


def _init_centroids(x: np.ndarray, k: int, init: str, seed: int) -> np.ndarray:
    if init == "linear":
        return np.linspace(x.min(), x.max(), k)
    if init == "density":
        return np.quantile(x, np.linspace(0.0, 1.0, k))
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(x, size=k, replace=len(x) < k))


def _assign(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Nearest centroid for each value (centroids sorted ascending)."""
    mids = (centroids[1:] + centroids[:-1]) / 2
    return np.searchsorted(mids, x, side="left")


def kmeans_1d(
    values: np.ndarray, k: int, init: str = "linear", max_iter: int = 100, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means on scalars; returns (float32 sorted centroids, labels).

    Empty clusters keep their previous position. With ``k`` or fewer distinct
    values the distinct values themselves are returned.

    >>> c, lab = kmeans_1d(np.array([0.1, 0.11, 0.9, 1.0]), 2)
    >>> [round(v, 3) for v in c.tolist()], lab.tolist()
    ([0.105, 0.95], [0, 0, 1, 1])
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    uniq = np.unique(x.astype(np.float32))
    if len(uniq) <= k:
        return uniq, np.searchsorted(uniq, x.astype(np.float32)).astype(np.int64)
    c = np.sort(_init_centroids(x, k, init, seed).astype(np.float64))
    for _ in range(max_iter):
        lab = _assign(x, c)
        sums = np.bincount(lab, weights=x, minlength=k)
        counts = np.bincount(lab, minlength=k)
        new = np.where(counts > 0, sums / np.maximum(counts, 1), c)
        new.sort()
        if np.allclose(new, c, rtol=0, atol=1e-12):
            c = new
            break
        c = new
    c32 = c.astype(np.float32)
    return c32, _assign(x, c32.astype(np.float64)).astype(np.int64)


def kmeans_quantize_(model: nn.Module, config: KMeansConfig, *, calibration=None) -> dict[str, KMeansState]:
    """Share weights per layer in place; returns ``{layer: KMeansState}``.

    The state is also kept on the module as ``module.edgefit_kmeans`` so that the
    file writer and fine-tuning find it. With ``config.act_bits``, each layer's
    input range is calibrated on ``calibration`` (inputs or a dataset) through
    the float model first, then its activation quantizer is installed.
    """
    names = config.layers or (tuple(config.bits) if isinstance(config.bits, Mapping) else None)
    layers = select_layers(model, names)
    stats = {}
    if config.act_bits is not None:
        stats = calibrate_inputs(model, list(layers), calibration, f"kmeans activation quantization (act_bits={config.act_bits})")
    states = {}
    for name, bits in per_layer(config.bits, layers, "bits").items():
        m = layers[name]
        w = m.weight.detach().cpu().numpy().astype(np.float32)
        nz = w != 0
        cb, lab = kmeans_1d(w[nz], 2 ** int(bits), config.init, config.max_iter, config.seed)
        labels = np.full(w.shape, -1, dtype=np.int64)
        labels[nz] = lab
        state = KMeansState(torch.from_numpy(cb.copy()), torch.from_numpy(labels), int(bits))
        with torch.no_grad():
            m.weight.copy_(state.weight().to(m.weight.dtype))
        if name in stats:
            act = UniformAct.calibrated(stats[name], config.act_bits, config.calibration)
            act.install(m)
            state.act, state.act_bits = act.spec(), act.bits
        m.edgefit_kmeans = state
        states[name] = state
    return states


def kmeans_states(model: nn.Module) -> dict[str, KMeansState]:
    """The k-means states attached to a model's layers."""
    return {n: m.edgefit_kmeans for n, m in model.named_modules() if hasattr(m, "edgefit_kmeans")}


def finetune_centroids_(model: nn.Module, data, train_config=None, *, on_epoch=None) -> dict[str, KMeansState]:
    """Train the codebooks (and the biases) with the shared-weight gradient rule.

    Every step re-derives each quantized weight from its codebook, back-propagates,
    and gives each centroid the sum of its members' gradients (paper Eq. 3). The
    labels never change, so pruned weights stay zero and each layer keeps at most
    ``2**bits`` distinct values. Biases and unquantized layers train as usual.

    Args:
        model: a model after :func:`kmeans_quantize_`.
        data: an :class:`edgefit.data.ArrayDataset`.
        train_config: :class:`edgefit.data.TrainConfig` (e.g. a few epochs at a low lr).
        on_epoch: passed to :func:`edgefit.data.train`.
    """
    from edgefit.data.train import TrainConfig, train

    states = kmeans_states(model)
    if not states:
        raise ConfigError("the model has no k-means quantized layers; run quantize_ with a KMeansConfig first")
    mods = dict(model.named_modules())
    books = {n: nn.Parameter(s.codebook.clone()) for n, s in states.items()}
    quant_weights = {id(mods[n].weight) for n in states}
    others = [p for p in model.parameters() if id(p) not in quant_weights]
    kept = {n: s.labels >= 0 for n, s in states.items()}

    def sync() -> None:
        with torch.no_grad():
            for n, s in states.items():
                w = books[n].detach()[s.labels.clamp(min=0)]
                mods[n].weight.copy_(torch.where(kept[n], w, torch.zeros((), dtype=w.dtype)))

    def route() -> None:
        for n, s in states.items():
            g = mods[n].weight.grad
            grad = torch.zeros_like(books[n])
            if g is not None:
                grad.index_add_(0, s.labels[kept[n]], g[kept[n]])
                mods[n].weight.grad = None
            books[n].grad = grad

    train(model, data, train_config or TrainConfig(epochs=5, lr=1e-4), params=[*books.values(), *others],
          before_step=sync, after_backward=route, on_epoch=on_epoch)
    sync()
    for n, s in states.items():
        # Fine-tuning may reorder centroids; keep the codebook sorted, labels following.
        cb = books[n].detach().clone()
        order = torch.argsort(cb, stable=True)
        inv = torch.empty_like(order)
        inv[order] = torch.arange(len(order))
        new = KMeansState(cb[order], torch.where(kept[n], inv[s.labels.clamp(min=0)], -1), s.bits, s.act, s.act_bits)
        mods[n].edgefit_kmeans = new
        states[n] = new
    return states


def with_bits(config: KMeansConfig, bits) -> KMeansConfig:
    return replace(config, bits=bits)
