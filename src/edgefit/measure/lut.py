"""A NetAdapt-style latency lookup table: measure each distinct layer once, predict by summing.

Every profile row becomes a *layer configuration*: its kind, input shapes,
attributes (stride, padding, groups, kernel...), the module's ``extra_repr``
(channels, bias...), the dtype and the thread count. The first time a
configuration is seen it is measured on the host — the leaf module is taken
from the model (``model.get_submodule(row.name)``) and timed on random inputs of
``row.input_shapes`` — and the median is stored in SQLite under the cache dir,
so later runs and other models reuse it. A model's predicted latency is the sum
of its rows.

Rows of container modules hold only functional ops (a residual ``add``,
``flatten``): view-like ops are predicted as free, elementwise binary ops are
timed as ``a + b`` on tensors of the row's output shape, and anything else is
reported as unpredicted rather than guessed.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edgefit.errors import ConfigError
from edgefit.measure.latency import (
    LatencyStats,
    Timer,
    measure_latency,
    random_inputs,
    time_callable,
)

_VIEW_OPS = frozenset(
    {
        "view",
        "_unsafe_view",
        "reshape",
        "flatten",
        "permute",
        "transpose",
        "t",
        "expand",
        "squeeze",
        "unsqueeze",
        "detach",
        "alias",
        "slice",
        "select",
        "split",
        "chunk",
        "unbind",
        "contiguous",
        "clone",
        "empty",
        "dropout",
        "identity",
        "lift_fresh",
    }
)
_BINARY_OPS = frozenset(
    {"add", "add_", "mul", "mul_", "sub", "sub_", "div", "div_", "relu", "relu_"}
)

SCHEMA = "CREATE TABLE IF NOT EXISTS latency (key TEXT PRIMARY KEY, seconds REAL NOT NULL, runs INTEGER NOT NULL, created REAL NOT NULL)"


def default_lut_path() -> Path:
    from edgefit.measure.calibrate import cache_dir

    return cache_dir() / "latency_lut.sqlite"


def _dtype_name(model) -> str:
    for p in model.parameters():
        return str(p.dtype).removeprefix("torch.")
    return "float32"


def layer_key(
    row, module=None, *, input_shapes=None, dtype: str = "float32", threads: int | None = None
) -> str:
    """The lookup-table key of one call of a profile row: a canonical JSON string.

    ``input_shapes`` overrides the row's (a module called several times with
    different shapes gets one key per shape).

    >>> from types import SimpleNamespace as R
    >>> layer_key(R(kind="ReLU", ops=("relu",), input_shapes=((1, 8),), attributes={}, output_shape=(1, 8)), threads=1)
    '{"attributes": {}, "dtype": "float32", "input_shapes": [[1, 8]], "kind": "ReLU", "module": "", "ops": ["relu"], "threads": 1}'
    """
    if threads is None:
        import torch

        threads = torch.get_num_threads()
    shapes = row.input_shapes if input_shapes is None else input_shapes
    key = {
        "kind": row.kind,
        "ops": list(row.ops),
        "input_shapes": [list(s) for s in shapes],
        "attributes": {k: row.attributes[k] for k in sorted(row.attributes)},
        "module": module.extra_repr() if module is not None else "",
        "dtype": dtype,
        "threads": threads,
    }
    if module is None:  # functional rows are timed on their output shape
        key["output_shape"] = list(row.output_shape) if row.output_shape is not None else None
    return json.dumps(key, sort_keys=True, default=str)


class LatencyTable:
    """Per-layer latencies in SQLite, measured on demand.

    Args:
        path: the database file (default: ``<cache dir>/latency_lut.sqlite``).
        warmup, runs: timing of each new configuration (median of ``runs``).
        timer: the clock; tests pass a fake one.
        min_sample_s: each sample loops the layer for about this long.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        warmup: int = 3,
        runs: int = 15,
        timer: Timer = time.perf_counter,
        min_sample_s: float = 2e-3,
    ) -> None:
        self.path = Path(path) if path is not None else default_lut_path()
        self.warmup, self.runs, self.timer, self.min_sample_s = warmup, runs, timer, min_sample_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute(SCHEMA)
        self.measured = 0  # configurations measured by this instance
        self.hits = 0

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def __len__(self) -> int:
        with self._connect() as db:
            return db.execute("SELECT COUNT(*) FROM latency").fetchone()[0]

    def get(self, key: str) -> float | None:
        with self._connect() as db:
            row = db.execute("SELECT seconds FROM latency WHERE key = ?", (key,)).fetchone()
        return None if row is None else float(row[0])

    def put(self, key: str, seconds: float, runs: int) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO latency (key, seconds, runs, created) VALUES (?, ?, ?, ?)",
                (key, float(seconds), int(runs), time.time()),
            )

    def lookup_or_measure(self, key: str, fn: Callable[[], object]) -> tuple[float, bool]:
        """The stored seconds for ``key``, measuring ``fn`` first if absent; (seconds, was_cached)."""
        cached = self.get(key)
        if cached is not None:
            self.hits += 1
            return cached, True
        stats = time_callable(
            fn, warmup=self.warmup, runs=self.runs, timer=self.timer, min_sample_s=self.min_sample_s
        )
        self.put(key, stats.median_s, stats.runs)
        self.measured += 1
        return stats.median_s, False


@dataclass(frozen=True)
class LayerPrediction:
    """The predicted latency of one profile row (``seconds`` is None when unpredicted)."""

    name: str
    kind: str
    seconds: float | None
    cached: bool
    reason: str = ""


