"""Sparsity on real activations: zeros per layer, MACs that zero gating / skipping
avoid and the energy that saves under the dataflow model, and activation
compression (reference/003, "Exploit Sparsity" and "Compression of Weights &
Activations").

Activations are the inputs of each Conv2d / Linear (the ifmaps that move between
DRAM and the accelerator), taken as 16-bit dynamic fixed point: ``q =
round(x / step)`` with ``step = max|x| / (2^15 - 1)`` per layer; a value is zero
when ``q`` is. Three codes, sizes in bits against 16 bits a value:

* ``zero flag`` (the lecture's): a zero -> ``1'b0``, anything else ->
  ``{1'b1, 16'bx}``.
* ``rlc`` (Eyeriss): (run of up to 31 zeros in 5 bits, 16-bit value) pairs, three
  pairs and a termination bit in a 64-bit word; a longer run emits (31, 0).
* ``huffman``: a Huffman code over the 16-bit values of the layer (the code
  table is not counted).

MAC counts are exact (a convolution of the zero masks): a MAC on a padding
position has a zero activation and counts as gated, as the hardware sees it.

Energy: zero gating (Eyeriss v1) skips the MAC and the weight RF read when the
ifmap is zero; zero skipping skips the ALU and every RF access of the MAC when
either operand is zero; RLC shrinks the ifmap's DRAM traffic. The RF energy per
MAC is the layer's own under ``config.dataflow`` on ``config.arch`` (per data
type, averaged over its MACs), and each saving is taken against that layer's
energy.

>>> zero_flag_bits(np.array([0, 0, 5, 0]))
20
>>> rlc_bits(np.array([0, 0, 5, 0]))
64
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from edgefit.accel.arch import SpatialArch, paper_array
from edgefit.accel.layers import ConvLayer
from edgefit.errors import ConfigError

WORD_BITS = 16


def quantize16(x: np.ndarray) -> np.ndarray:
    """16-bit dynamic fixed point of ``x`` (one step per tensor), as int64."""
    peak = float(np.abs(x).max()) if x.size else 0.0
    if peak == 0.0:
        return np.zeros(x.shape, dtype=np.int64)
    return np.rint(x / (peak / (2**15 - 1))).astype(np.int64)


def zero_flag_bits(q: np.ndarray) -> int:
    """The lecture's code: 1 bit per zero, 1 + 16 bits per other value."""
    zeros = int((q == 0).sum())
    return zeros + (q.size - zeros) * (1 + WORD_BITS)


