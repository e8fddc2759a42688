"""What every reduced-precision family shares: the config base, the stored
state, straight-through estimators, activation hooks and the apply loop.

A family is a config dataclass (a :class:`FamilyConfig` subclass) plus two
factories registered with :func:`edgefit.compress.quantize.register_quantizer`:
a *weight quantizer* (an ``nn.Module`` mapping the latent float weight to its
quantized value, differentiable through a straight-through estimator, and
giving the integer codes the file stores) and, optionally, an *activation
quantizer* installed as a forward pre-hook on the layer.

Stored state (:class:`QuantState`): integer ``codes`` of the weight's shape in
``[0, 2**bits)`` and either a per-group table ``levels`` (``weight =
levels[g, code]``, float32; binary, ternary, log) or a per-group affine map
(``weight = float32((code - zero_point) * scale)`` in float64; linear, fixed
point). Groups run along axis 0 (one group, or one per output channel).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from edgefit.compress._layers import check_each, per_layer, select_layers
from edgefit.errors import ConfigError

# Layers the binary/ternary/log families handle; other weight layers are reported and kept in float.
SUPPORTED_LAYERS = (nn.Linear, nn.Conv2d)


def check_bits(value, lo: int, hi: int, what: str, family: str, where: str | None = None) -> None:
    """One line when ``value`` is not an integer bit width the family supports
    (``where``: the mapping entry it came from, e.g. ``bits['fc']``)."""
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        span = f"{lo}" if lo == hi else f"{lo}..{hi}"
        raise ConfigError(f"{family} supports {span}-bit {what}, got {value!r}" + (f" for {where}" if where else ""))


@dataclass(frozen=True)
class FamilyConfig:
    """Options every family shares.

    Attributes:
        keep_first_last: leave the first and the last weight layer in float (as
            BWN, XNOR-Net, TWN and TTQ do).
        layers: layers to quantize (default: every Linear/Conv2d).
    """

    keep_first_last: bool = False
    layers: tuple[str, ...] | None = None

    family = "base"
    layer_types = SUPPORTED_LAYERS
    weight_bits = (1, 1)
    act_bits_range = (0, 0)
    per_layer_bits = False  # ``bits`` may be ``{layer: bits}``

    def __post_init__(self) -> None:
        if not isinstance(self.keep_first_last, bool):
            raise ConfigError(f"keep_first_last must be True or False, got {self.keep_first_last!r}")
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(self.layers))
        bits = getattr(self, "bits", None)
        if isinstance(bits, Mapping) and not self.per_layer_bits:
            raise ConfigError(f"{self.family} takes one bits value for every layer, got {dict(bits)!r}")
        if bits is not None:
            check_each(bits, lambda v, where: check_bits(v, *self.weight_bits, "weights", self.family,
                                                         None if where == "bits" else where), "bits")
        act = getattr(self, "act_bits", None)
        if act is not None:
            check_bits(act, *self.act_bits_range, "activations", self.family)


def bits_for(config, layer: str) -> int:
    """The weight width ``config`` gives ``layer`` (one ``bits`` for all, or its ``{layer: bits}`` entry)."""
    bits = config.bits
    return int(bits[layer] if isinstance(bits, Mapping) else bits)


@dataclass
class QuantState:
    """One quantized layer as the file stores it.

    Attributes:
        family: the family name (``"bwn"``, ``"ttq"``...).
        bits: bits per weight code.
        codes: int64, the weight's shape, each in ``[0, 2**bits)``.
        levels: float32 ``(groups, L)`` table, or None.
        scale: float64 ``(groups,)``, with ``zero_point`` int64 ``(groups,)``, or None.
        act: JSON spec of the activation quantizer (None: float activations).
        act_bits: activation bits (32 when float).
        bias_codes: int32 bias codes (linear family with activation quantization), or None.
        bias_scale: float64 per-channel scale of the int32 bias.
    """

    family: str
    bits: int
    codes: torch.Tensor
    levels: torch.Tensor | None = None
    scale: torch.Tensor | None = None
    zero_point: torch.Tensor | None = None
    act: dict | None = None
    act_bits: int = 32
    bias_codes: torch.Tensor | None = None
    bias_scale: torch.Tensor | None = None

    def weight(self) -> torch.Tensor:
        """The float32 weight these codes decode to."""
        g = self.codes.reshape(self.codes.shape[0], -1)
        if self.levels is not None:
            idx = torch.arange(g.shape[0])[:, None] if self.levels.shape[0] > 1 else torch.zeros(1, 1, dtype=torch.long)
            w = self.levels[idx.expand_as(g), g]
        else:
            s, z = _bcast(self.scale, g), _bcast(self.zero_point, g)
            w = ((g - z).to(torch.float64) * s).to(torch.float32)
        return w.reshape(self.codes.shape)

    def bias(self) -> torch.Tensor | None:
        if self.bias_codes is None:
            return None
        return (self.bias_codes.to(torch.float64) * self.bias_scale).to(torch.float32)


def _bcast(v: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    return v.reshape(-1, 1) if v.numel() > 1 else v.reshape(1, 1)


class QuantStates(dict):
    """``{layer: QuantState}``; ``skipped`` says which layers stayed in float and why."""

    def __init__(self, *args, skipped: dict[str, str] | None = None, **kw) -> None:
        super().__init__(*args, **kw)
        self.skipped = dict(skipped or {})


# ---- straight-through estimators -------------------------------------------------------------

def ste(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """``x_hat`` forward, identity gradient backward."""
    return x + (x_hat - x).detach()


def ste_clipped(x: torch.Tensor, x_hat: torch.Tensor, limit: float = 1.0) -> torch.Tensor:
    """``x_hat`` forward; gradient passed only where ``|x| <= limit`` (hardtanh STE of BNN)."""
    xc = torch.clamp(x, -limit, limit)
    return xc + (x_hat - xc).detach()


def sign_pm1(x: torch.Tensor, *, strict: bool = False) -> torch.Tensor:
    """+1 / -1: ``x >= 0`` (weights) or, with ``strict``, ``x > 0`` (activations: a ReLU's zeros map to -1)."""
    pos = x > 0 if strict else x >= 0
    return torch.where(pos, torch.ones((), dtype=x.dtype), -torch.ones((), dtype=x.dtype))


def per_filter(x: torch.Tensor) -> torch.Tensor:
    """``x`` flattened to ``(out_channels, -1)``."""
    return x.reshape(x.shape[0], -1)


def filter_view(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.reshape((-1,) + (1,) * (like.ndim - 1))


# ---- weight quantizer base ---------------------------------------------------------------------

class WeightQuantizer(nn.Module):
    """Maps a latent weight to its quantized value (``forward``) and to its codes (``state``)."""

    family = "base"

    def forward(self, w: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def state(self, w: torch.Tensor) -> QuantState:  # pragma: no cover - abstract
        raise NotImplementedError

    def clip_(self, w: torch.Tensor) -> None:
        """Keep the latent weight in range after an optimizer step (BinaryConnect clips to [-1, 1])."""


# ---- activation quantizers as forward pre-hooks ------------------------------------------------

class ActQuantizer:
    """A forward pre-hook that replaces a layer's input by its quantized value.

    Subclasses implement ``quantize(x)`` (with a straight-through gradient) and
    ``spec()`` (a JSON dict that :func:`act_from_spec` rebuilds).
    """

    kind = "base"
    bits = 32

    def quantize(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def spec(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, module: nn.Module, args: tuple):
        return (self.quantize(args[0]), *args[1:])

    def install(self, module: nn.Module) -> None:
        remove_act_quantizer(module)
        module._edgefit_act_handle = module.register_forward_pre_hook(self)
        module.edgefit_act = self


def remove_act_quantizer(module: nn.Module) -> None:
    """Remove an installed activation quantizer (and the output hook of XNOR-Net)."""
    for attr in ("_edgefit_act_handle", "_edgefit_out_handle"):
        h = getattr(module, attr, None)
        if h is not None:
            h.remove()
            delattr(module, attr)
    if hasattr(module, "edgefit_act"):
        del module.edgefit_act


ACT_KINDS: dict[str, type] = {}


def register_act(cls: type) -> type:
    ACT_KINDS[cls.kind] = cls
    return cls


def act_from_spec(spec: dict) -> ActQuantizer:
    """Rebuild an activation quantizer from its stored JSON spec."""
    try:
        cls = ACT_KINDS[spec["kind"]]
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"unknown activation quantizer spec {spec!r}") from exc
    return cls.from_spec(spec)


# ---- calibration -------------------------------------------------------------------------------

@dataclass
class ActStats:
    """What calibration saw at one layer's input: min, max and a value sample."""

    lo: float = float("inf")
    hi: float = float("-inf")
    sample: list = field(default_factory=list)

    def values(self) -> torch.Tensor:
        return torch.cat(self.sample) if self.sample else torch.zeros(0)


def observe_inputs(model: nn.Module, names, calibration: torch.Tensor, sample_size: int = 200_000) -> dict[str, ActStats]:
    """Run ``calibration`` through ``model`` and record each named layer's input statistics."""
    mods = dict(model.named_modules())
    stats = {n: ActStats() for n in names}
    gen = torch.Generator().manual_seed(0)

    def hook_for(name):
        def hook(_m, args):
            x = args[0].detach().float().reshape(-1)
            s = stats[name]
            s.lo, s.hi = min(s.lo, float(x.min())), max(s.hi, float(x.max()))
            if x.numel() > sample_size:
                x = x[torch.randint(x.numel(), (sample_size,), generator=gen)]
            s.sample.append(x)
        return hook

    handles = [mods[n].register_forward_pre_hook(hook_for(n)) for n in names]
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i in range(0, len(calibration), 256):
                model(calibration[i : i + 256])
    finally:
        for h in handles:
            h.remove()
        model.train(was)
    return stats


def calibrate_inputs(model: nn.Module, names, calibration, what: str) -> dict[str, ActStats]:
    """Each named layer's input statistics on ``calibration``; one line when there is none
    (``what``: the quantization that needs it, for the message)."""
    inputs = as_inputs(calibration)
    if inputs is None:
        raise ConfigError(f"{what} needs calibration data: pass calibration= (a batch of inputs or a dataset)")
    return observe_inputs(model, names, inputs)


# ---- the apply loop ----------------------------------------------------------------------------

def target_layers(model: nn.Module, config: FamilyConfig) -> tuple[dict[str, nn.Module], dict[str, str]]:
    """Layers the family will quantize and ``{layer: reason}`` for those kept in float."""
    layers = select_layers(model, config.layers)
    skipped = {}
    if config.keep_first_last and config.layers is None and layers:
        names = list(layers)
        for n in {names[0], names[-1]}:
            skipped[n] = "first/last layer kept in float (keep_first_last)"
    for n, m in layers.items():
        if n in skipped:
            continue
        if not isinstance(m, config.layer_types):
            skipped[n] = f"{type(m).__name__} is not supported by {config.family}; kept in float"
        elif isinstance(m, nn.Conv2d) and m.groups != 1 and config.family in ("xnor", "bnn"):
            skipped[n] = f"grouped Conv2d (groups={m.groups}) is not supported by {config.family}; kept in float"
    bits = getattr(config, "bits", None)
    if isinstance(bits, Mapping):  # {layer: bits}: every key a layer; layers it does not name stay float
        named = per_layer(bits, select_layers(model, None), "bits")
        skipped.update({n: "bits gives it no width; kept in float" for n in layers if n not in named and n not in skipped})
    return {n: m for n, m in layers.items() if n not in skipped}, skipped


def needs_calibration(config: FamilyConfig) -> bool:
    return getattr(config, "act_bits", None) is not None and getattr(config, "act_calibrated", True)


def as_inputs(calibration) -> torch.Tensor | None:
    """Calibration inputs as a float tensor (an ArrayDataset gives its training images)."""
    if calibration is None:
        return None
    if hasattr(calibration, "x_train"):
        calibration = calibration.x_train[:512]
    t = torch.as_tensor(calibration)
    if t.ndim == 0 or len(t) == 0:
        raise ConfigError("calibration data is empty")
    return t.float()


def finalize_layer(name: str, m: nn.Module, wq: WeightQuantizer, act: ActQuantizer | None) -> QuantState:
    """Write the quantized weight into ``m``, attach the state and the activation hook."""
    st = wq.state(m.weight.detach())
    with torch.no_grad():
        m.weight.copy_(st.weight().to(m.weight.dtype))
        if st.bias_codes is not None and m.bias is not None:
            m.bias.copy_(st.bias().to(m.bias.dtype))
    if act is not None:
        act.install(m)
        st.act, st.act_bits = act.spec(), act.bits
    m.edgefit_quant = st
    return st


def quant_states(model: nn.Module) -> dict[str, QuantState]:
    """The family states attached to a model's layers."""
    return {n: m.edgefit_quant for n, m in model.named_modules() if hasattr(m, "edgefit_quant")}


def xnor_scale_map(x: torch.Tensor, m: nn.Module) -> torch.Tensor:
    """XNOR-Net's K: mean |x| over channels, averaged over each output's receptive field."""
    if isinstance(m, nn.Linear):
        return x.abs().mean(dim=-1, keepdim=True)
    a = x.abs().mean(dim=1, keepdim=True)
    kh, kw = m.kernel_size
    k = torch.full((1, 1, kh, kw), 1.0 / (kh * kw), dtype=x.dtype)
    pad = m.padding if isinstance(m.padding, tuple) else m.padding
    return F.conv2d(a, k, stride=m.stride, padding=pad, dilation=m.dilation)
