"""A NetAdapt-style latency lookup table: measure each distinct layer once, predict by summing.

Every profile row becomes a *layer configuration*: its kind, input shapes,
attributes (stride, padding, groups, kernel...), the module's ``extra_repr``
(channels, bias...), the dtype, the thread count and the measuring method. The
first time a configuration is seen it is measured on the host and the 10th
percentile of its repeats (the uncontended latency: other jobs on a shared host
only add time, so a low quantile reproduces where a median drifts with the load)
is stored in SQLite under the cache dir, so later runs and other models reuse
it. A model's predicted latency is the sum of its rows.

A layer is timed the way it runs inside a network, not the way it runs alone in
a loop (alone, MobileNetV2's layers summed to ~55% of its end-to-end time):

* *cold caches*: the leaf module (``model.get_submodule(row.name)``) is copied,
  with random inputs of ``row.input_shapes``, enough times that one round over
  the copies touches more than ``rotate_bytes`` (16 MiB, several times a core's
  L2), and the calls rotate over the copies, so weights and inputs come from
  far caches as they do in a network whose working set exceeds L2;
* *the same clock and allocator as the end-to-end measurement*: see
  `edgefit.measure.latency.default_timer` (CPU time of the calling thread with
  one torch thread, which keeps other processes' load out) and
  `edgefit.measure.latency.steady_allocator` (no first-touch page faults that
  depend on the process's history).

Rows of container modules hold only functional ops (a residual ``add``,
``cat``, ``flatten``): view-like ops are predicted as free, elementwise binary ops
are timed as ``a + b`` on tensors of the row's output shape, ``cat`` as the
concatenation of two halves of the output shape, and anything else is reported
as unpredicted rather than guessed.

Two rows hold what no layer's own timing does, each calibrated once per host on a
synthetic network (never a benchmark model) and stored in the table:
``(container calls)``, the Python dispatch of modules with children
(`module_call_overhead`), and, for a model timed hot, ``(leaf calls in a
network)``, what running right after other kernels instead of after itself adds
to each leaf call (`leaf_context_overhead`).
"""

from __future__ import annotations

import copy
import json
import math
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edgefit._io import sqlite_connection
from edgefit.errors import ConfigError
from edgefit.measure.correction import (
    HostCorrection,
    calibrate_correction,
    check_correction_model,
    correction_key,
)
from edgefit.measure.latency import (
    LatencyStats,
    SpeedGate,
    Timer,
    behind_gate,
    conv_canary,
    default_timer,
    faster,
    measure_latency,
    random_inputs,
    steady_allocator,
    time_callable,
)

METHOD = "rotated-v4"  # how entries are measured; part of every key so old entries are not reused
HOT_METHOD = "hot-v3"  # alone in a loop: for models whose whole working set fits in hot_bytes
ROTATE_BYTES = 16 * 2**20  # one round over a layer's copies touches this much (several L2s)
MAX_COPIES = 64
DISTURB_BYTES = 2 * 2**20  # written before each rotated call: about one core's L2
CALL_METHOD = "module-call-v2"
LEAF_METHOD = "leaf-in-network-v2"
MIXED_INPUT = (1, 3, 24, 24)

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

SCHEMA = "CREATE TABLE IF NOT EXISTS latency (key TEXT PRIMARY KEY, seconds REAL NOT NULL, runs INTEGER NOT NULL, created REAL NOT NULL, takes INTEGER NOT NULL DEFAULT 1)"
TAKES_COLUMN = "ALTER TABLE latency ADD COLUMN takes INTEGER NOT NULL DEFAULT 1"  # tables made before it
TEXT_SCHEMA = "CREATE TABLE IF NOT EXISTS calibration (key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)"


def default_lut_path() -> Path:
    from edgefit.measure.calibrate import cache_dir

    return cache_dir() / "latency_lut.sqlite"


def _dtype_name(model) -> str:
    for p in model.parameters():
        return str(p.dtype).removeprefix("torch.")
    return "float32"


