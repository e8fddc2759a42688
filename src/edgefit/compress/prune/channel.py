"""Channel pruning that removes channels: smaller Conv/BN/Linear modules.

``prune_(model, ChannelConfig(ratio=0.5, importance="l2", input_shape=...))``
traces the model into dependency groups (`channel_groups`), scores every
group's channels, and shrinks every member layer of a group together (reference/004,
"Channel Pruning": removing channels makes the layers, not just the weights, smaller).

Lower level, for search algorithms (NetAdapt) that pick their own channels:

* ``groups = channel_groups(model, example_inputs)``: each group's ``name``,
  member ``layers`` and ``width``; ``groups.unprunable`` names the rest and why;
* ``channel_importance(model, groups, "l2")``: ``{group: score per channel}``;
* ``prune_groups_(model, {group_name: keep_indices}, groups=groups)``: shrink
  the named groups to those channels (indices into ``0..width-1``) in place.

Importance criteria (higher = keep):

* ``"l1"`` / ``"l2"``: norm of each channel's output filter, summed over every
  layer that produces the group's channels (residual streams have several);
* ``"bn_scale"``: ``|gamma|`` of the group's batch norms (network slimming, Liu et al. 2017);
* ``"taylor"``: first-order Taylor ``|sum(w * dL/dw)|`` over all the group's weight
  slices (Molchanov et al. 2019); needs ``data`` (a batch ``(x, y)``). For attention
  heads the sum runs over the head's ``out_proj`` columns only, which is exactly
  ``dL/dxi_h`` for a gate ``xi_h`` on the head's output (Michel et al. 2019);
* ``"fmap"``: feature-map reconstruction (see `edgefit.compress.prune.fmap`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from edgefit.compress.prune.groups import _BNS, _CONVS, ChannelGroup, ChannelGroups, channel_groups
from edgefit.compress.prune.heads import head_counts, set_head_counts_, sync_head_counts_
from edgefit.errors import ConfigError, close_names

IMPORTANCES = ("l1", "l2", "bn_scale", "taylor", "fmap", "random")
SCOPES = ("local", "global")


def _check_ratio(v, what: str) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
        raise ConfigError(f"{what} must be a fraction of channels to remove in [0, 1), got {v!r}")


@dataclass(frozen=True)
class ChannelConfig:
    """Channel pruning options.

    Attributes:
        ratio: fraction of channels to remove: one value for every prunable group,
            or ``{group or layer name: value}`` (unnamed groups are left alone).
        importance: ``"l1"``, ``"l2"``, ``"bn_scale"``, ``"taylor"``, ``"fmap"`` or ``"random"``.
        scope: ``"local"`` removes ``ratio`` of each group; ``"global"`` ranks all
            channels by importance normalised per group (score / group mean) and
            removes ``ratio`` of all channels (at least one kept per group).
        input_shape: example input shape (batch 1) used to trace the model.
        round_to: kept widths are rounded to a multiple of this (hardware-friendly).
        seed: for ``"random"``.
    """

    ratio: float | Mapping[str, float] = 0.5
    importance: str = "l2"
    scope: str = "local"
    input_shape: tuple[int, ...] | None = None
    round_to: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.ratio, Mapping):
            if not self.ratio:
                raise ConfigError("ratio mapping is empty")
            for k, v in self.ratio.items():
                _check_ratio(v, f"ratio[{k!r}]")
        else:
            _check_ratio(self.ratio, "ratio")
        if self.importance not in IMPORTANCES:
            raise ConfigError(f"importance must be one of {IMPORTANCES}, got {self.importance!r}")
        if self.scope not in SCOPES:
            raise ConfigError(f"scope must be one of {SCOPES}, got {self.scope!r}")
        if self.scope == "global" and isinstance(self.ratio, Mapping):
            raise ConfigError("scope='global' takes one ratio, not a mapping")
        if isinstance(self.round_to, bool) or not isinstance(self.round_to, int) or self.round_to < 1:
            raise ConfigError(f"round_to must be a positive integer, got {self.round_to!r}")
        if self.input_shape is not None:
            object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))


# importance ---------------------------------------------------------------------------------------

def _slices(model: nn.Module, group: ChannelGroup, roles=("out",)):
    """Yield ``(param, dim, index[width, k])`` for the group's weight slices with a role in ``roles``."""
    mods = dict(model.named_modules())
    for (m, r), idx in group.index.items():
        if r not in roles:
            continue
        mod = mods[m]
        if r == "bn":
            if mod.weight is not None:
                yield mod.weight, 0, idx
            continue
        if isinstance(mod, _CONVS) and r == "in" and mod.groups > 1:
            continue  # grouped conv inputs: the columns differ per block; outputs carry the score
        yield mod.weight, 0 if r == "out" else 1, idx


