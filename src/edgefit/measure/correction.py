"""A per-host correction of the lookup table, learned on random networks, and its interval.

The table sums layers timed one at a time; a network runs them back to back, on a
host whose state (co-tenants, frequency, caches) is not the one the table saw. On
a busy host the sum undershoots big models by 15-25%. The correction measures
that gap on *synthetic* networks only — random stacks of the zoo's building
blocks (`random_block_network`), never a benchmark or zoo model — and stores,
per regime (``hot``: the model's working set stays in cache; ``rotated``: it does
not), one factor and the leave-one-out relative residuals of the fit:

* factor ``f`` = median over the calibration networks of measured / table sum;
* residual ``r_i`` = measured_i / (f_-i * table_i) - 1, where ``f_-i`` is the factor
  fitted without network ``i`` (so the residuals are out-of-sample);
* a prediction is ``s = f * table sum``; its interval at confidence ``c`` is the
  Student-t prediction interval of the residuals' logs (mean ``m``, standard
  deviation ``sd``, ``n`` networks): ``s * exp(m +- t_{n-1}((1 + c) / 2) * sd *
  sqrt(1 + 1/n))``, widened to contain ``s``. With six networks a quantile of the
  residuals would cover a new network only about 5 times in 7.

Latency here is the *uncontended* latency: the 10th percentile of a block of
back-to-back passes (`edgefit.measure.latency.time_passes`), as the table stores
the 10th percentile of each layer's repeats. On a shared host other jobs only add
time; the median a user sees under load is higher by the ``load_ratio`` measured on
the calibration networks (median / 10th percentile of their passes), and the
interval's upper end is raised by it, so it spans both.

With the ``canary_s`` it was calibrated at, a correction also records the host's
state: when the reference convolution runs more than ``STALE_RATIO`` slower or
faster than then, the correction is stale and `predict_latency` recalibrates it
(with ``correction=True``) or says so in its notes.
"""

from __future__ import annotations

import json
import math
import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields

from edgefit.errors import ConfigError

CORRECTION_METHOD = "host-correction-v2"
REGIMES = ("hot", "rotated")
CALIBRATION_SEED = 1_000_003  # the calibration networks' stream; benchmarks draw from others
STALE_RATIO = 1.25
INTERVAL_METHODS = ("t", "conformal")
CORRECTION_MODELS = ("factor", "features")  # the per-regime factor (default) or the feature model