def layer_key(
    row,
    module=None,
    *,
    input_shapes=None,
    dtype: str = "float32",
    threads: int | None = None,
    method: str = METHOD,
) -> str:
    """The lookup-table key of one call of a profile row: a canonical JSON string.

    ``input_shapes`` overrides the row's (a module called several times with
    different shapes gets one key per shape).

    >>> from types import SimpleNamespace as R
    >>> layer_key(R(kind="ReLU", ops=("relu",), input_shapes=((1, 8),), attributes={}, output_shape=(1, 8)), threads=1)
    '{"attributes": {}, "dtype": "float32", "input_shapes": [[1, 8]], "kind": "ReLU", "method": "rotated-v4", "module": "", "ops": ["relu"], "output_shape": [1, 8], "threads": 1}'
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
        "method": method,
    }
    if module is None:  # functional rows are timed on their output shape
        key["output_shape"] = list(row.output_shape) if row.output_shape is not None else None
    return json.dumps(key, sort_keys=True, default=str)


class LatencyTable:
    """Per-layer latencies in SQLite, measured on demand.

    Args:
        path: the database file (default: ``<cache dir>/latency_lut.sqlite``).
        warmup, runs: timing of each new configuration (10th percentile of ``runs``).
        timer: the clock (default: `default_timer`, CPU time with one torch thread);
            tests pass a fake one.
        min_sample_s: each sample loops the layer for about this long.
        rotate_bytes: a layer is copied until one round over the copies touches
            this many bytes (weights, buffers, inputs, output), at most 64 copies;
            0 times the layer alone, hot in cache.
        hot_bytes: models whose working set (`working_set_bytes`) is at most this
            are looked up as timed alone and hot (default: ``rotate_bytes``).
        gate: called before each new configuration is measured, e.g. a
            `edgefit.measure.SpeedGate` or `edgefit.measure.wait_until_quiet`, to time
            only while other work leaves the core alone (``gated``/``gate_timeouts``
            count calls and calls that returned False). A gate with a ``steady()``
            method is asked again after each measurement; if the host slowed down
            under it, the configuration is measured again, at most ``retakes`` times
            (``retaken`` counts them).
        second_take_after_s: when set, a lookup of an entry with one take stored at
            least this many seconds ago measures the configuration again (behind the
            gate, as a new one) and keeps the faster of the two takes, marked as two
            takes. Contention on a shared host only ever adds time, so the minimum of
            two takes apart in time drops what a slow episode added to the first.
            ``second_takes`` counts these later takes and ``second_take_ratios`` holds
            each new / kept take. None: never.
        max_takes: the takes an entry gets at most (default 2): with ``max_takes=3`` an
            entry of two takes is timed a third time on a lookup at least twice
            ``second_take_after_s`` after its first take, and so on (take ``k + 1``
            at least ``k`` times it after the first), the fastest kept.
        drift_check: before the first prediction from this instance (a session) that
            reads entries of a method (hot, rotated), re-measure the table's reference
            entries of that method and rescale its entries if the host's speed drifted
            since they were stored (`edgefit.measure.drift.check_drift`).
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        warmup: int = 3,
        runs: int = 10,
        timer: Timer | None = None,
        min_sample_s: float = 1e-3,
        rotate_bytes: int = ROTATE_BYTES,
        hot_bytes: int | None = None,
        gate: Callable[[], object] | None = None,
        retakes: int = 2,
        drift_check: bool = False,
        second_take_after_s: float | None = None,
        max_takes: int = 2,
    ) -> None:
        self.second_take_after_s = _second_take_after(second_take_after_s)
        if isinstance(max_takes, bool) or not isinstance(max_takes, int) or max_takes < 1:
            raise ConfigError(f"max_takes must be an integer >= 1, got {max_takes!r}")
        self.max_takes = max_takes
        self.path = Path(path) if path is not None else default_lut_path()
        timer = timer if timer is not None else default_timer()
        self.warmup, self.runs, self.timer, self.min_sample_s = warmup, runs, timer, min_sample_s
        self.rotate_bytes = int(rotate_bytes)
        self.hot_bytes = self.rotate_bytes if hot_bytes is None else int(hot_bytes)
        self.gate = gate
        self.gated = self.gate_timeouts = self.retaken = 0
        self.retakes = max(0, int(retakes))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute(SCHEMA)
            db.execute(TEXT_SCHEMA)
            _add_takes_column(db)
        self.measured = 0  # configurations measured by this instance
        self.hits = 0  # stored entries returned (second takes included)
        self.second_takes = 0  # stored entries measured a second time (`second_take_after_s`)
        self.second_take_ratios: list[float] = []  # second take / first take, each
        self.drift_pending = bool(drift_check)
        self.drift: tuple = ()  # this session's `edgefit.measure.drift.DriftCheck`s

    def _connect(self):
        return sqlite_connection(self.path, "latency table")

    def __len__(self) -> int:
        with self._connect() as db:
            return db.execute("SELECT COUNT(*) FROM latency").fetchone()[0]

    def get(self, key: str) -> float | None:
        with self._connect() as db:
            row = db.execute("SELECT seconds FROM latency WHERE key = ?", (key,)).fetchone()
        return None if row is None else float(row[0])

    def put(self, key: str, seconds: float, runs: int, takes: int = 1) -> None:
        """Store ``key``'s entry, measured now from ``takes`` independent takes."""
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO latency (key, seconds, runs, created, takes) VALUES (?, ?, ?, ?, ?)",
                (key, float(seconds), int(runs), time.time(), int(takes)),
            )

    def entry(self, key: str) -> tuple[float, int, float, int] | None:
        """``key``'s stored (seconds, runs, created, takes), or None."""
        with self._connect() as db:
            row = db.execute(
                "SELECT seconds, runs, created, takes FROM latency WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else (float(row[0]), int(row[1]), float(row[2]), int(row[3]))

    def will_time(self, key: str) -> bool:
        """Whether a lookup of ``key`` measures now: no entry yet, or one due for its second take."""
        stored = self.entry(key)
        return stored is None or self._second_take_due(stored[2], stored[3])

    def _second_take_due(self, created: float, takes: int) -> bool:
        after = self.second_take_after_s
        return after is not None and takes < self.max_takes and time.time() - created >= after * takes

    def get_text(self, key: str) -> str | None:
        """A stored calibration (JSON text, e.g. a `HostCorrection`), or None."""
        with self._connect() as db:
            row = db.execute("SELECT value FROM calibration WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def put_text(self, key: str, value: str) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO calibration (key, value, created) VALUES (?, ?, ?)",
                (key, value, time.time()),
            )

    def _wait_gate(self) -> None:
        if self.gate is not None:
            self.gated += 1
            if self.gate() is False:
                self.gate_timeouts += 1

    def timed(self, fn: Callable[[], object]) -> LatencyStats:
        """``fn`` timed with this table's settings (loops of ``min_sample_s``), not behind the gate."""
        return time_callable(
            fn,
            warmup=self.warmup,
            runs=self.runs,
            timer=self.timer,
            min_sample_s=self.min_sample_s,
        )

    def behind_gate(self, measure: Callable[[], object], pick=None):
        """``measure()`` behind this table's gate, taken again if the host slowed down under it.

        ``pick(kept, new)`` chooses between takes (`edgefit.measure.latency.behind_gate`).
        """
        result, retaken = behind_gate(
            measure,
            self._wait_gate,
            getattr(self.gate, "steady", None),
            retakes=self.retakes,
            pick=pick,
        )
        self.retaken += retaken
        return result

    def measure(self, fn: Callable[[], object]) -> LatencyStats:
        """``fn`` timed as an entry is (a `Rotation` in single calls, else loops), behind the gate."""

        def measure() -> LatencyStats:
            if isinstance(fn, Rotation):
                return time_prepared(fn, warmup=self.warmup, runs=self.runs, timer=self.timer)
            return self.timed(fn)

        return self.behind_gate(measure, pick=faster)

    def rescale(self, methods: Sequence[str], scale: float) -> int:
        """Multiply every stored entry measured by one of ``methods`` by ``scale``; returns how many.

        Used when the host's speed drifted since the entries were measured
        (`edgefit.measure.drift.check_drift`).
        """
        if not (scale > 0 and math.isfinite(scale)):
            raise ConfigError(f"a table rescale needs a positive factor, got {scale}")
        changed = 0
        with self._connect() as db:
            for m in methods:
                pattern = f'%"method": {json.dumps(m)}%'
                cur = db.execute(
                    "UPDATE latency SET seconds = seconds * ? WHERE key LIKE ?", (float(scale), pattern)
                )
                changed += cur.rowcount
        return changed

    def lookup_or_measure(self, key: str, fn: Callable[[], object]) -> tuple[float, bool]:
        """The stored seconds for ``key``, measuring ``fn`` first if absent; (seconds, was_cached).

        A stored entry due for its second take (``second_take_after_s``) is measured
        again first and the faster take kept; it still counts as cached (reused).
        """
        stored = self.entry(key)
        if stored is not None:
            self.hits += 1
            seconds, _runs, created, takes = stored
            if self._second_take_due(created, takes):
                seconds = self._second_take(key, fn, seconds, takes)
            return seconds, True

        stats = self.measure(fn)
        self.put(key, stats.p10_s, stats.runs)
        self.measured += 1
        return stats.p10_s, False

    def _second_take(self, key: str, fn: Callable[[], object], first: float, takes: int = 1) -> float:
        """``key`` measured again; the faster of ``first`` (the kept one of ``takes`` takes) and the new
        take stored, with one take more."""
        stats = self.measure(fn)
        kept = min(first, stats.p10_s)
        with self._connect() as db:  # ``created`` stays the first take's time
            db.execute(
                "UPDATE latency SET seconds = ?, takes = ? WHERE key = ?",
                (float(kept), int(takes) + 1, key),
            )
        self.second_takes += 1
        if first > 0:
            self.second_take_ratios.append(stats.p10_s / first)
        return kept


def _second_take_after(value) -> float | None:
    """``second_take_after_s`` checked: None, or finite seconds >= 0."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ConfigError(f"second_take_after_s must be finite seconds >= 0 or None, got {value!r}")
    return seconds


def _add_takes_column(db) -> None:
    """Give a table made before the ``takes`` column that column (its entries count one take)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(latency)")}
    if "takes" in columns:
        return
    try:
        db.execute(TAKES_COLUMN)
    except sqlite3.OperationalError as exc:  # another process added it in between
        if "duplicate column" not in str(exc):
            raise


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
        seconds: the prediction: the sum of the predicted rows, times the host
            correction's factor when one is applied.
        measured: the end-to-end measurement, when taken.
        measured_configs, cached_configs: new and reused table entries (reused ones
            timed a second time, `LatencyTable` ``second_take_after_s``, are in ``notes``).
        table_seconds: the uncorrected sum of the rows.
        low_s, high_s: the interval at ``confidence`` (None without a host correction).
        confidence: the interval's two-sided confidence.
        correction: the `HostCorrection` applied, if any (its residuals give any
            other confidence: `budget_met`).
        regime: ``"hot"`` (layers timed alone in cache) or ``"rotated"``.
        features: the network's features for the feature correction
            (`edgefit.measure.features.network_features`), None if the table sum is 0.
    """

    model: str
    layers: tuple[LayerPrediction, ...]
    seconds: float
    measured: LatencyStats | None = None
    measured_configs: int = 0
    cached_configs: int = 0
    notes: tuple[str, ...] = field(default=())
    table_seconds: float | None = None
    low_s: float | None = None
    high_s: float | None = None
    confidence: float = 0.9
    correction: HostCorrection | None = None
    regime: str = ""
    features: dict | None = None

    @property
    def unpredicted(self) -> tuple[str, ...]:
        return tuple(r.name or "(root)" for r in self.layers if r.seconds is None)

    @property
    def error(self) -> float | None:
        """(predicted - measured) / measured, or None without a measurement.

        Against the measurement's 10th percentile: the uncontended latency the table predicts.
        """
        if self.measured is None or not self.measured.p10_s > 0:
            return None
        return (self.seconds - self.measured.p10_s) / self.measured.p10_s

    @property
    def measured_in_interval(self) -> bool | None:
        """Whether the measured uncontended latency (10th percentile) lies in [low_s, high_s].

        None without a measurement or an interval.
        """
        if self.measured is None or self.low_s is None or self.high_s is None:
            return None
        return self.low_s <= self.measured.p10_s <= self.high_s

    def budget_met(self, budget_s: float, confidence: float = 0.9) -> bool:
        """True if the latency stays within ``budget_s`` with probability ``confidence``.

        Uses the host correction's out-of-sample residuals (one-sided quantile), so
        it needs a prediction made with a correction (``correction=True``).
        """
        if self.correction is None:
            raise ConfigError(
                "this prediction has no interval: predict with correction=True "
                "(a host correction calibrated on random networks)"
            )
        return self.correction.upper(self.seconds, confidence) <= budget_s

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "predicted_s": self.seconds,
            "table_s": self.table_seconds,
            "interval_s": [self.low_s, self.high_s] if self.low_s is not None else None,
            "confidence": self.confidence,
            "regime": self.regime,
            "features": self.features,
            "correction": json.loads(self.correction.to_json()) if self.correction else None,
            "measured": self.measured.to_dict() if self.measured else None,
            "error": self.error,
            "measured_in_interval": self.measured_in_interval,
            "unpredicted": list(self.unpredicted),
            "measured_configs": self.measured_configs,
            "cached_configs": self.cached_configs,
            "notes": list(self.notes),
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


def _tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _shape_bytes(shape, itemsize: int = 4) -> int:
    if not shape or not all(isinstance(d, int) for d in shape):
        return 0
    return math.prod(shape) * itemsize


def copies_for(footprint_bytes: int, rotate_bytes: int = ROTATE_BYTES) -> int:
    """How many copies of a workload touching ``footprint_bytes`` one rotation needs.

    >>> copies_for(1 << 20, 16 << 20), copies_for(64 << 20, 16 << 20), copies_for(0, 16 << 20), copies_for(1 << 20, 0)
    (16, 1, 64, 1)
    """
    if rotate_bytes <= 0 or footprint_bytes >= rotate_bytes:
        return 1
    return max(1, min(MAX_COPIES, math.ceil(rotate_bytes / max(1, footprint_bytes))))


class Rotation:
    """A layer's work on ``copies`` copies of its weights, called in turn on freshly written inputs.

    Inside a network a layer's input has just been written by the layer before it
    (hot in cache) while its weights were last touched a whole forward pass ago
    (cold), and its output goes to a buffer that was last written long ago (cold).
    ``prepare()`` moves to the next copy of the weights and rewrites the inputs in
    place; ``__call__`` runs the layer once, keeping the last ``keep_outputs``
    results alive so the allocator hands out a cold buffer. One round over the copies
    touches the table's ``rotate_bytes``, so each copy's weights have left the
    near caches before their turn comes again. Copies are built on first use, so
    a table hit copies nothing. ``make(i)`` returns the i-th copy as a callable of
    the inputs; ``inputs()`` builds the inputs.
    """

    def __init__(
        self,
        make: Callable[[int], Callable],
        inputs: Callable[[], tuple],
        copies: int,
        keep_outputs: int = 0,
    ):
        self.make, self.make_inputs, self.copies = make, inputs, max(1, int(copies))
        self._fns: list[Callable] | None = None
        self._inputs: tuple = ()
        self._i = 0
        # The last ``keep_outputs`` results stay alive, so each call writes its output to
        # a buffer last touched that many calls ago (cold), as a network's fresh
        # activations are, instead of the one the previous call just freed (hot).
        self._outs: deque = deque(maxlen=max(1, int(keep_outputs)))

    def _build(self) -> None:
        self._inputs = tuple(self.make_inputs())
        self._fns = [self.make(i) for i in range(self.copies)]
        for fn in self._fns:  # warm every copy once (kernel selection, lazy init)
            fn(*self._inputs)

    def prepare(self) -> None:
        """Untimed: next copy of the weights, inputs rewritten in place (hot, as if just produced)."""
        if self._fns is None:
            self._build()
        self._i = (self._i + 1) % self.copies
        _disturb()
        for t in self._inputs:
            if t.is_floating_point():
                t.mul_(1.0)
            else:
                t.mul_(1)

    def __call__(self):
        if self._fns is None:
            self._build()
        out = self._fns[self._i](*self._inputs)
        if self._outs.maxlen > 1:
            self._outs.append(out)
        return out


_SCRATCH: list = []


def _disturb() -> None:
    """Untimed, before each rotated call: what the layers before it in a network leave behind.

    Inside a network the previous layers ran other kernels over other data, so a
    layer starts with its own code (Python, dispatcher, kernel) and the near data
    caches holding someone else's work; a layer called in a loop finds them hot.
    This writes ``DISTURB_BYTES`` of scratch memory (evicting the core's L2) and runs
    a small convolution and an elementwise op (other code paths), identically
    before every configuration; the inputs are rewritten afterwards, so they stay hot
    as a predecessor's fresh output would.
    """
    import torch

    if not _SCRATCH:
        # Made outside inference mode: an inference tensor could not be written
        # in place by a later call made outside it.
        with torch.inference_mode(False):
            _SCRATCH.extend(
                [
                    torch.empty(DISTURB_BYTES // 4),
                    torch.nn.Conv2d(8, 8, 3, padding=1),
                    torch.randn(1, 8, 16, 16),
                ]
            )
    buf, conv, x = _SCRATCH
    with torch.no_grad():
        buf.fill_(1.0)
        torch.relu(conv(x))


def time_prepared(fn: Rotation, *, warmup: int, runs: int, timer: Timer) -> LatencyStats:
    """``runs`` single timed calls of ``fn``, each after an untimed ``fn.prepare()``.

    Every copy is visited at least twice, so each runs with cold weights.
    """
    samples = []
    for _ in range(max(0, warmup)):
        fn.prepare()
        fn()
    for _ in range(max(runs, 2 * fn.copies)):
        fn.prepare()
        t0 = timer()
        fn()
        samples.append(timer() - t0)
    return LatencyStats.from_samples(samples)


def _leaf_maker(module):
    def make(i: int):
        return module if i == 0 else copy.deepcopy(module)

    return make


def _method(rotate_bytes: int) -> str:
    return METHOD if rotate_bytes > 0 else HOT_METHOD


def _row_parts(row, module, dtype: str, threads: int, rotate_bytes: int = ROTATE_BYTES, calls=None):
    """[(key, zero-argument callable)] whose times sum to the row's, or (None, reason).

    ``calls`` (the input shapes of each call of a leaf module, as seen by the module
    itself in a forward pass) replaces the row's shapes, which the profiler records
    at the first op (a reshape-only module such as ShuffleNet's channel shuffle would
    otherwise be called with its reshaped tensor and fail).
    """
    import torch

    itemsize = torch.empty((), dtype=getattr(torch, dtype, torch.float32)).element_size()
    method = _method(rotate_bytes)
    if module is not None and _is_leaf(module):
        parts = []
        dt = "int64" if row.kind == "Embedding" else dtype
        weights = _tensor_bytes(module.parameters()) + _tensor_bytes(module.buffers())
        out = _shape_bytes(row.output_shape, itemsize) if row.output_shape is not None else 0
        vocab = getattr(module, "num_embeddings", 100)
        for shapes in calls if calls else _split_calls(row):
            key = layer_key(
                row, module, input_shapes=shapes, dtype=dtype, threads=threads, method=method
            )
            ins = sum(_shape_bytes(s, 8 if dt == "int64" else itemsize) for s in shapes)
            n = copies_for(weights, rotate_bytes - ins - out) if rotate_bytes > 0 and weights else 1
            make_inputs = lambda shapes=shapes: random_inputs(shapes, dt, vocab=vocab)  # noqa: E731
            if rotate_bytes > 0:
                keep = copies_for(out, rotate_bytes) if out else 1
                parts.append((key, Rotation(_leaf_maker(module), make_inputs, n, keep)))
            else:
                inputs = make_inputs()
                parts.append((key, (lambda inputs=inputs: module(*inputs))))
        return parts, ""
    ops = [op for op in row.ops if op not in _VIEW_OPS]
    key = layer_key(row, None, dtype=dtype, threads=threads, method=method)
    if not ops:
        return [], ""  # views only: free
    shape = tuple(row.output_shape) if row.output_shape is not None else None
    if shape and all(op in _BINARY_OPS or op == "cat" for op in ops):
        split = len(shape) > 1 and shape[1] >= 2
        if any(op == "cat" for op in ops) and not split:
            return None, "cat of an output without a channel dimension to split"

        a, b = random_inputs([shape, shape], dtype)
        if split:
            h = shape[1] // 2
            c1, c2 = a[:, :h].contiguous(), a[:, h:].contiguous()

        def run():
            for op in ops:
                if op == "cat":
                    torch.cat([c1, c2], 1)
                else:
                    torch.add(a, b)

        return [(key, run)], ""
    return None, f"functional ops {', '.join(sorted(set(ops)))} in a container module"


def _nested_relus(n: int):
    from torch import nn

    return nn.Sequential(*[nn.Sequential(nn.ReLU()) for _ in range(n)])


def module_call_overhead(table: LatencyTable, *, modules: int = 64) -> float:
    """Seconds one call of a container module adds beyond its children's own calls.

    Calibrated once per host and thread count (stored in ``table``) on a synthetic
    network, never on a benchmark model: ``nn.Sequential`` of ``modules`` one-child
    ``nn.Sequential(nn.ReLU())`` blocks on a 1x8 tensor, minus ``modules`` times the
    ReLU module called alone, divided by the ``modules + 1`` containers. That is the
    Python dispatch the table's isolated leaf timings miss: ``Module.__call__`` of
    each container and its ``forward`` handing the tensor from child to child.
    """
    import torch

    net, leaf = _nested_relus(modules), torch.nn.ReLU()
    x = torch.randn(1, 8)

    def overhead() -> float:
        with torch.inference_mode():
            whole, alone = table.behind_gate(
                lambda: (
                    table.timed(lambda: net(x)).p10_s,
                    table.timed(lambda: leaf(x)).p10_s,
                )
            )
        return (whole - modules * alone) / (modules + 1)

    return _calibration(
        table, {"kind": "__module_call__", "modules": modules}, CALL_METHOD, overhead
    )


def _calibration(
    table: LatencyTable, fields: dict, method: str, compute: Callable[[], float]
) -> float:
    """A per-host calibration in ``table``: ``compute()`` (clamped at 0) once per thread count.

    Stored under a JSON key of ``fields``, the thread count and ``method``, so later
    runs reuse it and a new way of measuring gets a new key.
    """
    import torch

    key = json.dumps(
        {**fields, "threads": torch.get_num_threads(), "method": method}, sort_keys=True
    )
    cached = table.get(key)
    if cached is not None:
        return cached
    seconds = max(0.0, float(compute()))
    table.put(key, seconds, table.runs)
    return seconds


def _mixed_cnn():
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 6 * 6, 32),
        nn.ReLU(),
        nn.Linear(32, 10),
    )


def leaf_context_overhead(table: LatencyTable) -> float:
    """Seconds a leaf call of a model that stays in cache takes beyond its time alone in a loop.

    Alone in a loop a leaf runs right after itself; in a network it runs right after
    other kernels, and on this kind of host that costs a few microseconds a call
    (a ReLU on 6x28x28 took 2.2 us after itself and 4.8 us after a 5x5 convolution).
    For a model of many microsecond-scale layers that is a large share. Calibrated
    once per host and thread count (stored in ``table``) on a synthetic network,
    never on a benchmark model: an 11-leaf CNN on a 1x3x24x24 input (convolutions,
    batch norm, ReLUs, max and average pooling, flatten, linear layers), measured
    end to end, minus its prediction from the table (leaves timed alone and hot,
    plus `module_call_overhead`), divided by its 11 leaf calls.
    """
    import warnings

    import torch

    def overhead() -> float:
        net = _mixed_cnn().eval()
        leaves = sum(1 for m in net.modules() if _is_leaf(m))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # uncounted-op notes about the synthetic network
            alone = predict_latency(
                net,
                input_shape=MIXED_INPUT,
                table=table,
                measure=False,
                steady=False,
                leaf_context=False,
                correction=False,
            ).seconds
        x = torch.randn(*MIXED_INPUT)
        with torch.inference_mode():
            whole = table.behind_gate(lambda: table.timed(lambda: net(x)).p10_s, pick=min)
        return (whole - alone) / leaves

    return _calibration(
        table, {"kind": "__leaf_in_network__", "input": list(MIXED_INPUT)}, LEAF_METHOD, overhead
    )


def container_calls(model) -> int:
    """Modules with children (each assumed called once per forward pass), the root included."""
    return sum(1 for m in model.modules() if not _is_leaf(m))


def working_set_bytes(model, profile) -> int:
    """Bytes one forward pass touches: parameters, buffers and every row's output.

    A model under the table's ``hot_bytes`` stays in cache from one pass to
    the next, so its layers are looked up as timed alone and hot; a larger one
    streams from far caches and its layers are looked up as timed in rotation.
    """
    total = _tensor_bytes(model.parameters()) + _tensor_bytes(model.buffers())
    for row in profile.layers:
        if row.output_shape is not None:
            total += _shape_bytes(row.output_shape)
    return int(total)


def leaf_input_shapes(model, input_shapes, dtype: str = "float32") -> dict:
    """{leaf module name: [input shapes of each call]} from one forward pass on random inputs.

    Empty when the pass fails (the rows' own shapes are used then).
    """
    import torch

    seen: dict = {}
    hooks = []

    def hook(name):
        def pre(_mod, args):
            shapes = tuple(tuple(a.shape) for a in args if isinstance(a, torch.Tensor))
            seen.setdefault(name, []).append(shapes)

        return pre

    for name, mod in model.named_modules():
        if name and _is_leaf(mod):
            hooks.append(mod.register_forward_pre_hook(hook(name)))
    try:
        with torch.inference_mode():
            model(*random_inputs(input_shapes, dtype))
    except Exception:  # noqa: BLE001 - a model that cannot run here keeps the rows' shapes
        seen = {}
    finally:
        for h in hooks:
            h.remove()
    return seen


def _layer_rows(model, profile, table, rotate: int, input_dtype: str):
    """One `LayerPrediction` per profile row from ``table``, and the leaf calls timed."""
    import torch

    dtype, threads = _dtype_name(model), torch.get_num_threads()
    shapes_in = getattr(profile, "input_shapes", None)
    seen = leaf_input_shapes(model, shapes_in, input_dtype) if shapes_in else {}
    rows: list[LayerPrediction] = []
    leaf_calls = 0
    for row in profile.layers:
        try:
            module = model.get_submodule(row.name) if row.name else model
        except AttributeError:
            module = None
        calls = seen.get(row.name) if row.name else None
        parts, reason = _row_parts(row, module, dtype, threads, rotate, calls)
        if parts is None:
            rows.append(LayerPrediction(row.name, row.kind, None, False, reason))
            continue
        try:
            timed = [table.lookup_or_measure(key, fn) for key, fn in parts]
        except (RuntimeError, TypeError, ValueError, IndexError) as exc:
            reason = f"could not run alone: {exc}"[:200]
            rows.append(LayerPrediction(row.name, row.kind, None, False, reason))
            continue
        seconds = sum(t for t, _ in timed)
        rows.append(LayerPrediction(row.name, row.kind, seconds, all(c for _, c in timed)))
        if module is not None and _is_leaf(module):
            leaf_calls += len(parts)
    return rows, leaf_calls


def _overhead_rows(model, table, leaf_calls: int, rotate: int, call_overhead, leaf_context):
    """The ``(container calls)`` and ``(leaf calls in a network)`` rows that apply."""
    rows = []
    n = container_calls(model) if call_overhead else 0
    if n:
        per = module_call_overhead(table)
        rows.append(LayerPrediction("(container calls)", f"{n} module calls", n * per, True))
    if leaf_context and not rotate and leaf_calls >= 2:
        per = leaf_context_overhead(table)
        rows.append(
            LayerPrediction(
                "(leaf calls in a network)", f"{leaf_calls} leaf calls", leaf_calls * per, True
            )
        )
    return rows


def host_correction(
    table,
    regime: str,
    *,
    calibrate: bool,
    notes: list[str] | None = None,
    features=None,
    model: str = "factor",
):
    """The `HostCorrection` for a network of ``regime`` (and ``features``), calibrated first with ``calibrate``.

    ``model="factor"`` (the default): ``regime``'s per-regime factor, the median
    measured / table-sum ratio of the calibration networks timed in that regime,
    with its Student-t interval. Given the network's ``features`` it is calibrated
    (when missing, or the host's state changed) on the feature model's varied
    random networks (`edgefit.measure.correction.calibrate_features`, which stores
    the per-regime factors beside), else on `calibration_networks`.
    ``model="features"`` with ``features`` and scikit-learn: the feature model's
    (`feature_correction`) factor for that network and its conformal interval.
    A stored correction whose host state is stale (the reference convolution now
    runs more than `edgefit.measure.correction.STALE_RATIO` off) is recalibrated
    with ``calibrate``, else kept with a note. Without ``calibrate`` and nothing
    stored: None.

    Why the factor is the default: over 13 benchmark runs on a shared host the
    feature model, a regression on features the zoo's networks lie outside of,
    put fewer networks within +-10% (61% against 65%; 67% against 76% in the last
    seven) and its interval covered fewer or as many (`docs/latency_correction.md`).
    """
    import torch

    from edgefit.measure.features import sklearn_available

    check_correction_model(model)
    notes = notes if notes is not None else []
    if model == "features" and features is not None and sklearn_available():
        fc = feature_correction(table, calibrate=calibrate, notes=notes)
        if fc is not None:
            return fc.correction_for(features, regime)
    key = correction_key(regime, torch.get_num_threads())
    text = table.get_text(key)
    stored = HostCorrection.from_json(text) if text is not None else None

    def calibrated(canary_s):
        if features is not None:  # the varied networks; the per-regime factors are stored beside
            _calibrated_features(table, canary_s, notes)
            fresh = table.get_text(key)
            if fresh is not None and fresh != text:
                return HostCorrection.from_json(fresh)
        corr = calibrate_correction(table, regime, canary_s=canary_s)
        notes.append(
            f"{regime} correction calibrated on {len(corr.networks)} random zoo-block networks "
            f"({corr.retakes} retakes)"
        )
        return corr

    return _reuse_or_calibrate(table, stored, calibrate, notes, f"the {regime} correction", calibrated)


def _reuse_or_calibrate(table, stored, calibrate: bool, notes: list[str], what: str, calibrated):
    """``stored`` while the host's state holds; else ``calibrated(canary_s)`` with ``calibrate``, or a note."""
    if stored is None and not calibrate:
        return None
    canary_s = _canary_reading(table)
    if stored is not None and not stored.stale(canary_s):
        return stored
    if stored is not None and not calibrate:
        notes.append(f"host state changed since {what} was calibrated")
        return stored
    return calibrated(canary_s)


def feature_correction(table, *, calibrate: bool, notes: list[str] | None = None, **calibration):
    """The stored `edgefit.measure.features.FeatureCorrection` in ``table``, calibrated first with ``calibrate``.

    Recalibrated (with ``calibrate``; ``calibration`` goes to
    `edgefit.measure.correction.calibrate_features`, e.g. ``count``, ``max_seconds``)
    when missing or when the host's state changed; None without ``calibrate`` and
    nothing stored.
    """
    import torch

    from edgefit.measure.features import FeatureCorrection

    notes = notes if notes is not None else []
    text = table.get_text(correction_key("features", torch.get_num_threads()))
    stored = FeatureCorrection.from_json(text) if text is not None else None

    def calibrated(canary_s):
        return _calibrated_features(table, canary_s, notes, **calibration)

    return _reuse_or_calibrate(table, stored, calibrate, notes, "the feature correction", calibrated)


def _calibrated_features(table, canary_s, notes: list[str], **calibration):
    """`calibrate_features` now (the feature model and the per-regime factors), with a note."""
    from edgefit.measure.correction import calibrate_features

    fc = calibrate_features(table, canary_s=canary_s, **calibration)
    notes.append(
        f"host correction calibrated on {len(fc.networks)} random networks in "
        f"{fc.seconds:.0f} s ({fc.retakes} retakes)"
    )
    return fc


def _canary_reading(table) -> float:
    """The host's speed now: the table's SpeedGate's best canary reading, else a fresh `conv_canary` one."""
    if isinstance(table.gate, SpeedGate):
        table.gate.read()
        return table.gate.best
    return conv_canary()()


def _session_drift_check(table, methods) -> list[str]:
    """A table with ``drift_check``: the drift check of the ``methods`` this prediction reads, once a session."""
    if not getattr(table, "drift_pending", False):
        return []
    from edgefit.measure.drift import check_drift, drift_note

    todo = tuple(m for m in methods if m not in {d.method for d in table.drift})
    if not todo:
        return []
    done = check_drift(table, methods=todo)
    table.drift += done
    return [drift_note(d) for d in done]


def _second_take_notes(table, count: int) -> list[str]:
    """The note on ``count`` entries that got their second take in this prediction, if any."""
    if count <= 0:
        return []
    return [
        f"{count} table {'entry' if count == 1 else 'entries'} timed a second time, at least "
        f"{table.second_take_after_s:g} s after the first; the faster take kept"
    ]


def _features(model, profile, rows, regime: str) -> dict:
    from edgefit.measure.calibrate import _largest_cache_bytes
    from edgefit.measure.features import network_features

    return network_features(model, profile, rows, regime, _largest_cache_bytes()[0])


def _measure_end_to_end(model, profile, table, *, input_dtype, warmup, runs, timer):
    gate = table.gate if isinstance(table.gate, SpeedGate) else None
    return measure_latency(
        model,
        random_inputs(profile.input_shapes, input_dtype),
        warmup=warmup,
        runs=runs,
        timer=timer,
        gate=gate,
    )


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
    timer: Timer | None = None,
    steady: bool = True,
    call_overhead: bool = True,
    leaf_context: bool = True,
    correction: bool | None = None,
    confidence: float = 0.9,
    correction_model: str = "factor",
) -> Prediction:
    """Predict ``model``'s host latency from the lookup table and, with ``measure``, measure it.

    Args:
        model: the module (its leaf modules are timed).
        profile: its `Profile`; profiled at ``input_shape`` when omitted.
        table: the `LatencyTable` (default: the one in the cache dir, same ``timer``).
        measure: also time the whole model end to end (``warmup``, ``runs``).
        timer: the clock of the end-to-end measurement (default: `default_timer`,
            CPU time of the calling thread with one torch thread, wall time otherwise).
        steady: pin glibc's allocator first (`steady_allocator`), so neither the
            table nor the measurement sees history-dependent first-touch page faults.
        call_overhead: add one row, ``(container calls)``, for the Python dispatch of
            the model's container modules (`container_calls` times
            `module_call_overhead`), which the isolated leaf timings leave out.
        leaf_context: for a model whose layers are timed alone and hot (it stays in
            cache) with at least two leaf calls, add one row, ``(leaf calls in a
            network)``: the leaf calls times `leaf_context_overhead`, what running
            right after other kernels instead of after itself adds to each.
        correction: apply the host correction (`host_correction`). True calibrates it on
            random networks when the table has none or the host's state changed; None
            (default) applies a stored one only; False never (``seconds`` is then the
            table's sum and there is no interval).
        confidence: the two-sided confidence of ``low_s``/``high_s``.
        correction_model: ``"factor"`` (default): the model's regime's factor and its
            Student-t interval; ``"features"``: with scikit-learn, the feature model's
            factor for this network (`edgefit.measure.features`) and its conformal interval.
    """
    import torch

    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence}")
    check_correction_model(correction_model)
    notes: list[str] = []
    if steady and steady_allocator():
        notes.append("allocator pinned (mallopt): no first-touch page faults")
    timer = timer if timer is not None else default_timer()
    if profile is None:
        if input_shape is None:
            raise ConfigError("predict_latency needs a profile or an input_shape")
        from edgefit.metrics import profile as make_profile

        profile = make_profile(model, input_shape=tuple(input_shape))
    table = table if table is not None else LatencyTable(timer=timer)
    model.eval()
    before_measured, before_hits = table.measured, table.hits
    before_second = getattr(table, "second_takes", 0)
    footprint = working_set_bytes(model, profile)
    hot_bytes = getattr(table, "hot_bytes", table.rotate_bytes)
    rotate = table.rotate_bytes if footprint > hot_bytes else 0
    if table.rotate_bytes > 0 and not rotate:
        notes.append(
            f"working set {footprint / 2**20:.1f} MiB fits in {hot_bytes / 2**20:.0f} MiB: layers timed hot"
        )
    notes += _session_drift_check(table, ("hot", "rotated") if rotate else ("hot",))
    with torch.inference_mode():
        rows, leaf_calls = _layer_rows(model, profile, table, rotate, input_dtype)
        rows += _overhead_rows(model, table, leaf_calls, rotate, call_overhead, leaf_context)
    notes += _second_take_notes(table, getattr(table, "second_takes", 0) - before_second)
    regime = "rotated" if rotate else "hot"
    raw = sum(r.seconds for r in rows if r.seconds is not None)
    feats = _features(model, profile, rows, regime) if raw > 0 else None
    corr = None
    if correction is not False:
        corr = host_correction(
            table, regime, calibrate=bool(correction), notes=notes, features=feats,
            model=correction_model,
        )
    seconds = raw * corr.factor if corr is not None else raw
    low, high = corr.interval(seconds, confidence) if corr is not None else (None, None)
    measured = None
    if measure:
        measured = _measure_end_to_end(
            model, profile, table, input_dtype=input_dtype, warmup=warmup, runs=runs, timer=timer
        )
    return Prediction(
        model=profile.model,
        layers=tuple(rows),
        seconds=seconds,
        measured=measured,
        measured_configs=table.measured - before_measured,
        cached_configs=table.hits - before_hits,
        notes=tuple(notes),
        table_seconds=raw,
        low_s=low,
        high_s=high,
        confidence=confidence,
        correction=corr,
        regime=regime,
        features=feats,
    )