def _score(t: torch.Tensor, dim: int, idx: torch.Tensor, p: int | None) -> torch.Tensor:
    rows = t.detach().movedim(dim, 0).reshape(t.shape[dim], -1).float()
    per = rows.abs().sum(1) if p == 1 else rows.pow(2).sum(1) if p == 2 else rows.sum(1)
    return per[idx].sum(1)


def channel_importance(model: nn.Module, groups: ChannelGroups, importance: str = "l2", *,
                       data: tuple[torch.Tensor, torch.Tensor] | None = None, seed: int = 0,
                       ) -> dict[str, torch.Tensor]:
    """``{group: score per channel}`` (higher = more important).

    >>> import torch
    >>> from edgefit.zoo import create
    >>> m = create("lenet5_digits")
    >>> g = channel_groups(m, torch.zeros(1, 1, 8, 8))
    >>> channel_importance(m, g, "l1")["features.0"].shape
    torch.Size([20])
    """
    if importance not in IMPORTANCES:
        raise ConfigError(f"importance must be one of {IMPORTANCES}, got {importance!r}")
    if importance == "fmap":
        from edgefit.compress.prune.fmap import fmap_importance

        return fmap_importance(model, groups, data)
    if importance == "taylor":
        return _taylor(model, groups, data)
    out = {}
    gen = torch.Generator().manual_seed(seed)
    for name, g in groups.items():
        if importance == "random":
            out[name] = torch.rand(g.width, generator=gen)
        elif importance == "bn_scale":
            sl = list(_slices(model, g, ("bn",)))
            if not sl:
                raise ConfigError(f"group {name!r} has no batch norm; bn_scale importance needs one")
            out[name] = sum(_score(w.abs(), d, i, None) for w, d, i in sl)
        else:
            p = 1 if importance == "l1" else 2
            s = sum(_score(w, d, i, p) for w, d, i in _slices(model, g))
            out[name] = s if p == 1 else s.sqrt()
    return out


def _taylor(model, groups, data, batch_size: int = 64) -> dict[str, torch.Tensor]:
    """Group Taylor score (Molchanov et al. 2019): per mini-batch ``(sum over the group's
    weight slices of w * dL/dw)^2``, summed over the mini-batches of ``data``; a head
    group sums over its ``out_proj`` columns only (the head-gate gradient of Michel et al. 2019)."""
    if data is None:
        raise ConfigError("taylor importance needs data: a batch (inputs, labels)")
    x, y = data
    was = model.training
    model.eval()
    out = {name: torch.zeros(g.width) for name, g in groups.items()}
    for i in range(0, len(y), batch_size):
        model.zero_grad(set_to_none=True)
        with torch.enable_grad():
            nn.functional.cross_entropy(model(x[i : i + batch_size]), y[i : i + batch_size]).backward()
        for name, g in groups.items():
            total = torch.zeros(g.width)
            for w, d, idx in _slices(model, g, ("in",) if g.kind == "heads" else ("out", "in", "bn")):
                if w.grad is not None:
                    total += _score(w * w.grad, d, idx, None)
            out[name] += total.pow(2)
    model.zero_grad(set_to_none=True)
    model.train(was)
    return out


# choosing the kept channels ------------------------------------------------------------------------

def _n_keep(width: int, ratio: float, round_to: int, blocks: int = 1) -> int:
    per = width // blocks
    keep = max(1, int(round(per * (1 - ratio))))
    if round_to > 1 and per >= round_to:
        keep = max(round_to, int(round(keep / round_to)) * round_to)
    return min(per, keep) * blocks


