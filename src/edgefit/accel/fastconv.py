"""Fast convolution algorithms that run: im2col (Toeplitz), Winograd F(2x2,3x3) and
F(4x4,3x3), FFT, Strassen, and Gauss's 3-multiplication complex product.

Each algorithm computes ``torch.nn.functional.conv2d``'s result (cross-correlation,
no bias) and has an exact count of real multiplies and adds for a layer, transforms
included. Conventions of the counts:

* direct / im2col: C·R·S multiplies and C·R·S - 1 adds per output (the Toeplitz
  matrix only rearranges data; its redundancy is C·R·S·E·F / (C·H·W)).
* Winograd F(m x m, 3 x 3) (Lavin & Gray, CVPR 2016): a constant transform costs,
  per row of its matrix, one multiply per entry outside {0, +1, -1} and one add
  per nonzero entry after the first; 2-D transforms apply the matrix on both sides.
  The element-wise products are (m + 2)^2 per tile, channel and filter; the filter
  transform is listed apart because it can be done once, offline.
* FFT (Mathieu et al., ICLR 2014): sizes rounded up to powers of two (the run uses
  the same sizes); a complex radix-2 FFT of n points costs n/2·log2 n complex
  multiplies (Gauss: 3 real multiplies, 5 real adds, as the run does) and
  n·log2 n complex adds (2 real adds); a real-input transform costs half the
  complex one. The run itself calls pocketfft (``torch.fft``), whose internal
  operation count differs: the count is that of the textbook algorithm.
* Strassen (the im2col GEMM): 7 half-size products and 18 half-size block adds
  per level, odd sizes padded by one, down to an ordinary product at ``leaf``.

>>> x = torch.randn(1, 2, 6, 6, dtype=torch.float64)
>>> w = torch.randn(3, 2, 3, 3, dtype=torch.float64)
>>> ref = torch.nn.functional.conv2d(x, w)
>>> all(torch.allclose(f(x, w), ref) for f in (im2col_conv, winograd_f2, winograd_f4, fft_conv, strassen_conv))
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from edgefit.accel.layers import ConvLayer
from edgefit.errors import ConfigError

# ---- Gauss ------------------------------------------------------------------------------------


def gauss_complex_mul(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(a+bi)(c+di) with 3 real multiplies: k1 = c(a+b), k2 = a(d-c), k3 = b(c+d); re = k1-k3, im = k1+k2."""
    a, b, c, d = x.real, x.imag, y.real, y.imag
    k1, k2, k3 = c * (a + b), a * (d - c), b * (c + d)
    return torch.complex(k1 - k3, k1 + k2)


# ---- im2col -----------------------------------------------------------------------------------


def im2col_conv(x: torch.Tensor, w: torch.Tensor, stride: int = 1, padding: int = 0, matmul=None) -> torch.Tensor:
    """Convolution as one GEMM over the Toeplitz (im2col) matrix; ``matmul`` defaults to ``@``."""
    n, _, h, wd = x.shape
    m, _, r, s = w.shape
    cols = F.unfold(x, (r, s), padding=padding, stride=stride)  # N x CRS x EF
    e = (h + 2 * padding - r) // stride + 1
    f = (wd + 2 * padding - s) // stride + 1
    wm = w.reshape(m, -1)
    if matmul is None:
        out = wm @ cols
    else:
        out = matmul(wm, cols.permute(1, 0, 2).reshape(cols.shape[1], -1))
        out = out.reshape(m, n, -1).permute(1, 0, 2)
    return out.reshape(n, m, e, f)


def toeplitz_redundancy(layer: ConvLayer) -> float:
    """Elements of the im2col matrix over those of the ifmap: C·R·S·E·F / (C·H·W)."""
    return layer.c * layer.r * layer.s * layer.e * layer.f / (layer.c * layer.h * layer.w)


# ---- Winograd ---------------------------------------------------------------------------------

