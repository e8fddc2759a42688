"""A feature-based host correction (nn-Meter style): measured / table sum from a network's features.

One factor per regime, fitted on six networks that all held depthwise blocks,
over-corrected networks without them (measured 1.26-1.50x their table sum against
a median 1.06x for networks the benchmark drew). What a summed table of isolated
layers misses depends on what the network is made of: how much of the sum is
depthwise convolution (memory bound, short kernels), how many calls there are
(each has a fixed cost that a layer looped alone amortises differently), how
large the weights and activations are against the cache. So the correction is a
regression of ``log(measured / table sum)`` on `FEATURE_NAMES`:

* the shares of the table sum by op kind (`op_class`): ``conv``, ``depthwise``,
  ``linear``, ``elementwise`` (norms, activations, adds, concatenations),
  ``pooling``, ``overhead`` (the table's container-call and leaf-context rows);
* ``log_table_s`` (the sum, seconds), ``log_s_per_call`` (sum / calls) and
  ``log_calls`` (the leaf and functional calls);
* ``log2_weights_cache`` and ``log2_activations_cache``: parameter and buffer
  bytes, and the bytes of every row's output, in units of the largest CPU cache;
* ``hot``: 1 when the table timed the layers alone in cache, 0 when rotated.

The model is a ridge regression on standardised features
(``sklearn.linear_model.RidgeCV``, its penalty chosen by leave-one-out), fitted
on random calibration networks only (`edgefit.measure.correction.feature_calibration_networks`).
Its interval is split-conformal on leave-one-out residuals (each network's
residual from a model fitted without it, the penalty chosen again inside), so a
new network exchangeable with the calibration set falls inside with at least the
stated confidence (`edgefit.measure.correction.HostCorrection`, ``interval_method="conformal"``).
A prediction's log ratio is clipped to the range the calibration networks showed:
the model does not extrapolate.

Nothing fitted is stored: the features and targets are (JSON), and the model is
fitted again on load (milliseconds), so nothing loaded executes code.

It is an option (``predict_latency(correction_model="features")``): the default
is the per-regime factor fitted on the same networks, which put more of the
benchmark's networks within +-10% (`edgefit.measure.lut.host_correction`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

from edgefit.errors import ConfigError
from edgefit.measure.correction import CalibrationState

OP_CLASSES = ("conv", "depthwise", "linear", "elementwise", "pooling", "overhead")
FEATURE_NAMES = (
    *(f"share_{c}" for c in OP_CLASSES),
    "log_table_s",
    "log_s_per_call",
    "log_calls",
    "log2_weights_cache",
    "log2_activations_cache",
    "hot",
)
MIN_NETWORKS = 8
ALPHAS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
_LINEAR = frozenset({"Linear", "Bilinear", "LazyLinear"})


def sklearn_available() -> bool:
    """Whether scikit-learn can be imported (else the per-regime factor is the fallback)."""
    try:
        import sklearn.linear_model  # noqa: F401
    except ImportError:
        return False
    return True


def op_class(kind: str, module=None) -> str:
    """The op kind a profile row's time counts under (see `OP_CLASSES`).

    A convolution whose groups equal its input channels (and exceed 1) is depthwise.

    >>> import torch.nn as nn
    >>> op_class("Conv2d", nn.Conv2d(8, 8, 3, groups=8)), op_class("Conv2d", nn.Conv2d(8, 16, 3, groups=2))
    ('depthwise', 'conv')
    >>> op_class("Linear"), op_class("MaxPool2d"), op_class("BatchNorm2d"), op_class("(container calls)")
    ('linear', 'pooling', 'elementwise', 'overhead')
    """
    if kind.startswith("("):
        return "overhead"
    if "Conv" in kind:
        groups = getattr(module, "groups", 1)
        return "depthwise" if groups > 1 and groups == getattr(module, "in_channels", -1) else "conv"
    if kind in _LINEAR:
        return "linear"
    if "Pool" in kind:
        return "pooling"
    return "elementwise"


def feature_vector(
    times: dict[str, float],
    calls: int,
    weight_bytes: float,
    activation_bytes: float,
    cache_bytes: float,
    hot: bool,
) -> dict[str, float]:
    """`FEATURE_NAMES` from the table's seconds per op class and the network's sizes.

    >>> f = feature_vector({"conv": 3e-3, "elementwise": 1e-3}, 4, 2 * 2**20, 2**20, 2**20, True)
    >>> f["share_conv"], f["share_elementwise"], round(f["log_table_s"], 4), round(f["log_s_per_call"], 4)
    (0.75, 0.25, -5.5215, -6.9078)
    >>> round(f["log_calls"], 4), f["log2_weights_cache"], f["log2_activations_cache"], f["hot"]
    (1.3863, 1.0, 0.0, 1.0)
    """
    total = sum(times.values())
    if not total > 0 or calls < 1 or cache_bytes <= 0:
        raise ConfigError("features need a positive table sum, at least one call and a cache size")
    out = {f"share_{c}": times.get(c, 0.0) / total for c in OP_CLASSES}
    out.update(
        log_table_s=math.log(total),
        log_s_per_call=math.log(total / calls),
        log_calls=math.log(calls),
        log2_weights_cache=math.log2(max(weight_bytes, 1.0) / cache_bytes),
        log2_activations_cache=math.log2(max(activation_bytes, 1.0) / cache_bytes),
        hot=1.0 if hot else 0.0,
    )
    return out


def network_features(model, profile, rows, regime: str, cache_bytes: float) -> dict[str, float]:
    """A predicted network's features: its table rows (`edgefit.measure.LayerPrediction`) by op class.

    Calls are the rows with a time other than the overhead rows; weights are the
    parameters and buffers, activations every profile row's output (fp32 bytes).
    """
    times: dict[str, float] = {}
    calls = 0
    for r in rows:
        if r.seconds is None:
            continue
        overhead = r.name.startswith("(")  # the table's "(container calls)"-style rows
        try:
            module = model.get_submodule(r.name) if r.name and not overhead else None
        except AttributeError:
            module = None
        cls = "overhead" if overhead else op_class(r.kind, module)
        times[cls] = times.get(cls, 0.0) + r.seconds
        calls += cls != "overhead" and r.seconds > 0
    weights = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    acts = sum(4 * math.prod(r.output_shape) for r in profile.layers if _concrete(r.output_shape))
    return feature_vector(times, max(1, calls), weights, acts, cache_bytes, regime == "hot")


def _concrete(shape) -> bool:
    return bool(shape) and all(isinstance(d, int) for d in shape)


def conformal_rank(n: int, p: float) -> int:
    """The 1-based order statistic of ``n`` held-out residuals that bounds a new one at level ``p``.

    Split-conformal: the ``ceil((n + 1) p)``-th smallest for an upper bound
    (``p`` > 0.5), the ``floor((n + 1) p)``-th for a lower one, clipped to 1..n
    (with too few residuals for the level the extreme one is used: the bound then
    holds with less than ``p``).

    >>> conformal_rank(40, 0.95), conformal_rank(40, 0.05), conformal_rank(10, 0.95), conformal_rank(10, 0.05)
    (39, 2, 10, 1)
    """
    k = math.ceil((n + 1) * p - 1e-9) if p > 0.5 else math.floor((n + 1) * p + 1e-9)
    return min(n, max(1, k))


def conformal_bound(residuals: Sequence[float], p: float) -> float:
    """The conformal ``p`` bound of a new residual from held-out ``residuals`` (`conformal_rank`).

    >>> conformal_bound([0.3, -0.1, 0.0, 0.1, 0.2, -0.2, 0.05, -0.05, 0.15, -0.15], 0.95)
    0.3
    """
    if not residuals:
        raise ConfigError("a conformal bound needs residuals")
    return sorted(residuals)[conformal_rank(len(residuals), p) - 1]


def _matrix(features: Sequence[dict]) -> list[list[float]]:
    return [[float(f[name]) for name in FEATURE_NAMES] for f in features]


def _fit(x, y):
    """Ridge on standardised features, penalty by leave-one-out (`ALPHAS`)."""
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), RidgeCV(alphas=ALPHAS)).fit(x, y)


def held_out_residuals(x, y) -> list[float]:
    """Leave-one-out residuals ``y_i - fit_without_i(x_i)`` (the penalty chosen again each time)."""
    out = []
    for i in range(len(y)):
        rest = [j for j in range(len(y)) if j != i]
        model = _fit([x[j] for j in rest], [y[j] for j in rest])
        out.append(float(y[i] - model.predict([x[i]])[0]))
    return out


@dataclass(frozen=True)
class FeatureCorrection(CalibrationState):
    """The calibration networks' features and measured / table ratios; the fitted model on demand.

    Attributes:
        features: one `FEATURE_NAMES` dict per calibration network.
        table_s, measured_s: their table sums and measured uncontended latencies.
        networks, canary_s, created, retakes, load_ratio: their labels and the host's
            state at calibration (`edgefit.measure.correction.CalibrationState`, keyword-only).
        seconds: how long the calibration took.
    """

    features: tuple[dict, ...]
    table_s: tuple[float, ...]
    measured_s: tuple[float, ...]
    seconds: float = 0.0
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        n = len(self.features)
        if n < MIN_NETWORKS or len(self.table_s) != n or len(self.measured_s) != n:
            raise ConfigError(
                f"a feature correction needs at least {MIN_NETWORKS} networks with features, "
                f"table sums and measurements (got {n}, {len(self.table_s)}, {len(self.measured_s)})"
            )
        if min(self.table_s) <= 0 or min(self.measured_s) <= 0:
            raise ConfigError("table sums and measurements must be positive")
        missing = [k for k in FEATURE_NAMES if any(k not in f for f in self.features)]
        if missing:
            raise ConfigError(f"calibration features lack {', '.join(missing)}")

    @property
    def targets(self) -> list[float]:
        """``log(measured / table sum)`` per calibration network."""
        return [math.log(m / t) for t, m in zip(self.table_s, self.measured_s, strict=True)]

    def _model(self):
        if "model" not in self._cache:
            self._cache["model"] = _fit(_matrix(self.features), self.targets)
        return self._cache["model"]

    @property
    def residuals(self) -> tuple[float, ...]:
        """Held-out relative residuals ``measured / predicted - 1`` of the calibration networks."""
        if "residuals" not in self._cache:
            logs = held_out_residuals(_matrix(self.features), self.targets)
            self._cache["residuals"] = tuple(math.expm1(r) for r in logs)
        return self._cache["residuals"]

    def factor(self, features: dict) -> float:
        """measured / table sum predicted for a network with ``features`` (clipped to the range seen)."""
        y = float(self._model().predict(_matrix([features]))[0])
        return math.exp(min(max(self.targets), max(min(self.targets), y)))

    def correction_for(self, features: dict, regime: str):
        """A `HostCorrection` for one network: its factor and the conformal interval of the residuals."""
        from edgefit.measure.correction import HostCorrection

        return HostCorrection(
            regime,
            self.factor(features),
            self.residuals,
            interval_method="conformal",
            model="features",
            **self.calibration_state(),
        )

    def coefficients(self) -> dict[str, float]:
        """The fitted model's coefficients per feature (in standardised units) and its intercept."""
        pipe = self._model()
        ridge = pipe[-1]
        out = dict(zip(FEATURE_NAMES, (float(c) for c in ridge.coef_), strict=True))
        out["intercept"] = float(ridge.intercept_)
        out["alpha"] = float(ridge.alpha_)
        return out

    def to_json(self) -> str:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "_cache"}
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FeatureCorrection:
        try:
            d = json.loads(text)
            for k in ("features", "table_s", "measured_s", "networks"):
                d[k] = tuple(d.get(k, ()))
            return cls(**d)
        except (ValueError, TypeError, KeyError) as exc:
            raise ConfigError(f"stored feature correction is not usable: {exc}") from None