def check_correction_model(model: str) -> str:
    """``model`` if it names a correction (`CORRECTION_MODELS`), else a one-line `ConfigError`.

    >>> check_correction_model("factor")
    'factor'
    """
    if model not in CORRECTION_MODELS:
        raise ConfigError(f"correction model must be one of {', '.join(CORRECTION_MODELS)} (got {model!r})")
    return model


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile of ``values`` (``q`` in [0, 1]).

    >>> quantile([0.0, 1.0, 2.0, 3.0], 0.5), quantile([0.0, 1.0, 2.0, 3.0], 1.0)
    (1.5, 3.0)
    """
    if not values or not 0.0 <= q <= 1.0:
        raise ConfigError(f"quantile needs values and 0 <= q <= 1, got {len(values)} values, q={q}")
    s = sorted(values)
    pos = q * (len(s) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def t_quantile(p: float, df: int) -> float:
    """Student-t quantile by the Cornish-Fisher expansion around the normal one.

    Within 0.2% of the exact value from 4 degrees of freedom on, 1.2% at 2.

    >>> round(t_quantile(0.95, 5), 3), round(t_quantile(0.95, 30), 3), round(t_quantile(0.5, 3), 3)
    (2.014, 1.697, 0.0)
    """
    if df < 1 or not 0.0 < p < 1.0:
        raise ConfigError(f"t_quantile needs df >= 1 and 0 < p < 1, got df={df}, p={p}")
    z = statistics.NormalDist().inv_cdf(p)
    return (
        z
        + (z**3 + z) / (4 * df)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3)
    )


def canary_moved(calibrated_s: float | None, now_s: float | None) -> bool:
    """True if the reference convolution now runs `STALE_RATIO` slower or faster than at calibration.

    >>> canary_moved(1e-4, 1.3e-4), canary_moved(1e-4, 0.9e-4), canary_moved(None, 1e-4)
    (True, False, False)
    """
    if calibrated_s is None or now_s is None:
        return False
    ratio = now_s / calibrated_s
    return ratio > STALE_RATIO or ratio < 1 / STALE_RATIO


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence}")


@dataclass(frozen=True, kw_only=True)
class CalibrationState:
    """The host's state when a correction was calibrated (keyword-only fields of every correction).

    Attributes:
        networks: the calibration networks' labels (random networks).
        canary_s: the reference convolution's best time when calibrated (host state).
        created: when it was calibrated (seconds since the epoch).
        retakes: measurements taken again during calibration (the host slowed down).
        load_ratio: median over the calibration networks of their passes' median /
            10th percentile: how much the load at calibration time added to a typical
            pass (1.0 on a quiet host). The interval's upper end is raised by it.
    """

    networks: tuple[str, ...] = ()
    canary_s: float | None = None
    created: float = 0.0
    retakes: int = 0
    load_ratio: float = 1.0

    def __post_init__(self) -> None:
        if not (self.load_ratio >= 1.0 and math.isfinite(self.load_ratio)):
            raise ConfigError(f"load ratio must be >= 1, got {self.load_ratio}")

    def calibration_state(self) -> dict:
        """The `CalibrationState` fields by name (to hand them to another correction)."""
        return {f.name: getattr(self, f.name) for f in fields(CalibrationState)}

    def stale(self, canary_s: float | None) -> bool:
        """True if the host's reference convolution now runs ``STALE_RATIO`` off its calibration speed.

        >>> c = HostCorrection("hot", 1.0, (0.0, 0.0, 0.0), canary_s=1e-4)
        >>> c.stale(1.1e-4), c.stale(1.5e-4), c.stale(None)
        (False, True, False)
        """
        return canary_moved(self.canary_s, canary_s)


@dataclass(frozen=True)
class HostCorrection(CalibrationState):
    """measured / table-sum on this host for one regime, with out-of-sample residuals.

    Attributes:
        regime: ``"hot"`` or ``"rotated"`` (how the table timed the layers).
        factor: the multiplier applied to the table's sum.
        residuals: leave-one-out relative residuals of the calibration networks.
        networks, canary_s, created, retakes, load_ratio: the host's state at
            calibration (`CalibrationState`, keyword-only).
        table_s, measured_s: each calibration network's table sum and measured
            uncontended latency (what the factor was fitted on).
        interval_method: ``"t"`` (Student-t prediction interval of the log residuals)
            or ``"conformal"`` (their order statistics, `edgefit.measure.features.conformal_bound`).
        model: what gave ``factor``: ``"factor"`` (one per regime) or ``"features"``
            (`edgefit.measure.features.FeatureCorrection`, per network).
    """

    regime: str
    factor: float
    residuals: tuple[float, ...]
    table_s: tuple[float, ...] = ()
    measured_s: tuple[float, ...] = ()
    interval_method: str = "t"
    model: str = "factor"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.interval_method not in INTERVAL_METHODS:
            raise ConfigError(
                f"interval method must be one of {INTERVAL_METHODS}, got {self.interval_method!r}"
            )
        if self.regime not in REGIMES:
            raise ConfigError(f"regime must be one of {REGIMES}, got {self.regime!r}")
        if not (self.factor > 0 and math.isfinite(self.factor)):
            raise ConfigError(f"correction factor must be positive, got {self.factor}")
        if len(self.residuals) < 3:
            raise ConfigError("a correction needs residuals of at least 3 networks")

    def _log_bound(self, p: float) -> float:
        """``p``-quantile of a new network's relative residual: Student-t prediction bound, or conformal order statistic."""
        logs = [math.log1p(r) for r in self.residuals]
        if self.interval_method == "conformal":
            from edgefit.measure.features import conformal_bound

            return math.expm1(conformal_bound(logs, p))
        n = len(logs)
        width = statistics.stdev(logs) * math.sqrt(1 + 1 / n)
        return math.expm1(statistics.fmean(logs) + t_quantile(p, n - 1) * width)

    def interval(self, seconds: float, confidence: float = 0.9) -> tuple[float, float]:
        """Two-sided prediction interval around a corrected prediction ``seconds``.

        The residuals' logs are treated as a normal sample: a new network's log
        residual lies within mean +- t(n-1) * sd * sqrt(1 + 1/n) with ``confidence``.
        The interval always contains ``seconds``; its upper end is raised by
        ``load_ratio`` (the median pass under the calibration's load).

        >>> c = HostCorrection("hot", 1.0, (-0.1, 0.0, 0.1, 0.2))
        >>> [round(x, 3) for x in c.interval(1.0, 0.9)]
        [0.754, 1.445]
        >>> [round(x, 3) for x in HostCorrection("hot", 1.0, (-0.1, 0.0, 0.1, 0.2), load_ratio=1.1).interval(1.0, 0.9)]
        [0.754, 1.589]
        """
        _check_confidence(confidence)
        lo = min(0.0, self._log_bound((1 - confidence) / 2))
        hi = max(0.0, self._log_bound((1 + confidence) / 2))
        return seconds * (1 + lo), seconds * (1 + hi) * self.load_ratio

    def upper(self, seconds: float, confidence: float = 0.9) -> float:
        """One-sided bound: a new network's latency stays under it with probability ``confidence``.

        Raised by ``load_ratio``: a budget is judged on the median pass a user sees
        under the load of calibration time, not on the uncontended latency alone.

        >>> round(HostCorrection("hot", 1.0, (-0.1, 0.0, 0.1, 0.2)).upper(1.0, 0.9), 3)
        1.31
        """
        _check_confidence(confidence)
        return seconds * (1 + max(0.0, self._log_bound(confidence))) * self.load_ratio

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> HostCorrection:
        try:
            d = json.loads(text)
            d["residuals"] = tuple(d["residuals"])
            for k in ("networks", "table_s", "measured_s"):
                d[k] = tuple(d.get(k, ()))
            return cls(**d)
        except (ValueError, TypeError, KeyError) as exc:
            raise ConfigError(f"stored host correction is not usable: {exc}") from None


