"""Low-rank and filter factorization (reference/004: low-rank layers, stacked and
separable filters).

One verb, ``factorize_(model, FactorizeConfig(...))``, three methods:

* ``"svd"``: Linear ``W (out x in) ~ U_r S_r V_r^T`` becomes ``Linear(in, r)`` then
  ``Linear(r, out)``: ``r (in + out)`` weights instead of ``in * out``.
* ``"lowrank"``: a ``k x k`` conv becomes a ``k x k`` conv to ``r`` channels then a
  ``1 x 1`` conv to ``out`` (SVD of the weight reshaped to ``out x (in k k)``).
* ``"separable"``: a ``k x k`` conv becomes ``k x 1`` (to ``r`` channels) then ``1 x k``
  (Jaderberg et al. 2014, scheme 2: SVD of the weight reshaped to
  ``(in k) x (out k)``); MACs per output pixel ``r k (in + out)`` instead of ``in out k^2``.

The rank per layer is given (``rank``), or the smallest keeping ``energy`` of the
squared singular values, or the largest whose factorized weights are at most
``param_ratio`` of the layer's. Layers whose factorization would not save
weights are left alone and listed in the result (never silently).

>>> import torch
>>> lin = torch.nn.Sequential(torch.nn.Linear(64, 32))
>>> res = factorize_(lin, FactorizeConfig(method="svd", rank=4))
>>> [tuple(m.weight.shape) for m in lin[0]]
[(4, 64), (32, 4)]
>>> res.ranks
{'0': 4}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from edgefit.errors import ConfigError, close_names

METHODS = ("svd", "lowrank", "separable")


@dataclass(frozen=True)
class FactorizeConfig:
    """Factorization options.

    Attributes:
        method: ``"svd"`` (Linear), ``"lowrank"`` or ``"separable"`` (k x k convs, k > 1).
        rank: one rank, or ``{layer: rank}``.
        energy: instead of ``rank``: keep the fewest singular values whose squares sum
            to at least this fraction of the total (0 < energy <= 1).
        param_ratio: instead: the largest rank with at most this fraction of the weights.
        layers: layers to factorize (default: every eligible layer).
    """

    method: str = "svd"
    rank: int | Mapping[str, int] | None = None
    energy: float | None = None
    param_ratio: float | None = None
    layers: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"method must be one of {METHODS}, got {self.method!r}")
        given = [x is not None for x in (self.rank, self.energy, self.param_ratio)]
        if sum(given) != 1:
            raise ConfigError("give exactly one of rank, energy or param_ratio")
        ranks = self.rank.values() if isinstance(self.rank, Mapping) else [] if self.rank is None else [self.rank]
        for r in ranks:
            if isinstance(r, bool) or not isinstance(r, int) or r < 1:
                raise ConfigError(f"rank must be a positive integer, got {r!r}")
        for name in ("energy", "param_ratio"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 1):
                raise ConfigError(f"{name} must be in (0, 1], got {v!r}")
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(self.layers))


class Factorized(nn.Sequential):
    """Two layers that replace one: ``kind`` is the method, ``rank`` the inner width."""

    def __init__(self, first: nn.Module, second: nn.Module, kind: str, rank: int) -> None:
        super().__init__(first, second)
        self.kind = kind
        self.rank = rank


@dataclass
class FactorizeResult:
    """What `factorize_` did.

    Attributes:
        ranks: ``{layer: rank}`` for every factorized layer.
        energy: ``{layer: fraction of squared singular values kept}``.
        params_before: weights of the factorized layers before.
        params_after: their weights after.
        skipped: ``{layer: reason}`` for eligible layers left alone.
    """

    ranks: dict[str, int] = field(default_factory=dict)
    energy: dict[str, float] = field(default_factory=dict)
    params_before: int = 0
    params_after: int = 0
    skipped: dict[str, str] = field(default_factory=dict)


def _eligible(model: nn.Module, method: str) -> dict[str, nn.Module]:
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, Factorized) or any(name.startswith(f) for f in out):
            continue
        if method == "svd" and isinstance(m, nn.Linear):
            out[name] = m
        elif method != "svd" and isinstance(m, nn.Conv2d) and m.groups == 1 and max(m.kernel_size) > 1 \
                and m.dilation == (1, 1) and isinstance(m.padding, tuple):
            out[name] = m
    return out


def _matrix(m: nn.Module, method: str) -> torch.Tensor:
    w = m.weight.detach().float()
    if method == "svd":
        return w
    if method == "lowrank":
        return w.reshape(w.shape[0], -1)
    o, c, kh, kw = w.shape  # rows (c, y), cols (o, x)
    return w.permute(1, 2, 0, 3).reshape(c * kh, o * kw)


def _params(m: nn.Module, method: str, r: int) -> int:
    w = m.weight
    if method == "svd":
        return r * (w.shape[0] + w.shape[1])
    o, c, kh, kw = w.shape
    if method == "lowrank":
        return r * (c * kh * kw + o)
    return r * (c * kh + o * kw)


def pick_rank(s: torch.Tensor, m: nn.Module, method: str, config: FactorizeConfig, name: str) -> int:
    """Rank for one layer from its singular values ``s`` and the config."""
    if config.rank is not None:
        r = config.rank.get(name) if isinstance(config.rank, Mapping) else config.rank
        return min(int(r), s.numel())
    if config.energy is not None:
        cum = torch.cumsum(s.double() ** 2, 0) / (s.double() ** 2).sum().clamp_min(1e-30)
        return min(int((cum < config.energy - 1e-12).sum()) + 1, s.numel())
    full = m.weight.numel()
    r = 1
    while r < s.numel() and _params(m, method, r + 1) <= config.param_ratio * full:
        r += 1
    return r


def _build(m: nn.Module, method: str, u: torch.Tensor, v: torch.Tensor, r: int) -> Factorized:
    bias = m.bias is not None
    if method == "svd":
        first, second = nn.Linear(m.in_features, r, bias=False), nn.Linear(r, m.out_features, bias=bias)
        first.weight.data, second.weight.data = v.contiguous(), u.contiguous()
    elif method == "lowrank":
        o, c, kh, kw = m.weight.shape
        first = nn.Conv2d(c, r, (kh, kw), m.stride, m.padding, bias=False)
        second = nn.Conv2d(r, o, 1, bias=bias)
        first.weight.data = v.reshape(r, c, kh, kw).contiguous()
        second.weight.data = u.reshape(o, r, 1, 1).contiguous()
    else:
        o, c, kh, kw = m.weight.shape
        first = nn.Conv2d(c, r, (kh, 1), (m.stride[0], 1), (m.padding[0], 0), bias=False)
        second = nn.Conv2d(r, o, (1, kw), (1, m.stride[1]), (0, m.padding[1]), bias=bias)
        first.weight.data = u.reshape(c, kh, r).permute(2, 0, 1).unsqueeze(-1).contiguous()
        second.weight.data = v.reshape(r, o, kw).permute(1, 0, 2).unsqueeze(2).contiguous()
    if bias:
        second.bias.data = m.bias.detach().clone()
    dtype = m.weight.dtype
    return Factorized(first.to(dtype), second.to(dtype), method, r)


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def factorize_(model: nn.Module, config: FactorizeConfig) -> FactorizeResult:
    """Replace eligible layers by factorized pairs, in place.

    Raises:
        ConfigError: a named layer is not eligible for the method.
    """
    layers = _eligible(model, config.method)
    names = config.layers or (tuple(config.rank) if isinstance(config.rank, Mapping) else tuple(layers))
    for n in names:
        if n not in layers:
            raise ConfigError(f"cannot factorize {n!r} with {config.method!r}: not an eligible layer."
                              f"{close_names(n, layers)} Eligible: {', '.join(layers) or 'none'}")
    res = FactorizeResult()
    for n in names:
        m = layers[n]
        u, s, vh = torch.linalg.svd(_matrix(m, config.method), full_matrices=False)
        r = pick_rank(s, m, config.method, config, n)
        if _params(m, config.method, r) >= m.weight.numel():
            res.skipped[n] = f"rank {r} would not save weights"
            continue
        root = s[:r].sqrt()
        a, b = u[:, :r] * root, root[:, None] * vh[:r]
        _replace(model, n, _build(m, config.method, a, b, r))
        res.ranks[n] = r
        res.energy[n] = float((s[:r] ** 2).sum() / (s**2).sum().clamp_min(1e-30))
        res.params_before += m.weight.numel()
        res.params_after += _params(m, config.method, r)
    return res


def factorized_layers(model: nn.Module) -> dict[str, dict]:
    """``{layer: {kind, rank}}`` of the `Factorized` modules (for saving)."""
    return {n: {"kind": m.kind, "rank": m.rank} for n, m in model.named_modules() if isinstance(m, Factorized)}


def refactorize_(model: nn.Module, layers: Mapping[str, Mapping]) -> nn.Module:
    """Rebuild the factorized structure recorded by `factorized_layers` (weights to be loaded).

    Raises:
        DataError: a recorded layer is missing or not eligible.
    """
    from edgefit.errors import DataError

    for name, info in layers.items():
        try:
            m = model.get_submodule(name)
        except AttributeError:
            raise DataError(f"factorized layer {name!r} is not in the base model") from None
        if m not in _eligible(model, info["kind"]).values():
            raise DataError(f"layer {name!r} cannot be factorized with {info['kind']!r}")
        r = int(info["rank"])
        rows, cols = _matrix(m, info["kind"]).shape
        _replace(model, name, _build(m, info["kind"], torch.zeros(rows, r), torch.zeros(r, cols), r))
    return model