def rlc_pairs(q: np.ndarray, run_bits: int = 5) -> int:
    """Number of (run, level) pairs Eyeriss's run-length code needs for the flat stream ``q``."""
    flat = np.asarray(q).ravel()
    nz = np.flatnonzero(flat)
    limit = (1 << run_bits) - 1
    gaps = np.diff(np.concatenate(([-1], nz))) - 1          # zeros before each nonzero
    pairs = len(nz) + int((gaps // (limit + 1)).sum())        # a run over 31 needs (31, 0) pairs
    tail = len(flat) - (nz[-1] + 1 if len(nz) else 0)
    pairs += -(-tail // (limit + 1)) if tail else 0          # trailing zeros as (31, 0) / (k, 0)
    return int(pairs)


def rlc_bits(q: np.ndarray, run_bits: int = 5) -> int:
    """Bits of Eyeriss's RLC: three (5 + 16)-bit pairs plus a termination bit per 64-bit word."""
    return int(-(-rlc_pairs(q, run_bits) // 3) * 64)


def huffman_bits16(q: np.ndarray) -> int:
    """Huffman-coded size of the 16-bit values (code table excluded)."""
    from edgefit.compress.encode.huffman import code_lengths, huffman_bits

    sym = np.asarray(q).ravel() + 2**15
    return huffman_bits(sym, code_lengths(sym, 2**16))


@dataclass(frozen=True)
class SparsityConfig:
    """Energy model for the savings: the array, the dataflow and the batch it is mapped at."""

    arch: SpatialArch = field(default_factory=paper_array)
    dataflow: str = "rs"
    batch: int = 16

    def __post_init__(self) -> None:
        from edgefit.accel.dataflow import get_dataflow

        get_dataflow(self.dataflow)
        if not isinstance(self.batch, int) or self.batch < 1:
            raise ConfigError(f"batch must be an integer >= 1, got {self.batch!r}")


@dataclass(frozen=True)
class LayerSparsity:
    """One Conv2d / Linear on real inputs.

    Attributes:
        name: module path.
        macs: MACs over all inputs.
        ifmap_zero: share of zero input activations.
        weight_zero: share of zero weights.
        ofmap_zero: share of zero outputs after the next ReLU (or of the raw output).
        macs_nonzero_ifmap: MACs whose activation operand is nonzero (what gating keeps).
        macs_nonzero_both: MACs with both operands nonzero (what skipping keeps).
        bits: uncompressed / zero flag / rlc / huffman bits of the ifmap.
        energy: the layer's model energy (MAC units) and the savings of gating,
            skipping and RLC on DRAM.
        layer: its shape, at the batch of the measured inputs.
        zeros: zero entries of (ifmap, filters, ofmap after the next ReLU), for the
            energy-estimation tool's format.
    """

    name: str
    macs: int
    ifmap_zero: float
    weight_zero: float
    ofmap_zero: float
    macs_nonzero_ifmap: int
    macs_nonzero_both: int
    bits: dict[str, int]
    energy: dict[str, float]
    layer: ConvLayer | None = None
    zeros: tuple[int, int, int] = (0, 0, 0)

    def reduction(self, code: str) -> float:
        """Bandwidth reduction of a code: uncompressed bits / coded bits."""
        return self.bits["raw"] / self.bits[code]


def _nonzero_macs(module: nn.Module, x: torch.Tensor) -> tuple[int, int]:
    """Exact MACs with a nonzero activation, and with both operands nonzero."""
    a = (x != 0).double()
    wnz = (module.weight != 0).double()
    if isinstance(module, nn.Conv2d):
        kw = {"stride": module.stride, "padding": module.padding, "dilation": module.dilation, "groups": module.groups}
        both = torch.nn.functional.conv2d(a, wnz, **kw).sum()
        act = torch.nn.functional.conv2d(a, torch.ones_like(wnz), **kw).sum()
    else:
        both = (a @ wnz.T).sum()
        act = a.sum() * module.out_features
    return int(round(act.item())), int(round(both.item()))


def _capture(model: nn.Module, inputs: torch.Tensor) -> dict[str, tuple[nn.Module, torch.Tensor, torch.Tensor]]:
    seen, hooks = {}, []
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Conv2d | nn.Linear):
            hooks.append(mod.register_forward_hook(
                lambda m, inp, out, name=name: seen.__setitem__(name, (m, inp[0].detach(), out.detach()))))
    try:
        with torch.no_grad():
            model.eval()
            model(inputs)
    finally:
        for h in hooks:
            h.remove()
    return seen


def measure_sparsity(model: nn.Module, inputs: torch.Tensor, config: SparsityConfig | None = None,
                     name: str | None = None) -> SparsityReport:
    """Run ``model`` on ``inputs`` and measure zeros, skippable MACs, savings and compression per layer.

    Args:
        model: a trained network.
        inputs: a batch of real inputs (e.g. the digits test split).
        config: energy model for the savings.
        name: label of the model.
    """
    from edgefit.accel.dataflow import map_layer
    from edgefit.accel.layers import layers_from_profile
    from edgefit.metrics import profile

    config = config or SparsityConfig()
    seen = _capture(model, inputs)
    prof = profile(model, input_shape=(1, *inputs.shape[1:]))
    shapes = {layer.name: layer for layer in layers_from_profile(prof, batch=config.batch)[0]}
    rows = []
    for lname, (mod, x, y) in seen.items():
        act_macs, both_macs = _nonzero_macs(mod, x)
        macs = int(np.prod(y.shape)) * (mod.weight[0].numel())
        q = quantize16(x.numpy())
        bits = {"raw": q.size * WORD_BITS, "zero flag": zero_flag_bits(q), "rlc": rlc_bits(q), "huffman": huffman_bits16(q)}
        energy = _savings(map_layer(shapes[lname], config.arch, config.dataflow), macs, act_macs, both_macs, bits)
        zeros = (int((x == 0).sum()), int((mod.weight == 0).sum()), int((torch.relu(y) == 0).sum()))
        rows.append(LayerSparsity(lname, macs, zeros[0] / x.numel(), zeros[1] / mod.weight.numel(), zeros[2] / y.numel(),
                                  act_macs, both_macs, bits, energy, shapes[lname].with_batch(int(inputs.shape[0])), zeros))
    return SparsityReport(name or type(model).__name__, int(inputs.shape[0]), tuple(rows))


def _savings(mapped, macs: int, act_macs: int, both_macs: int, bits: dict[str, int]) -> dict[str, float]:
    """Per-MAC energy of the mapped layer, scaled to the measured MACs, and what each technique saves."""
    per_mac = mapped.total / mapped.layer.macs
    c = mapped.arch.costs
    total = per_mac * macs
    gated = macs - act_macs
    skipped = macs - both_macs
    dram_ifmap = mapped.energy["dram"]["ifmap"] / mapped.layer.macs * macs
    return {
        "total": total,
        "gating": gated * (c.alu + mapped.energy["rf"]["weight"] / mapped.layer.macs),
        "skipping": skipped * (c.alu + sum(mapped.energy["rf"].values()) / mapped.layer.macs),
        "rlc_dram": dram_ifmap * (1 - bits["rlc"] / bits["raw"]),
    }


@dataclass(frozen=True)
class SparsityReport:
    """Per-layer sparsity of one model on one batch of inputs."""

    model: str
    images: int
    layers: tuple[LayerSparsity, ...]

    def write_energy_tool(self, path):
        """The layers with their measured zero counts, in the energy-estimation tool's format."""
        from edgefit.accel.energy_tool import write_energy_tool

        return write_energy_tool([r.layer for r in self.layers], path, [r.zeros for r in self.layers])

    def total_reduction(self, code: str) -> float:
        return sum(r.bits["raw"] for r in self.layers) / sum(r.bits[code] for r in self.layers)

    def table(self, markdown: bool = False) -> str:
        from edgefit.accel.compare import render_table

        head = ["layer", "ifmap zeros", "weight zeros", "MACs kept (gating)", "MACs kept (skipping)",
                "zero-flag BW", "RLC BW", "Huffman BW", "energy saved (gating+RLC)", "energy saved (skipping+RLC)"]
        lines = []
        for r in self.layers:
            e = r.energy
            lines.append([r.name, f"{100 * r.ifmap_zero:.1f}%", f"{100 * r.weight_zero:.1f}%",
                          f"{100 * r.macs_nonzero_ifmap / r.macs:.1f}%", f"{100 * r.macs_nonzero_both / r.macs:.1f}%",
                          f"{r.reduction('zero flag'):.2f}x", f"{r.reduction('rlc'):.2f}x", f"{r.reduction('huffman'):.2f}x",
                          f"{100 * (e['gating'] + e['rlc_dram']) / e['total']:.1f}%",
                          f"{100 * (e['skipping'] + e['rlc_dram']) / e['total']:.1f}%"])
        lines.append(["total", "", "", "", "", f"{self.total_reduction('zero flag'):.2f}x",
                      f"{self.total_reduction('rlc'):.2f}x", f"{self.total_reduction('huffman'):.2f}x", "", ""])
        return render_table(head, lines, markdown)