def fit_correction(
    regime: str, table_s: Sequence[float], measured_s: Sequence[float], **info
) -> HostCorrection:
    """The correction of ``regime`` from table sums and end-to-end medians of the same networks.

    >>> c = fit_correction("rotated", [1.0, 1.0, 1.0], [1.1, 1.2, 1.3])
    >>> round(c.factor, 6), [round(r, 4) + 0.0 for r in c.residuals]
    (1.2, [-0.12, 0.0, 0.1304])
    """
    if len(table_s) != len(measured_s) or len(table_s) < 3:
        raise ConfigError("fit_correction needs at least 3 paired table sums and measurements")
    if min(table_s) <= 0 or min(measured_s) <= 0:
        raise ConfigError("table sums and measurements must be positive")
    ratios = [m / t for t, m in zip(table_s, measured_s, strict=True)]
    residuals = []
    for i, r in enumerate(ratios):
        f_loo = statistics.median(ratios[:i] + ratios[i + 1 :])
        residuals.append(r / f_loo - 1)
    return HostCorrection(
        regime,
        statistics.median(ratios),
        tuple(residuals),
        table_s=tuple(table_s),
        measured_s=tuple(measured_s),
        **info,
    )


def correction_key(regime: str, threads: int, dtype: str = "float32") -> str:
    """The table key a regime's correction is stored under.

    >>> correction_key("hot", 1)
    '{"dtype": "float32", "kind": "__host_correction__", "method": "host-correction-v2", "regime": "hot", "threads": 1}'
    """
    return json.dumps(
        {
            "kind": "__host_correction__",
            "regime": regime,
            "threads": threads,
            "dtype": dtype,
            "method": CORRECTION_METHOD,
        },
        sort_keys=True,
    )