def keep_top(score: torch.Tensor, n_keep: int, blocks: torch.Tensor | None = None) -> torch.Tensor:
    """Sorted indices of the ``n_keep`` highest scores (an equal share per block when given)."""
    if blocks is None:
        return torch.sort(torch.argsort(score, descending=True, stable=True)[:n_keep]).values
    nb = int(blocks.max()) + 1
    per = max(1, n_keep // nb)
    kept = []
    for b in range(nb):
        idx = torch.nonzero(blocks == b).flatten()
        kept.append(idx[torch.argsort(score[idx], descending=True, stable=True)[:per]])
    return torch.sort(torch.cat(kept)).values


def resolve_ratios(groups: ChannelGroups, ratio) -> dict[str, float]:
    """``{group: ratio}`` from one ratio or a ``{group or layer: ratio}`` mapping.

    Raises:
        ConfigError: a name matches no group and no member layer (frozen groups are named as such).
    """
    if not isinstance(ratio, Mapping):
        return {n: float(ratio) for n in groups}
    out = {}
    for key, v in ratio.items():
        if key in groups.groups:
            out[key] = float(v)
            continue
        owner = groups.group_of(key)
        if owner is not None:
            out[owner] = float(v)
            continue
        if key in groups.unprunable:
            raise ConfigError(f"group {key!r} cannot be pruned: {groups.unprunable[key]}")
        names = list(groups.groups) + [m for g in groups.values() for m in g.producers]
        raise ConfigError(f"ratio names {key!r}, which matches no channel group or layer.{close_names(key, names)}")
    return out


def _global_keep(scores, groups, ratio, round_to) -> dict[str, torch.Tensor]:
    names = list(groups)
    norm = torch.cat([scores[n] / scores[n].mean().clamp_min(1e-12) for n in names])
    owner = torch.cat([torch.full((groups[n].width,), i) for i, n in enumerate(names)])
    n_remove = int(round(ratio * norm.numel()))
    order = torch.argsort(norm, stable=True)[:n_remove]
    removed = torch.bincount(owner[order], minlength=len(names))
    out = {}
    for i, n in enumerate(names):
        g = groups[n]
        nb = 1 if g.blocks is None else int(g.blocks.max()) + 1
        r = float(removed[i]) / g.width
        out[n] = keep_top(scores[n], _n_keep(g.width, min(r, 0.999), round_to, nb), g.blocks)
    return out


def prune_channels_(model: nn.Module, config: ChannelConfig, *, example_inputs=None,
                    data: tuple[torch.Tensor, torch.Tensor] | None = None,
                    groups: ChannelGroups | None = None) -> dict[str, torch.Tensor]:
    """Remove channels in place; return ``{group: kept channel indices}``.

    >>> import torch
    >>> from edgefit.zoo import create
    >>> m = create("lenet5_digits")
    >>> kept = prune_channels_(m, ChannelConfig(ratio=0.5, input_shape=(1, 1, 8, 8)))
    >>> m.features[0].out_channels, m.features[3].out_channels, m.classifier[0].in_features
    (10, 25, 100)

    Raises:
        ConfigError: no example input, a ratio out of range, or a name that matches nothing.
    """
    if groups is None:
        groups = channel_groups(model, example_inputs, input_shape=config.input_shape)
    ratios = resolve_ratios(groups, config.ratio) if config.scope == "local" else {}
    sub = groups if config.scope == "global" else ChannelGroups(
        {n: groups[n] for n in ratios}, groups.unprunable, groups.input_shapes)
    scores = channel_importance(model, sub, config.importance, data=data, seed=config.seed)
    if config.scope == "global":
        keep = _global_keep(scores, groups, float(config.ratio), config.round_to)
    else:
        keep = {}
        for n, r in ratios.items():
            g = groups[n]
            nb = 1 if g.blocks is None else int(g.blocks.max()) + 1
            keep[n] = keep_top(scores[n], _n_keep(g.width, r, config.round_to, nb), g.blocks)
    original = copy.deepcopy(model) if config.importance == "fmap" else None
    prune_groups_(model, keep, groups=groups)
    if original is not None:
        refit_consumers_(model, original, groups, keep, data)
    return keep


def refit_consumers_(model: nn.Module, original: nn.Module, groups: ChannelGroups,
                     keep: Mapping[str, torch.Tensor], data) -> dict[str, float]:
    """Least-squares local fine-tuning of every layer that lost input channels, in trace order.

    Returns ``{layer: relative reconstruction error}``.
    """
    from edgefit.compress.prune.fmap import least_squares_refit_

    x = data[0] if isinstance(data, (tuple, list)) else data
    removed = _keep_per_module(groups, keep)
    mods = dict(original.named_modules())
    errors = {}
    for m in dict.fromkeys(c for n in keep for c in groups[n].consumers):
        mod = mods[m]
        size = mod.out_channels if isinstance(mod, _CONVS) else mod.out_features
        errors.update(least_squares_refit_(model, original, {m: _kept(size, removed.get((m, "out")))}, x))
    return errors


# removing channels -------------------------------------------------------------------------------

def _keep_per_module(groups: ChannelGroups, keep: Mapping[str, Sequence[int]]) -> dict:
    removed: dict[tuple[str, str], list[torch.Tensor]] = {}
    for name, kept in keep.items():
        g = groups[name]
        kept = torch.as_tensor(list(kept) if not isinstance(kept, torch.Tensor) else kept, dtype=torch.long)
        if kept.numel() == 0:
            raise ConfigError(f"group {name!r}: keep at least one channel")
        if int(kept.min()) < 0 or int(kept.max()) >= g.width or torch.unique(kept).numel() != kept.numel():
            raise ConfigError(f"group {name!r}: keep indices must be distinct and in 0..{g.width - 1}")
        if g.blocks is not None:
            counts = torch.bincount(g.blocks[kept], minlength=int(g.blocks.max()) + 1)
            if not bool((counts == counts[0]).all()):
                raise ConfigError(f"group {name!r}: a grouped conv needs the same number of kept channels "
                                  f"in each of its {counts.numel()} blocks, got {counts.tolist()}")
        drop = torch.ones(g.width, dtype=torch.bool)
        drop[kept] = False
        for key, idx in g.index.items():
            removed.setdefault(key, []).append(idx[drop].flatten())
    return {k: torch.cat(v) for k, v in removed.items()}


def _kept(size: int, removed: torch.Tensor | None) -> torch.Tensor:
    mask = torch.ones(size, dtype=torch.bool)
    if removed is not None and removed.numel():
        mask[removed] = False
    return torch.nonzero(mask).flatten()


def _set(mod: nn.Module, name: str, value: torch.Tensor | None) -> None:
    if value is None:
        return
    old = getattr(mod, name)
    if isinstance(old, nn.Parameter):
        setattr(mod, name, nn.Parameter(value.contiguous(), requires_grad=old.requires_grad))
    else:
        setattr(mod, name, value.contiguous())


def _shrink_conv(mod: nn.Module, keep_out: torch.Tensor, keep_in: torch.Tensor | None) -> None:
    w = mod.weight.detach()
    g = mod.groups
    if g > 1 and g == mod.in_channels:  # depthwise: inputs follow outputs
        mult = mod.out_channels // mod.in_channels
        new_in = keep_out.numel() // mult
        w = w[keep_out]
        mod.groups = new_in
        mod.in_channels = new_in
    elif g > 1:
        in_per, out_per = mod.in_channels // g, mod.out_channels // g
        keep_in = torch.arange(mod.in_channels) if keep_in is None else keep_in
        rows = []
        for b in range(g):
            o = keep_out[(keep_out >= b * out_per) & (keep_out < (b + 1) * out_per)]
            i = keep_in[(keep_in >= b * in_per) & (keep_in < (b + 1) * in_per)] - b * in_per
            rows.append(w[o][:, i])
        w = torch.cat(rows)
        mod.in_channels = keep_in.numel()
    else:
        if keep_in is not None:
            w = w[:, keep_in]
            mod.in_channels = keep_in.numel()
        w = w[keep_out]
    mod.out_channels = keep_out.numel()
    _set(mod, "weight", w)
    if mod.bias is not None:
        _set(mod, "bias", mod.bias.detach()[keep_out])


def _shrink_module(mod: nn.Module, removed: dict[str, torch.Tensor]) -> None:
    if isinstance(mod, _CONVS):
        keep_out = _kept(mod.out_channels, removed.get("out"))
        keep_in = _kept(mod.in_channels, removed["in"]) if "in" in removed else None
        _shrink_conv(mod, keep_out, keep_in)
    elif isinstance(mod, nn.Linear):
        keep_out = _kept(mod.out_features, removed.get("out"))
        keep_in = _kept(mod.in_features, removed.get("in"))
        _set(mod, "weight", mod.weight.detach()[keep_out][:, keep_in])
        if mod.bias is not None:
            _set(mod, "bias", mod.bias.detach()[keep_out])
        mod.out_features, mod.in_features = keep_out.numel(), keep_in.numel()
    elif isinstance(mod, _BNS):
        keep = _kept(mod.num_features, removed.get("bn"))
        for name in ("weight", "bias", "running_mean", "running_var"):
            t = getattr(mod, name)
            if t is not None:
                _set(mod, name, t.detach()[keep])
        mod.num_features = keep.numel()


def prune_groups_(model: nn.Module, keep: Mapping[str, Sequence[int] | torch.Tensor], *,
                  groups: ChannelGroups | None = None, example_inputs=None) -> dict[str, torch.Tensor]:
    """Shrink the named groups to the kept channel indices, in place.

    Groups not named are left as they are. ``groups`` describes the model as it is
    now; after this call it is stale (trace again to prune further).

    Returns:
        ``{group: kept indices}`` as LongTensors.

    Raises:
        ConfigError: an unknown group, an index out of range, no channel kept, or
            unequal kept counts across a grouped conv's blocks.
    """
    if groups is None:
        groups = channel_groups(model, example_inputs)
    for name in keep:
        if name not in groups.groups and name in groups.unprunable:
            raise ConfigError(f"group {name!r} cannot be pruned: {groups.unprunable[name]}")
        groups[name]  # raises with close names
    removed = _keep_per_module(groups, keep)
    per_module: dict[str, dict[str, torch.Tensor]] = {}
    for (m, r), idx in removed.items():
        per_module.setdefault(m, {})[r] = idx
    mods = dict(model.named_modules())
    with torch.no_grad():
        for m, rem in per_module.items():
            _shrink_module(mods[m], rem)
    sync_head_counts_(model, [n for n in keep if groups[n].kind == "heads"])
    return {n: torch.as_tensor(k, dtype=torch.long) for n, k in keep.items()}


def layer_widths(model: nn.Module) -> dict[str, dict[str, int]]:
    """``{module: {in, out, groups}}`` for every Conv/Linear/BN and ``{heads, kv_heads}`` for every
    multi-head attention: what a saved pruned model records."""
    out = {}
    for name, mod in model.named_modules():
        if isinstance(mod, _CONVS):
            out[name] = {"in": mod.in_channels, "out": mod.out_channels, "groups": mod.groups}
        elif isinstance(mod, nn.Linear):
            out[name] = {"in": mod.in_features, "out": mod.out_features}
        elif isinstance(mod, _BNS):
            out[name] = {"out": mod.num_features}
        elif (heads := head_counts(mod)) is not None:
            out[name] = heads
    return out


def shrink_to_widths_(model: nn.Module, widths: Mapping[str, Mapping[str, int]]) -> nn.Module:
    """Resize modules (weights uninitialised-zero) to ``layer_widths`` of a pruned model.

    Raises:
        DataError: a module is missing or of another kind.
    """
    from edgefit.errors import DataError

    mods = dict(model.named_modules())
    for name, w in widths.items():
        mod = mods.get(name)
        if mod is None:
            raise DataError(f"the pruned model's layer {name!r} is not in the base model")
        try:
            _resize(mod, w)
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"cannot resize {name!r} ({type(mod).__name__}) to {dict(w)}: {exc}") from None
    return model


