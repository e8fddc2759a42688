"""The Deep Compression pipeline (Han et al., ICLR 2016, Fig. 1): prune with
retraining, k-means weight sharing with centroid fine-tuning, then Huffman
coding into an ``.efz`` file; every stage's accuracy is measured.

>>> from edgefit.compress.pipeline import DeepCompressionConfig, deep_compress
>>> cfg = DeepCompressionConfig(prune=0.95, bits=4)
>>> # result = deep_compress(model, load_digits(), cfg)
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import torch
from torch import nn

from edgefit.compress._layers import check_each, check_fraction, check_int_range
from edgefit.compress.prune.schedule import GradualConfig, prune_gradually_
from edgefit.compress.quantize.kmeans import (
    KMEANS_BITS,
    KMeansConfig,
    finetune_centroids_,
    kmeans_quantize_,
)
from edgefit.errors import ConfigError

_INITS = ("linear", "density", "random")


@dataclass(frozen=True)
class DeepCompressionConfig:
    """A whole Deep Compression recipe.

    Attributes:
        prune: final sparsity, one value or ``{layer: value}`` (layers not named
            are left dense); ``0`` skips pruning.
        prune_steps: gradual (AGP) pruning steps.
        prune_epochs: retraining epochs after each step.
        prune_final_epochs: extra retraining epochs after the last step.
        cleanup: zero the connections of dead neurons after each pruning step.
        bits: k-means index bits, one value or ``{layer: bits}`` (1..16).
        init: centroid initialization: ``linear`` (paper), ``density``, ``random``.
        finetune_epochs: centroid fine-tuning epochs.
        index_bits: relative index width, one value or ``{layer: bits}``; ``None``
            picks the smallest per layer (2..8 bits).
        lr: retraining learning rate (Adam).
        finetune_lr: centroid fine-tuning learning rate (Adam).
        batch_size: mini-batch size.
        seed: seeds every stage.
        threads: torch threads.
    """

    prune: float | Mapping[str, float] = 0.9
    prune_steps: int = 4
    prune_epochs: int = 8
    prune_final_epochs: int = 20
    cleanup: bool = True
    bits: int | Mapping[str, int] = 4
    init: str = "linear"
    finetune_epochs: int = 10
    index_bits: int | Mapping[str, int] | None = None
    lr: float = 1e-3
    finetune_lr: float = 1e-4
    batch_size: int = 64
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        check_each(self.prune, check_fraction, "prune")
        check_each(self.bits, check_int_range(*KMEANS_BITS), "bits")
        if self.index_bits is not None:
            check_each(self.index_bits, check_int_range(1, 16), "index_bits")
        if self.init not in _INITS:
            raise ConfigError(f"init must be one of {_INITS}, got {self.init!r}")
        for k in ("prune_steps",):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{k} must be an integer >= 1, got {v!r}")
        for k in ("prune_epochs", "prune_final_epochs", "finetune_epochs", "seed"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ConfigError(f"{k} must be an integer >= 0, got {v!r}")
        for k in ("lr", "finetune_lr"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ConfigError(f"{k} must be a number > 0, got {v!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")

    @classmethod
    def from_dict(cls, d: Mapping) -> DeepCompressionConfig:
        """Build from a recipe mapping; unknown keys are an error naming the known ones."""
        if not isinstance(d, Mapping):
            raise ConfigError(f"a recipe must be a mapping of options, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        bad = sorted(set(d) - known)
        if bad:
            raise ConfigError(f"unknown recipe keys {bad}; known: {', '.join(sorted(known))}")
        return cls(**dict(d))

    @classmethod
    def from_file(cls, path: str | Path) -> DeepCompressionConfig:
        """Load a ``.json`` or ``.yaml`` recipe (YAML via ``yaml.safe_load``)."""
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"recipe file {str(p)!r} does not exist")
        try:
            text = p.read_text()
            if p.suffix.lower() in (".yaml", ".yml"):
                import yaml

                d = yaml.safe_load(text)
            else:
                d = json.loads(text)
        except Exception as exc:
            # YAML errors span several lines (a caret drawing); the CLI prints one.
            detail = " ".join(str(exc).split())[:160]
            raise ConfigError(f"{p.name}: cannot parse the recipe ({type(exc).__name__}: {detail})") from exc
        return cls.from_dict(d or {})

    def to_dict(self) -> dict:
        return {f.name: (dict(v) if isinstance(v := getattr(self, f.name), Mapping) else v) for f in fields(self)}


@dataclass
class DeepCompressionResult:
    """The compressed model and what each stage did.

    Attributes:
        model: the pruned, quantized, fine-tuned model (in place of the input).
        dense_state: state dict before compression.
        pruned_state: state dict after pruning and retraining.
        accuracy: test accuracy per stage: ``dense``, ``pruned``, ``quantized``.
        seconds: wall time per stage.
        config: the recipe.
    """

    model: nn.Module
    dense_state: dict[str, torch.Tensor]
    pruned_state: dict[str, torch.Tensor]
    accuracy: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    config: DeepCompressionConfig | None = None


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def deep_compress(
    model: nn.Module,
    data,
    config: DeepCompressionConfig | None = None,
    *,
    on_stage: Callable[[str, float], None] | None = None,
    on_epoch: Callable[[int, float, float], None] | None = None,
) -> DeepCompressionResult:
    """Prune (gradually, retraining with fixed masks), quantize by k-means and
    fine-tune the centroids, in place. Write the file with
    :func:`edgefit.compress.save_compressed` (Huffman coding is lossless).

    Args:
        model: a trained dense model.
        data: :class:`edgefit.data.ArrayDataset`.
        config: the recipe.
        on_stage: called as ``on_stage(stage, accuracy)`` after each stage.
        on_epoch: passed to every training loop (progress bars).
    """
    from edgefit.data.train import TrainConfig, evaluate

    cfg = config or DeepCompressionConfig()
    tc = TrainConfig(lr=cfg.lr, batch_size=cfg.batch_size, seed=cfg.seed, threads=cfg.threads)
    res = DeepCompressionResult(model, _state(model), {}, config=cfg)
    res.accuracy["dense"] = evaluate(model, data)
    if on_stage:
        on_stage("dense", res.accuracy["dense"])
    t = time.perf_counter()
    prune_all_zero = not isinstance(cfg.prune, Mapping) and cfg.prune == 0
    if not prune_all_zero:
        sched = GradualConfig(sparsity=cfg.prune, steps=cfg.prune_steps, epochs_per_step=cfg.prune_epochs,
                              final_epochs=cfg.prune_final_epochs, cleanup=cfg.cleanup)
        prune_gradually_(model, data, sched, tc)
    res.pruned_state = _state(model)
    res.seconds["prune"] = time.perf_counter() - t
    res.accuracy["pruned"] = evaluate(model, data)
    if on_stage:
        on_stage("pruned", res.accuracy["pruned"])
    t = time.perf_counter()
    kmeans_quantize_(model, KMeansConfig(bits=cfg.bits, init=cfg.init, seed=cfg.seed))
    if cfg.finetune_epochs:
        finetune_centroids_(model, data, replace(tc, epochs=cfg.finetune_epochs, lr=cfg.finetune_lr),
                            on_epoch=on_epoch)
    res.seconds["quantize"] = time.perf_counter() - t
    res.accuracy["quantized"] = evaluate(model, data)
    if on_stage:
        on_stage("quantized", res.accuracy["quantized"])
    return res


def copy_model(model: nn.Module) -> nn.Module:
    """A deep copy without the quantization state attached to modules."""
    m = copy.deepcopy(model)
    for mod in m.modules():
        for attr in ("edgefit_kmeans", "edgefit_linear"):
            if hasattr(mod, attr):
                delattr(mod, attr)
    return m