# ------------------------------------------------------------------ random networks of zoo blocks

_SIZES = {"hot": ((24, 32, 40), (8, 16, 24)), "rotated": ((128, 160, 192), (32, 48, 64))}


def _block(rng: random.Random, c: int):
    """One random zoo block on ``c`` channels: (module, out channels, label)."""
    from edgefit.zoo import blocks as B

    kind = rng.choice(
        ["conv", "dws", "inverted", "bottleneck", "fire", "shuffle", "inception", "dense"]
    )
    stride = rng.choice([1, 1, 2])
    if kind == "conv":
        o, k = rng.choice([c, 2 * c]), rng.choice([1, 3, 5])
        return B.ConvBNAct(c, o, k, stride), o, f"conv{k}s{stride}>{o}"
    if kind == "dws":
        o = rng.choice([c, 2 * c])
        return B.DepthwiseSeparable(c, o, stride), o, f"dws s{stride}>{o}"
    if kind == "inverted":
        o, e = rng.choice([c, c + 8]), rng.choice([1, 4, 6])
        return B.InvertedResidual(c, o, stride, e), o, f"ir e{e} s{stride}>{o}"
    if kind == "bottleneck":
        p = max(4, c // rng.choice([2, 4]))
        return B.Bottleneck(c, p, stride), 4 * p, f"bottleneck{p} s{stride}"
    if kind == "fire":
        s = max(4, c // 4)
        return B.Fire(c, s, c // 2, c // 2), 2 * (c // 2), f"fire{s}"
    if kind == "shuffle" and c % 8 == 0:  # groups of 2 on a bottleneck of c / 4
        return B.ShuffleUnit(c, c, 1, 2), c, "shuffle g2"
    if kind == "inception":
        q = max(4, c // 4)
        return B.Inception(c, q, q, q, q // 2, q // 2, q), 3 * q + q // 2, f"inception{q}"
    if kind == "shuffle":
        return B.ConvBNAct(c, c, 3, stride), c, f"conv3s{stride}>{c}"
    g = rng.choice([8, 16])
    return B.DenseBlock(2, c, g, 2), c + 2 * g, f"dense2x{g}"


def random_block_network(rng: random.Random, regime: str = "hot", blocks: tuple[int, int] = (2, 5)):
    """A random CNN of ``blocks`` (2-5) zoo blocks (`edgefit.zoo.blocks`) for ``regime``: (model, input shape, label).

    ``hot`` networks take small inputs and channels (the working set stays in cache),
    ``rotated`` ones larger. A stem conv, the blocks, global pooling and a linear head.
    """
    import torch
    from torch import nn

    from edgefit.zoo.blocks import ConvBNAct

    if regime not in REGIMES:
        raise ConfigError(f"regime must be one of {REGIMES}, got {regime!r}")
    hws, widths = _SIZES[regime]
    hw, c = rng.choice(hws), rng.choice(widths)
    with torch.random.fork_rng():
        torch.manual_seed(rng.randrange(2**31))
        layers, labels = [ConvBNAct(3, c, 3, 2)], [f"stem{c}"]
        for _ in range(rng.randint(*blocks)):
            block, c, label = _block(rng, c)
            layers.append(block)
            labels.append(label)
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10)]
        model = nn.Sequential(*layers).eval()
    return model, (1, 3, hw, hw), f"{hw}px " + " ".join(labels)


def calibration_networks(
    regime: str, count: int = 6, seed: int = CALIBRATION_SEED, hot_bytes: int | None = None
):
    """The ``count`` synthetic networks a regime's correction is fitted on (fixed by ``seed``).

    Drawn from ``seed``'s stream, keeping those whose working set
    (`edgefit.measure.lut.working_set_bytes`) falls in ``regime`` for a table's
    ``hot_bytes`` (default: the table's default), at most ``8 * count`` draws.
    """
    import warnings

    from edgefit.measure.lut import ROTATE_BYTES, working_set_bytes
    from edgefit.metrics import profile

    hot_bytes = ROTATE_BYTES if hot_bytes is None else hot_bytes
    rng = random.Random(f"{seed}-{regime}")
    kept = []
    for _ in range(8 * count):
        model, shape, label = random_block_network(rng, regime)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            footprint = working_set_bytes(model, profile(model, input_shape=shape))
        if (footprint > hot_bytes) == (regime == "rotated"):
            kept.append((model, shape, label))
            if len(kept) == count:
                break
    return kept


def measure_network(table, model, x, *, block_s: float = 0.02, min_runs: int = 6):
    """``model(x)`` timed end to end behind ``table``'s gate: a block of back-to-back passes.

    `edgefit.measure.latency.time_passes` with the table's clock; the block is taken
    again when the gate finds the host slowed down under it (the faster take is kept). Its ``p10_s`` is the
    uncontended latency the table's sum is compared with.
    """
    import torch

    from edgefit.measure.latency import LatencyStats, faster, time_passes

    def block():
        return time_passes(lambda: model(x), timer=table.timer, block_s=block_s, min_runs=min_runs)

    with torch.inference_mode():
        return LatencyStats.from_samples(table.behind_gate(block, pick=faster))


def calibrate_correction(
    table, regime: str, *, count: int = 6, seed: int = CALIBRATION_SEED, canary_s=None
) -> HostCorrection:
    """Fit and store ``regime``'s correction in ``table`` from `calibration_networks`.

    The allocator is pinned first (`edgefit.measure.latency.steady_allocator`), as
    `predict_latency` pins it. Each network is predicted from ``table`` (uncorrected)
    and timed end to end (`measure_network`); its timed-hot or rotated layers match ``regime``
    because the table decides that from the working set the same way. Networks that do
    not fall in ``regime`` on this table (its ``hot_bytes``) are skipped.
    """
    import torch

    from edgefit.measure.latency import steady_allocator
    from edgefit.measure.lut import predict_latency

    # The allocator as predict_latency pins it by default, so the calibration's passes
    # and the predictions' measurements run under the same allocator, whichever came first.
    steady_allocator()
    before = table.retaken
    table_s, measured_s, labels, loads = [], [], [], []
    for model, shape, label in calibration_networks(regime, count, seed, table.hot_bytes):
        pred = predict_latency(
            model, input_shape=shape, table=table, measure=False, steady=False, correction=False
        )
        if pred.regime != regime:
            continue
        stats = measure_network(table, model, torch.randn(*shape))
        table_s.append(pred.seconds)
        measured_s.append(stats.p10_s)
        loads.append(stats.median_s / stats.p10_s)
        labels.append(label)
    if len(labels) < 3:
        raise ConfigError(
            f"only {len(labels)} calibration networks fall in the {regime!r} regime on this table"
        )
    return _store_factor(
        table, regime, table_s, measured_s, loads, labels,
        canary_s=canary_s, created=time.time(), retakes=table.retaken - before,
    )


def _load_ratio(loads) -> float:
    """The calibration's load ratio: the median of its networks' median / 10th percentile, at least 1."""
    return max(1.0, statistics.median(loads))


def _store_factor(table, regime: str, table_s, measured_s, loads, networks, **info) -> HostCorrection:
    """`fit_correction` of ``regime`` with its networks' load ratio, stored in ``table`` for this thread count."""
    import torch

    corr = fit_correction(
        regime, table_s, measured_s, networks=tuple(networks), load_ratio=_load_ratio(loads), **info
    )
    table.put_text(correction_key(regime, torch.get_num_threads()), corr.to_json())
    return corr


# ------------------------------------------------------------------ the feature model's calibration set

FEATURE_COUNT = 40
FEATURE_SECONDS = 300.0


def _wide_head_network(rng: random.Random):
    """A few zoo blocks, then fully connected layers of 1k-4k units: tens to hundreds of MiB of weights."""
    import torch
    from torch import nn

    from edgefit.zoo.blocks import ConvBNAct

    hw, c = rng.choice((64, 96, 128)), rng.choice((32, 64, 128))
    s, f1, f2 = rng.choice((2, 4, 7)), rng.choice((1024, 2048, 4096)), rng.choice((1024, 4096))
    with torch.random.fork_rng():
        torch.manual_seed(rng.randrange(2**31))
        layers, labels = [ConvBNAct(3, c, 3, 2)], [f"stem{c}"]
        for _ in range(rng.randint(1, 2)):
            block, c, label = _block(rng, c)
            layers.append(block)
            labels.append(label)
        layers += [nn.AdaptiveAvgPool2d(s), nn.Flatten(), nn.Linear(c * s * s, f1), nn.ReLU()]
        layers += [nn.Linear(f1, f2), nn.ReLU(), nn.Linear(f2, 10)]
        model = nn.Sequential(*layers).eval()
    return model, (1, 3, hw, hw), f"{hw}px " + " ".join(labels) + f" pool{s} fc{f1} fc{f2}"


def _wide_pointwise_network(rng: random.Random):
    """1x1 convolutions of 256-1024 channels on a small map: MiBs of weights per layer, few calls."""
    import torch
    from torch import nn

    from edgefit.zoo.blocks import ConvBNAct

    hw, c = rng.choice((28, 56)), rng.choice((64, 128))
    with torch.random.fork_rng():
        torch.manual_seed(rng.randrange(2**31))
        layers, labels = [ConvBNAct(3, c, 3, 2)], [f"stem{c}"]
        for _ in range(rng.randint(2, 5)):
            o = rng.choice((256, 512, 1024))
            layers.append(ConvBNAct(c, o, 1, 1))
            labels.append(f"pw>{o}")
            c = o
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10)]
        model = nn.Sequential(*layers).eval()
    return model, (1, 3, hw, hw), f"{hw}px " + " ".join(labels)


def _plain_network(rng: random.Random):
    """Plain 3x3 convolutions (up to 96 channels) with max pooling on large maps: big activations, no depthwise."""
    import torch
    from torch import nn

    from edgefit.zoo.blocks import ConvBNAct

    hw, c = rng.choice((96, 128, 160, 224)), rng.choice((16, 24, 32))
    with torch.random.fork_rng():
        torch.manual_seed(rng.randrange(2**31))
        layers, labels = [ConvBNAct(3, c, 3, 2)], [f"stem{c}"]
        for _ in range(rng.randint(2, 6)):
            o = rng.choice((c, min(2 * c, 96)))
            layers.append(ConvBNAct(c, o, 3, 1))
            labels.append(f"conv3>{o}")
            c = o
            if rng.random() < 0.5:
                layers.append(nn.MaxPool2d(2))
                labels.append("maxpool")
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10)]
        model = nn.Sequential(*layers).eval()
    return model, (1, 3, hw, hw), f"{hw}px " + " ".join(labels)