def _resize(mod: nn.Module, w: Mapping[str, int]) -> None:
    def fresh(t, shape):
        return None if t is None else torch.zeros(shape, dtype=t.dtype, device=t.device)

    if isinstance(mod, _CONVS):
        k = tuple(mod.weight.shape[2:])
        mod.in_channels, mod.out_channels, mod.groups = int(w["in"]), int(w["out"]), int(w["groups"])
        _set(mod, "weight", fresh(mod.weight, (mod.out_channels, mod.in_channels // mod.groups, *k)))
        _set(mod, "bias", fresh(mod.bias, (mod.out_channels,)))
    elif isinstance(mod, nn.Linear):
        mod.in_features, mod.out_features = int(w["in"]), int(w["out"])
        _set(mod, "weight", fresh(mod.weight, (mod.out_features, mod.in_features)))
        _set(mod, "bias", fresh(mod.bias, (mod.out_features,)))
    elif isinstance(mod, _BNS):
        mod.num_features = int(w["out"])
        for name in ("weight", "bias", "running_mean", "running_var"):
            _set(mod, name, fresh(getattr(mod, name), (mod.num_features,)))
    elif head_counts(mod) is not None:
        set_head_counts_(mod, w)
    else:
        raise TypeError("not a Conv, Linear, BatchNorm or multi-head attention")