_WINOGRAD = {
    2: (
        [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
        [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]],
        [[1, 1, 1, 0], [0, 1, -1, -1]],
    ),
    4: (
        [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
         [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
        [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
         [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]],
        [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
    ),
}


def winograd_matrices(m: int, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B^T, G, A^T) of F(m x m, 3 x 3), Lavin & Gray's matrices."""
    if m not in _WINOGRAD:
        raise ConfigError(f"Winograd F({m}x{m},3x3) is not provided; use m = 2 or 4")
    return tuple(torch.tensor(t, dtype=dtype) for t in _WINOGRAD[m])


def winograd_conv(x: torch.Tensor, w: torch.Tensor, m: int = 2, padding: int = 0) -> torch.Tensor:
    """Stride-1 3x3 convolution by Winograd F(m x m, 3 x 3) on (m+2) x (m+2) tiles."""
    if w.shape[-2:] != (3, 3):
        raise ConfigError(f"Winograd F({m}x{m},3x3) needs 3x3 filters, got {tuple(w.shape[-2:])}")
    bt, g, at = (t.to(x.dtype) for t in winograd_matrices(m))
    alpha = m + 2
    x = F.pad(x, (padding,) * 4)
    n, c, h, wd = x.shape
    e, f = h - 2, wd - 2
    th, tw = -(-e // m), -(-f // m)
    x = F.pad(x, (0, tw * m + 2 - wd, 0, th * m + 2 - h))
    d = x.unfold(2, alpha, m).unfold(3, alpha, m)                    # N C th tw a a
    v = torch.einsum("ij,nchwjk,lk->nchwil", bt, d, bt)              # B^T d B
    u = torch.einsum("ij,mcjk,lk->mcil", g, w, g)                    # G g G^T
    prod = torch.einsum("mcij,nchwij->nmhwij", u, v)
    y = torch.einsum("ij,nmhwjk,lk->nmhwil", at, prod, at)           # A^T M A
    y = y.permute(0, 1, 2, 4, 3, 5).reshape(n, w.shape[0], th * m, tw * m)
    return y[:, :, :e, :f]


def winograd_f2(x, w, padding: int = 0):
    return winograd_conv(x, w, 2, padding)


def winograd_f4(x, w, padding: int = 0):
    return winograd_conv(x, w, 4, padding)


def transform_cost(matrix) -> tuple[int, int]:
    """(multiplies, adds) of applying a constant matrix to one vector."""
    mults = adds = 0
    for row in matrix:
        nz = [v for v in row if v != 0]
        mults += sum(1 for v in nz if abs(v) != 1)
        adds += max(len(nz) - 1, 0)
    return mults, adds


def _two_sided(matrix, cols: int) -> tuple[int, int]:
    """Cost of T X T^T for a constant k x a matrix T and an a x ``cols`` X."""
    m1, a1 = transform_cost(matrix)
    rows_out = len(matrix)
    return m1 * cols + m1 * rows_out, a1 * cols + a1 * rows_out


# ---- FFT --------------------------------------------------------------------------------------


def _pow2(n: int) -> int:
    return 1 << (n - 1).bit_length()


def fft_conv(x: torch.Tensor, w: torch.Tensor, padding: int = 0) -> torch.Tensor:
    """Stride-1 convolution by FFT on power-of-two sizes, products by Gauss's 3-multiply trick."""
    x = F.pad(x, (padding,) * 4)
    _, _, h, wd = x.shape
    _, _, r, s = w.shape
    size = (_pow2(h), _pow2(wd))
    xf = torch.fft.rfft2(x, s=size)
    wf = torch.fft.rfft2(w, s=size).conj()            # correlation = product with the conjugate
    a, b = xf.real, xf.imag
    c, d = wf.real, wf.imag
    k1 = torch.einsum("nchw,mchw->nmhw", a + b, c)
    k2 = torch.einsum("nchw,mchw->nmhw", a, d - c)    # (d - c) and (c + d): per filter, offline
    k3 = torch.einsum("nchw,mchw->nmhw", b, c + d)
    y = torch.fft.irfft2(torch.complex(k1 - k3, k1 + k2), s=size)
    return y[:, :, : h - r + 1, : wd - s + 1]


def fft_cost(rows: int, cols: int, real: bool = True) -> tuple[int, int]:
    """(real multiplies, real adds) of a 2-D radix-2 FFT (see the module doc)."""
    def one(n):
        lg = int(math.log2(n))
        return (n // 2) * lg, n * lg
    cm = rows * one(cols)[0] + cols * one(rows)[0]
    ca = rows * one(cols)[1] + cols * one(rows)[1]
    mults, adds = 3 * cm, 5 * cm + 2 * ca
    return (mults // 2, adds // 2) if real else (mults, adds)


# ---- Strassen ---------------------------------------------------------------------------------


def strassen(a: torch.Tensor, b: torch.Tensor, leaf: int = 64) -> torch.Tensor:
    """A @ B by Strassen's 7-product recursion, odd sizes padded by one, ordinary below ``leaf``."""
    m, k = a.shape
    n = b.shape[1]
    if min(m, k, n) <= leaf:
        return a @ b
    m2, k2, n2 = -(-m // 2), -(-k // 2), -(-n // 2)
    a = F.pad(a, (0, 2 * k2 - k, 0, 2 * m2 - m))
    b = F.pad(b, (0, 2 * n2 - n, 0, 2 * k2 - k))
    a11, a12, a21, a22 = a[:m2, :k2], a[:m2, k2:], a[m2:, :k2], a[m2:, k2:]
    b11, b12, b21, b22 = b[:k2, :n2], b[:k2, n2:], b[k2:, :n2], b[k2:, n2:]
    p1 = strassen(a11, b12 - b22, leaf)
    p2 = strassen(a11 + a12, b22, leaf)
    p3 = strassen(a21 + a22, b11, leaf)
    p4 = strassen(a22, b21 - b11, leaf)
    p5 = strassen(a11 + a22, b11 + b22, leaf)
    p6 = strassen(a12 - a22, b21 + b22, leaf)
    p7 = strassen(a11 - a21, b11 + b12, leaf)
    top = torch.cat([p5 + p4 - p2 + p6, p1 + p2], dim=1)
    bottom = torch.cat([p3 + p4, p5 + p1 - p3 - p7], dim=1)
    return torch.cat([top, bottom], dim=0)[:m, :n]


def strassen_cost(m: int, k: int, n: int, leaf: int = 64) -> tuple[int, int]:
    """(multiplies, adds) of `strassen` on an m x k by k x n product, exactly as it runs."""
    if min(m, k, n) <= leaf:
        return m * k * n, m * n * (k - 1)
    m2, k2, n2 = -(-m // 2), -(-k // 2), -(-n // 2)
    mults, adds = strassen_cost(m2, k2, n2, leaf)
    return 7 * mults, 7 * adds + 5 * m2 * k2 + 5 * k2 * n2 + 8 * m2 * n2


def strassen_conv(x: torch.Tensor, w: torch.Tensor, stride: int = 1, padding: int = 0, leaf: int = 64) -> torch.Tensor:
    """im2col, then the GEMM by Strassen."""
    return im2col_conv(x, w, stride, padding, matmul=lambda a, b: strassen(a, b, leaf))


# ---- per-layer counts and the comparison ------------------------------------------------------

ALGORITHMS = ("direct", "im2col", "winograd_f2", "winograd_f4", "fft", "strassen")


@dataclass(frozen=True)
class OpCount:
    """Real multiplies and adds of one algorithm on one layer; ``offline_*`` is the filter
    transform (done once per set of weights, not per inference) and is not in ``mults``/``adds``."""

    mults: int
    adds: int
    offline_mults: int = 0
    offline_adds: int = 0


def _winograd_count(layer: ConvLayer, m: int) -> OpCount | None:
    if (layer.r, layer.s) != (3, 3) or layer.stride != (1, 1):
        return None
    bt, g, at = _WINOGRAD[m]
    alpha = m + 2
    tiles = -(-layer.e // m) * -(-layer.f // m)
    n, mm, c, cin = layer.n, layer.m, layer.c, layer.c * layer.groups
    im, ia = _two_sided(bt, alpha)
    om, oa = _two_sided(at, alpha)
    fm, fa = _two_sided(g, 3)
    mults = n * mm * c * tiles * alpha**2 + n * cin * tiles * im + n * mm * tiles * om
    adds = n * mm * tiles * alpha**2 * (c - 1) + n * cin * tiles * ia + n * mm * tiles * oa
    return OpCount(mults, adds, mm * c * fm, mm * c * fa)


def _fft_count(layer: ConvLayer) -> OpCount | None:
    if layer.stride != (1, 1):
        return None
    p, q = _pow2(layer.hp), _pow2(layer.wp)
    bins = p * (q // 2 + 1)
    fwd_m, fwd_a = fft_cost(p, q)
    n, m, c, cin = layer.n, layer.m, layer.c, layer.c * layer.groups
    mults = (n * cin + n * m) * fwd_m + 3 * n * m * c * bins
    adds = (n * cin + n * m) * fwd_a + n * cin * bins + 3 * n * m * (c - 1) * bins + 2 * n * m * bins
    return OpCount(mults, adds, m * c * fwd_m, m * c * (fwd_a + 2 * bins))


def count_ops(layer: ConvLayer, algorithm: str, leaf: int = 64) -> OpCount | None:
    """Exact real multiplies and adds of ``algorithm`` on ``layer``; ``None`` when it does not apply
    (Winograd: 3x3 stride 1 only; FFT: stride 1 only)."""
    direct = OpCount(layer.macs, layer.n * layer.m * layer.e * layer.f * (layer.c * layer.r * layer.s - 1))
    if algorithm in ("direct", "im2col"):
        return direct
    if algorithm == "winograd_f2":
        return _winograd_count(layer, 2)
    if algorithm == "winograd_f4":
        return _winograd_count(layer, 4)
    if algorithm == "fft":
        return _fft_count(layer)
    if algorithm == "strassen":
        mults, adds = strassen_cost(layer.m // layer.groups, layer.c * layer.r * layer.s, layer.n * layer.e * layer.f, leaf)
        return OpCount(mults * layer.groups, adds * layer.groups)
    raise ConfigError(f"unknown algorithm {algorithm!r}; known: {', '.join(ALGORITHMS)}")


@dataclass(frozen=True)
class ConvAlgoConfig:
    """Which algorithms to count (and time), Strassen's leaf size, timing repeats."""

    algorithms: tuple[str, ...] = ALGORITHMS
    strassen_leaf: int = 64
    repeats: int = 5

    def __post_init__(self) -> None:
        from edgefit.errors import close_names

        for a in self.algorithms:
            if a not in ALGORITHMS:
                raise ConfigError(f"unknown algorithm {a!r}; known: {', '.join(ALGORITHMS)}.{close_names(a, ALGORITHMS)}")
        if not isinstance(self.strassen_leaf, int) or self.strassen_leaf < 1:
            raise ConfigError(f"strassen_leaf must be an integer >= 1, got {self.strassen_leaf!r}")
        if not isinstance(self.repeats, int) or self.repeats < 1:
            raise ConfigError(f"repeats must be an integer >= 1, got {self.repeats!r}")


def run_algorithm(algorithm: str, x: torch.Tensor, w: torch.Tensor, layer: ConvLayer, leaf: int = 64) -> torch.Tensor:
    """Run ``algorithm`` (one group at a time for a grouped layer); direct is torch's conv2d."""
    u, pad = layer.stride[0], layer.pad[0]
    if algorithm == "direct":
        return F.conv2d(x, w, stride=layer.stride, padding=(layer.pad[0], layer.pad[2]), groups=layer.groups)
    if layer.groups > 1:
        xs, ws = x.chunk(layer.groups, 1), w.chunk(layer.groups, 0)
        return torch.cat([run_algorithm(algorithm, a, b, _one_group(layer), leaf) for a, b in zip(xs, ws, strict=True)], 1)
    fns = {
        "im2col": lambda: im2col_conv(x, w, u, pad),
        "winograd_f2": lambda: winograd_conv(x, w, 2, pad),
        "winograd_f4": lambda: winograd_conv(x, w, 4, pad),
        "fft": lambda: fft_conv(x, w, pad),
        "strassen": lambda: strassen_conv(x, w, u, pad, leaf),
    }
    return fns[algorithm]()


def _one_group(layer: ConvLayer) -> ConvLayer:
    from dataclasses import replace

    return replace(layer, m=layer.m // layer.groups, groups=1)


def applies(layer: ConvLayer, algorithm: str) -> bool:
    """Whether ``algorithm`` runs on ``layer`` (symmetric padding and square stride for the fast ones)."""
    if layer.kind != "conv":
        return algorithm in ("direct", "im2col", "strassen")
    if algorithm != "direct" and (len(set(layer.pad)) != 1 or layer.stride[0] != layer.stride[1]):
        return False
    return count_ops(layer, algorithm) is not None


def time_algorithms(algorithms, layer: ConvLayer, repeats: int = 5, leaf: int = 64, seed: int = 0) -> dict[str, list[float]]:
    """Seconds of each run (sorted) of each algorithm on random fp32 data of ``layer``'s shape.

    The algorithms run interleaved, round after round, on one intra-op thread, so a
    busy host slows them alike; the first round is a warm-up and is dropped.
    """
    import time

    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(layer.n, layer.c * layer.groups, layer.h, layer.w, generator=gen)
    w = torch.randn(layer.m, layer.c, layer.r, layer.s, generator=gen)
    times: dict[str, list[float]] = {a: [] for a in algorithms}
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            for round_ in range(repeats + 1):
                for a in algorithms:
                    t0 = time.perf_counter()
                    run_algorithm(a, x, w, layer, leaf)
                    if round_:
                        times[a].append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(old)
    return {a: sorted(t) for a, t in times.items()}


def median(values: list[float]) -> float:
    """The middle value of a sorted list (the upper one of two)."""
    return values[len(values) // 2]


@dataclass(frozen=True)
class ConvAlgoRow:
    layer: ConvLayer
    counts: dict[str, OpCount | None]
    seconds: dict[str, float] | None

    @property
    def fewest_mults(self) -> str:
        ok = {a: c.mults for a, c in self.counts.items() if c is not None}
        return min(ok, key=ok.get)

    @property
    def fastest(self) -> str | None:
        return min(self.seconds, key=self.seconds.get) if self.seconds else None


def compare_conv_algorithms(profile, config: ConvAlgoConfig | None = None, *, time: bool = False,
                            on_layer=None) -> tuple[list[ConvAlgoRow], list[tuple[str, str, int]]]:
    """Per CONV layer of ``profile``: multiplies and adds of each algorithm, and (``time``) the median
    seconds of each on this host. Returns the rows and the MAC-bearing layers not covered."""
    from edgefit.accel.layers import layers_from_profile

    config = config or ConvAlgoConfig()
    layers, uncovered = layers_from_profile(profile)
    rows = []
    for layer in layers:
        if layer.kind != "conv":
            continue
        counts = {a: (count_ops(layer, a, config.strassen_leaf) if applies(layer, a) else None) for a in config.algorithms}
        secs = None
        if time:
            runs = time_algorithms([a for a in config.algorithms if counts[a] is not None], layer,
                                   config.repeats, config.strassen_leaf)
            secs = {a: median(t) for a, t in runs.items()}
        rows.append(ConvAlgoRow(layer, counts, secs))
        if on_layer is not None:
            on_layer(layer.name)
    return rows, uncovered


def conv_algo_table(rows: list[ConvAlgoRow], markdown: bool = False) -> str:
    """Millions of multiplies per algorithm per layer, the Toeplitz redundancy, fewest and fastest."""
    from edgefit.accel.compare import render_table

    algos = list(rows[0].counts) if rows else []
    head = ["layer", "im2col redundancy", *[f"{a} Mmul" for a in algos], "fewest mults"]
    timed = any(r.seconds for r in rows)
    if timed:
        head += [f"{a} ms" for a in algos] + ["fastest"]
    lines = []
    for r in rows:
        cells = [r.layer.name, f"{toeplitz_redundancy(r.layer):.2f}x"]
        cells += [f"{r.counts[a].mults / 1e6:.3f}" if r.counts[a] else "n/a" for a in algos]
        cells.append(r.fewest_mults)
        if timed:
            cells += [f"{r.seconds[a] * 1e3:.2f}" if a in r.seconds else "n/a" for a in algos] + [r.fastest]
        lines.append(cells)
    return render_table(head, lines, markdown)