_FAMILIES = {
    "hot blocks": lambda rng: random_block_network(rng, "hot"),
    "rotated blocks": lambda rng: random_block_network(rng, "rotated"),
    "deep hot blocks": lambda rng: random_block_network(rng, "hot", blocks=(6, 10)),
    "deep rotated blocks": lambda rng: random_block_network(rng, "rotated", blocks=(5, 8)),
    "wide head": _wide_head_network,
    "wide pointwise": _wide_pointwise_network,
    "plain": _plain_network,
}


def feature_calibration_networks(count: int = FEATURE_COUNT, seed: int = CALIBRATION_SEED):
    """The synthetic networks the feature correction is fitted on: (model, input shape, label).

    Deliberately varied, in turn (so a set cut short by a time bound stays varied):
    random zoo-block stacks timed hot and rotated (with and without depthwise blocks,
    2-5 blocks), deep ones (6-10 blocks: many calls), networks with wide fully
    connected heads (tens to hundreds of MiB of weights), stacks of wide 1x1
    convolutions and plain 3x3 stacks on large maps. Drawn from ``seed``'s own
    streams, never from a zoo or benchmark model.
    """
    rngs = {name: random.Random(f"{seed}-features-{name}") for name in _FAMILIES}
    names = list(_FAMILIES)
    out = []
    for i in range(count):
        name = names[i % len(names)]
        model, shape, label = _FAMILIES[name](rngs[name])
        out.append((model, shape, f"{name}: {label}"))
    return out


