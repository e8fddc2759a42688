"""Train, compress, report: the whole Deep Compression flow as one call, and over seeds.

`run_recipe` is what ``edgefit compress`` and ``edgefit demo`` run: train the dense
model (or load its weights), run `deep_compress`, write the ``.efz`` and build the
per-stage report. `run_recipe_seeds` repeats it from scratch for several seeds and
gives every figure as a mean with its spread (`edgefit.data.stats.Spread`): on the
360-image digits test split one image is 0.28 pp, so one run's accuracy is not a claim.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
from torch import nn

from edgefit.compress.pipeline import DeepCompressionConfig, deep_compress
from edgefit.compress.report import CompressionReport, build_report
from edgefit.data.stats import MIN_SEEDS, Spread
from edgefit.errors import ConfigError

EpochCallback = Callable[[int, float, float], None]


def _train_dense(model: nn.Module, data, epochs: int, config: DeepCompressionConfig, on_epoch) -> None:
    from edgefit.data import TrainConfig, train

    train(model, data, TrainConfig(epochs=epochs, lr=config.lr, batch_size=config.batch_size,
                                   seed=config.seed, threads=config.threads), on_epoch=on_epoch)


def run_recipe(
    model: nn.Module | str,
    data,
    config: DeepCompressionConfig | None = None,
    *,
    weights: str | os.PathLike | None = None,
    dense_epochs: int = 40,
    output: str | os.PathLike | None = None,
    name: str | None = None,
    on_train_epoch: EpochCallback | None = None,
) -> CompressionReport:
    """Train (or load) a dense model, Deep-Compress it, write the ``.efz``, report every stage.

    Args:
        model: an ``nn.Module``, or a spec for `edgefit.zoo.resolve_model` (``zoo:NAME``,
            ``file.py:fn``...), built after seeding with ``config.seed``.
        data: an `edgefit.data.ArrayDataset`.
        config: the recipe (``DeepCompressionConfig()`` by default).
        weights: trained fp32 weights (``.safetensors``) instead of dense training.
        dense_epochs: dense training epochs when no ``weights`` are given.
        output: where the final ``.efz`` goes (default: a temporary file).
        name: the model's name in the report. Default: the spec's name (a zoo name is
            recorded in the file so `load_compressed` can rebuild the model), else the
            class name.
        on_train_epoch: progress callback of the dense training.
    """
    from edgefit.data.train import check_model_fits

    cfg = config or DeepCompressionConfig()
    spec_name, from_zoo = type(model).__name__, False
    torch.manual_seed(cfg.seed)
    if isinstance(model, str):
        from edgefit.zoo import resolve_model

        resolved = resolve_model(model)
        model, spec_name, from_zoo = resolved.model, resolved.name, resolved.from_zoo
    t0 = time.perf_counter()
    if weights is not None:
        from edgefit.data import load_weights_

        load_weights_(model, weights)
        check_model_fits(model, data)
    else:
        _train_dense(model, data, dense_epochs, cfg, on_train_epoch)
    t_dense = time.perf_counter() - t0
    result = deep_compress(model, data, cfg)
    result.seconds = {"dense training": t_dense, **result.seconds}
    # A user model cannot be rebuilt from the file without running code: record no zoo name.
    return build_report(result, data, model_name=name or spec_name, output=output,
                        index_bits=cfg.index_bits, zoo=from_zoo and name in (None, spec_name))


@dataclass(frozen=True)
class SeedRuns:
    """One recipe run from scratch once per seed.

    Attributes:
        seeds: the seeds, in order.
        reports: one `CompressionReport` per seed.
    """

    seeds: tuple[int, ...]
    reports: tuple[CompressionReport, ...]

    def accuracy(self, stage: str = "P+Q+H") -> Spread:
        """Test accuracy of ``stage`` (``dense``, ``P``, ``P+Q``, ``P+Q+H``) over seeds."""
        return Spread.of(r.accuracy[stage] for r in self.reports)

    def drop_pp(self) -> Spread:
        """Compressed minus dense accuracy, in percentage points, per seed."""
        return Spread.of(100 * (r.accuracy["P+Q+H"] - r.accuracy["dense"]) for r in self.reports)

    def ratio(self, stage: str = "P+Q+H") -> Spread:
        """On-disk compression ratio of ``stage`` over seeds."""
        return Spread.of(r.ratio(stage) for r in self.reports)

    @property
    def exact(self) -> bool:
        """Every seed's file loaded back bit-exact."""
        return all(r.exact for r in self.reports)

    def summary(self) -> str:
        """The figures over seeds, one per line: accuracy by stage, the change and the ratio."""
        seeds = ", ".join(str(s) for s in self.seeds)
        lines = [f"over seeds {seeds} (mean (min..max, std)):"]
        for stage in ("dense", "P+Q+H"):
            lines.append(f"  test accuracy {stage}: {self.accuracy(stage).percent()}")
        lines.append(f"  compressed - dense: {self.drop_pp().percent(1.0, ' pp')}")
        lines.append(f"  size reduction: {self.ratio().percent(1.0, 'x')}")
        return "\n".join(lines)


def run_recipe_seeds(
    name: str,
    data,
    config: DeepCompressionConfig | None = None,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    dense_epochs: int = 40,
    on_seed: Callable[[int, CompressionReport], None] | None = None,
    output: str | os.PathLike | None = None,
) -> SeedRuns:
    """`run_recipe` on the zoo model ``name`` from scratch for each seed (init, batches, k-means).

    Args:
        name: a zoo model name.
        data: the dataset.
        config: the recipe; its ``seed`` is replaced by each of ``seeds``.
        seeds: at least three distinct seeds.
        dense_epochs: dense training epochs.
        on_seed: called as ``on_seed(seed, report)`` after each run.
        output: where the first seed's ``.efz`` goes (default: temporary files only).

    Raises:
        ConfigError: fewer than three distinct seeds.
    """
    seeds = tuple(seeds)
    if len(set(seeds)) < MIN_SEEDS or len(set(seeds)) != len(seeds):
        raise ConfigError(f"need at least {MIN_SEEDS} distinct seeds, got {list(seeds)}")
    cfg = config or DeepCompressionConfig()
    reports = []
    for i, seed in enumerate(seeds):
        rep = run_recipe(f"zoo:{name}", data, replace(cfg, seed=seed), dense_epochs=dense_epochs,
                         output=output if i == 0 else None)
        reports.append(rep)
        if on_seed:
            on_seed(seed, rep)
    return SeedRuns(seeds, tuple(reports))