@dataclass(frozen=True)
class Prediction:
    """A model's predicted latency as the sum of its layers, optionally beside a measurement.

    Attributes:
        model: the profile's model label.
        layers: one `LayerPrediction` per profile row.
        seconds: the sum of the predicted rows.
        measured: the end-to-end measurement, when taken.
        measured_configs, cached_configs: new and reused table entries.
    """

    model: str
    layers: tuple[LayerPrediction, ...]
    seconds: float
    measured: LatencyStats | None = None
    measured_configs: int = 0
    cached_configs: int = 0
    notes: tuple[str, ...] = field(default=())

    @property
    def unpredicted(self) -> tuple[str, ...]:
        return tuple(r.name or "(root)" for r in self.layers if r.seconds is None)

    @property
    def error(self) -> float | None:
        """(predicted - measured) / measured, or None without a measurement."""
        if self.measured is None or self.measured.median_s <= 0:
            return None
        return (self.seconds - self.measured.median_s) / self.measured.median_s

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "predicted_s": self.seconds,
            "measured": self.measured.to_dict() if self.measured else None,
            "error": self.error,
            "unpredicted": list(self.unpredicted),
            "measured_configs": self.measured_configs,
            "cached_configs": self.cached_configs,
            "layers": [
                {
                    "name": r.name,
                    "kind": r.kind,
                    "seconds": r.seconds,
                    "cached": r.cached,
                    "reason": r.reason,
                }
                for r in self.layers
            ],
        }


def _split_calls(row) -> list[tuple[tuple[int, ...], ...]]:
    shapes = tuple(tuple(s) for s in row.input_shapes)
    calls = max(1, row.calls)
    if calls > 1 and shapes and len(shapes) % calls == 0:
        per = len(shapes) // calls
        return [shapes[i * per : (i + 1) * per] for i in range(calls)]
    return [shapes]


def _is_leaf(module) -> bool:
    return next(iter(module.children()), None) is None


def _row_parts(row, module, dtype: str, threads: int):
    """[(key, zero-argument callable)] whose times sum to the row's, or (None, reason)."""
    import torch

    if module is not None and _is_leaf(module):
        parts = []
        dt = "int64" if row.kind == "Embedding" else dtype
        for shapes in _split_calls(row):
            inputs = random_inputs(shapes, dt, vocab=getattr(module, "num_embeddings", 100))
            key = layer_key(row, module, input_shapes=shapes, dtype=dtype, threads=threads)
            parts.append((key, (lambda inputs=inputs: module(*inputs))))
        return parts, ""
    ops = [op for op in row.ops if op not in _VIEW_OPS]
    key = layer_key(row, None, dtype=dtype, threads=threads)
    if not ops:
        return [], ""  # views only: free
    if all(op in _BINARY_OPS for op in ops) and row.output_shape is not None:
        a, b = random_inputs([row.output_shape, row.output_shape], dtype)
        n = len(ops)
        return [(key, lambda: [torch.add(a, b) for _ in range(n)])], ""
    return None, f"functional ops {', '.join(sorted(set(ops)))} in a container module"


def predict_latency(
    model,
    profile=None,
    *,
    input_shape: Sequence[int] | None = None,
    input_dtype: str = "float32",
    table: LatencyTable | None = None,
    measure: bool = True,
    warmup: int = 5,
    runs: int = 20,
    timer: Timer = time.perf_counter,
) -> Prediction:
    """Predict ``model``'s host latency from the lookup table and, with ``measure``, measure it.

    Args:
        model: the module (its leaf modules are timed).
        profile: its `Profile`; profiled at ``input_shape`` when omitted.
        table: the `LatencyTable` (default: the one in the cache dir).
        measure: also time the whole model end to end (``warmup``, ``runs``).
    """
    import torch

    if profile is None:
        if input_shape is None:
            raise ConfigError("predict_latency needs a profile or an input_shape")
        from edgefit.metrics import profile as make_profile

        profile = make_profile(model, input_shape=tuple(input_shape))
    table = table if table is not None else LatencyTable(timer=timer)
    dtype = _dtype_name(model)
    threads = torch.get_num_threads()
    model.eval()
    before_measured, before_hits = table.measured, table.hits
    rows: list[LayerPrediction] = []
    with torch.inference_mode():
        for row in profile.layers:
            try:
                module = model.get_submodule(row.name) if row.name else model
            except AttributeError:
                module = None
            parts, reason = _row_parts(row, module, dtype, threads)
            if parts is None:
                rows.append(LayerPrediction(row.name, row.kind, None, False, reason))
                continue
            try:
                timed = [table.lookup_or_measure(key, fn) for key, fn in parts]
            except (RuntimeError, TypeError, ValueError, IndexError) as exc:
                rows.append(
                    LayerPrediction(
                        row.name, row.kind, None, False, f"could not run alone: {exc}"[:200]
                    )
                )
                continue
            seconds = sum(t for t, _ in timed)
            rows.append(LayerPrediction(row.name, row.kind, seconds, all(c for _, c in timed)))
    measured = None
    if measure:
        shapes = profile.input_shapes
        measured = measure_latency(
            model, random_inputs(shapes, input_dtype), warmup=warmup, runs=runs, timer=timer
        )
    return Prediction(
        model=profile.model,
        layers=tuple(rows),
        seconds=sum(r.seconds for r in rows if r.seconds is not None),
        measured=measured,
        measured_configs=table.measured - before_measured,
        cached_configs=table.hits - before_hits,
    )
