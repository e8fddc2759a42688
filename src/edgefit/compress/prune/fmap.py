"""Feature-map-based channel selection with least-squares local fine-tuning
(reference/003, "Feature-Map-Based Method" and "Fast Local Fine-Tuning"; the
channel form is ThiNet, Luo et al. 2017, and He et al. 2017).

Remove the channels with the smallest *joint* impact on the next layers' outputs
instead of the smallest magnitude. Each channel ``c`` of a group adds a term
``z_c`` to every consumer layer's output (conv: ``W[:, c] * x_c``; Linear: the
columns of its features); greedily remove the channel whose removal keeps
``|| sum of removed z ||^2`` smallest. The removal order is the importance.

Then fine-tune locally: each consumer's remaining weights are refit by least
squares so that the pruned layer, fed the pruned network's inputs, reproduces
the original layer's outputs: ``W' = argmin ||Y - X' W'||^2`` (bias kept). This
takes one forward pass and one solve per layer, no back-propagation.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from edgefit.compress.prune.groups import _CONVS, ChannelGroups
from edgefit.errors import ConfigError

MAX_ROWS = 2048


def _capture(model: nn.Module, names, x: torch.Tensor, outputs: bool = False) -> dict[str, torch.Tensor]:
    mods = dict(model.named_modules())
    got: dict[str, torch.Tensor] = {}
    hooks = []
    for n in names:
        def hook(_m, args, out, n=n):
            if n not in got:
                got[n] = (out if outputs else args[0]).detach()
        hooks.append(mods[n].register_forward_hook(hook))
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
    return got


def _conv_cols(mod: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """im2col of a Conv2d input: ``[positions, Cin, kh*kw]``."""
    cols = nn.functional.unfold(x, mod.kernel_size, mod.dilation, mod.padding, mod.stride)
    b, _, positions = cols.shape
    cols = cols.view(b, mod.in_channels, -1, positions).permute(0, 3, 1, 2)
    return cols.reshape(b * positions, mod.in_channels, -1)


def _sample(n: int, k: int, gen: torch.Generator) -> torch.Tensor:
    return torch.randperm(n, generator=gen)[:k] if n > k else torch.arange(n)


def _contrib(mod: nn.Module, x: torch.Tensor, idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor | None:
    """``[rows, width]``: each group channel's additive term in (a sample of) the layer's outputs."""
    w = mod.weight.detach().float()
    if isinstance(mod, nn.Conv2d) and mod.groups == 1:
        cols = _conv_cols(mod, x.float())
        cols = cols[_sample(cols.shape[0], 256, gen)]
        outs = _sample(w.shape[0], 8, gen)
        z = torch.einsum("ock,pck->poc", w[outs].reshape(len(outs), w.shape[1], -1), cols)
    elif isinstance(mod, nn.Linear):
        xs = x.float().reshape(-1, x.shape[-1])
        xs = xs[_sample(xs.shape[0], 64, gen)]
        outs = _sample(w.shape[0], 32, gen)
        z = xs[:, None, :] * w[outs][None]
    else:
        return None
    z = z.reshape(-1, z.shape[-1])
    return z[:, idx].sum(-1)


def fmap_importance(model: nn.Module, groups: ChannelGroups, data) -> dict[str, torch.Tensor]:
    """``{group: score}``: the later a channel leaves the greedy removal, the higher its score.

    Args:
        data: a batch ``(inputs, labels)`` or inputs alone (labels are not used).

    Raises:
        ConfigError: no data, or a group whose consumers are all grouped convs or unknown.
    """
    if data is None:
        raise ConfigError("fmap importance needs data: a batch of inputs")
    x = data[0] if isinstance(data, (tuple, list)) else data
    consumers = sorted({m for g in groups.values() for m in g.consumers})
    inputs = _capture(model, consumers, x)
    mods = dict(model.named_modules())
    gen = torch.Generator().manual_seed(0)
    out = {}
    for name, g in groups.items():
        parts = [_contrib(mods[m], inputs[m], g.index[(m, "in")], gen) for m in g.consumers if m in inputs]
        parts = [p for p in parts if p is not None]
        if not parts:
            raise ConfigError(f"group {name!r}: fmap importance needs a consumer that is a Linear or an ungrouped Conv2d")
        z = torch.cat(parts)
        z = z[_sample(z.shape[0], MAX_ROWS, gen)]
        out[name] = greedy_removal_order(z)
    return out


def greedy_removal_order(z: torch.Tensor) -> torch.Tensor:
    """Score per column of ``z`` ``[rows, width]``: removal step at which it left (width - 1 = kept longest).

    Each step removes the column that keeps ``||sum of removed columns||^2`` smallest.

    >>> greedy_removal_order(torch.tensor([[1.0, -1.0, 5.0], [0.0, 0.0, 1.0]])).tolist()
    [0.0, 1.0, 2.0]
    """
    z = z.double()
    width = z.shape[1]
    s = torch.zeros(z.shape[0], dtype=z.dtype)
    sq = (z * z).sum(0)
    left = torch.ones(width, dtype=torch.bool)
    score = torch.zeros(width)
    for step in range(width):
        cost = (s @ z) * 2 + sq
        cost[~left] = float("inf")
        c = int(torch.argmin(cost))
        score[c] = step
        left[c] = False
        s += z[:, c]
    return score


def _targets(original: nn.Module, pruned: nn.Module, layers, x) -> tuple[dict, dict]:
    return _capture(pruned, layers, x), _capture(original, layers, x, outputs=True)


def least_squares_refit_(pruned: nn.Module, original: nn.Module, layers: Mapping[str, torch.Tensor],
                         x: torch.Tensor, *, ridge: float = 1e-6) -> dict[str, float]:
    """Refit each layer's weights so the pruned layer reproduces the original's outputs.

    Args:
        pruned: the pruned model (changed in place).
        original: the model before pruning.
        layers: ``{layer: kept output-channel indices of the original layer}``.
        x: a batch of inputs.
        ridge: Tikhonov term relative to the mean diagonal (keeps the solve stable).

    Returns:
        ``{layer: relative reconstruction error after the refit}``.
    """
    xs, ys = _targets(original, pruned, list(layers), x)
    mods = dict(pruned.named_modules())
    errors = {}
    for name, keep_out in layers.items():
        mod = mods[name]
        if isinstance(mod, _CONVS) and (mod.groups != 1 or not isinstance(mod, nn.Conv2d)):
            continue
        y = ys[name].float()
        if isinstance(mod, nn.Conv2d):
            a = _conv_cols(mod, xs[name].float()).reshape(-1, mod.in_channels * mod.weight[0, 0].numel())
            y = y[:, keep_out].permute(0, 2, 3, 1).reshape(-1, len(keep_out))
        elif isinstance(mod, nn.Linear):
            a = xs[name].float().reshape(-1, mod.in_features)
            y = y.reshape(-1, y.shape[-1])[:, keep_out]
        else:
            continue
        if mod.bias is not None:
            y = y - mod.bias.detach().float()
        w = solve_least_squares(a, y, ridge)
        with torch.no_grad():
            mod.weight.copy_(w.T.reshape(mod.weight.shape).to(mod.weight.dtype))
        errors[name] = float((a @ w - y).norm() / y.norm().clamp_min(1e-12))
    return errors


def solve_least_squares(a: torch.Tensor, y: torch.Tensor, ridge: float = 1e-6) -> torch.Tensor:
    """``argmin_W ||A W - Y||^2 + ridge * mean(diag(A^T A)) ||W||^2`` via the normal equations (float64).

    >>> a = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    >>> solve_least_squares(a, a @ torch.tensor([[3.0], [-1.0]]), ridge=0.0).flatten().tolist()
    [3.0, -1.0]
    """
    a64, y64 = a.double(), y.double()
    g = a64.T @ a64
    lam = ridge * float(g.diagonal().mean()) if g.numel() else 0.0
    g += lam * torch.eye(g.shape[0], dtype=g.dtype)
    return torch.linalg.solve(g, a64.T @ y64).float()