def calibrate_features(
    table,
    *,
    count: int = FEATURE_COUNT,
    seed: int = CALIBRATION_SEED,
    canary_s=None,
    max_seconds: float = FEATURE_SECONDS,
):
    """Fit and store the feature correction (and the per-regime factors) on `feature_calibration_networks`.

    Each network is predicted from ``table`` (uncorrected, its features kept) and timed
    end to end (`measure_network`) in two blocks, right before and right after its
    lookups, and once more after the whole set (minutes later: other jobs only add
    time, so a slow episode under the first blocks does not decide it), as the
    benchmark times its networks; the 10th percentile of all three is kept. No network starts after ``max_seconds`` once
    `edgefit.measure.features.MIN_NETWORKS` are done (the bound a table build may take
    on a slow host). The per-regime factors (`fit_correction`, the fallback without
    scikit-learn) are fitted on the same networks and stored beside it.
    """
    import torch

    from edgefit.measure.features import MIN_NETWORKS, FeatureCorrection
    from edgefit.measure.latency import LatencyStats, steady_allocator
    from edgefit.measure.lut import predict_latency

    steady_allocator()
    t0, before = time.time(), table.retaken
    timed = []  # (model, x, samples, prediction, label)
    for model, shape, label in feature_calibration_networks(count, seed):
        if len(timed) >= MIN_NETWORKS and time.time() - t0 > max_seconds:
            break
        x = torch.randn(*shape)
        first = measure_network(table, model, x)  # blocks right before and after the lookups,
        pred = predict_latency(  # as a network is measured wherever it is compared with the table
            model, input_shape=shape, table=table, measure=False, steady=False, correction=False
        )
        timed.append((model, x, first.samples + measure_network(table, model, x).samples, pred, label))
    rows = []  # (features, table_s, measured_s, label, load, regime)
    for model, x, samples, pred, label in timed:  # the later block: a second moment
        stats = LatencyStats.from_samples(samples + measure_network(table, model, x).samples)
        rows.append(
            (pred.features, pred.seconds, stats.p10_s, label, stats.median_s / stats.p10_s, pred.regime)
        )
    info = dict(canary_s=canary_s, created=time.time(), retakes=table.retaken - before)
    fc = FeatureCorrection(
        tuple(r[0] for r in rows),
        tuple(r[1] for r in rows),
        tuple(r[2] for r in rows),
        networks=tuple(r[3] for r in rows),
        seconds=time.time() - t0,
        load_ratio=_load_ratio([r[4] for r in rows]),
        **info,
    )
    table.put_text(correction_key("features", torch.get_num_threads()), fc.to_json())
    for regime in REGIMES:
        mine = [r for r in rows if r[5] == regime]
        if len(mine) >= 3:
            table_s, measured_s, labels, loads = ([r[i] for r in mine] for i in (1, 2, 3, 4))
            _store_factor(table, regime, table_s, measured_s, loads, labels, **info)
    return fc
