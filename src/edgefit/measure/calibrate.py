"""The ``host`` device: this machine, measured by short micro-benchmarks and cached.

Measured on first use (about two seconds): sustained GEMM rate for each precision
torch runs on the CPU (fp32, bf16, fp16, int8 via ``torch._int_mm`` where present)
and streaming memory bandwidth (a large tensor copy: read + write). The result is
cached as JSON under `cache_dir()` keyed by a fingerprint of the machine, torch
version and thread count, so later runs reuse it.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from edgefit._io import atomic_write

_CACHE_VERSION = 1


def cache_dir() -> Path:
    """``$EDGEFIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/edgefit``, else ``~/.cache/edgefit``."""
    explicit = os.environ.get("EDGEFIT_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "edgefit"


def host_fingerprint() -> str:
    import torch

    return "|".join(
        [
            platform.node(),
            platform.machine(),
            platform.processor() or "",
            str(os.cpu_count()),
            torch.__version__,
            f"threads={torch.get_num_threads()}",
        ]
    )


def _median_seconds(fn: Callable[[], object], *, repeats: int, budget_s: float) -> float:
    fn()  # warm-up
    samples = []
    start = time.perf_counter()
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
        if time.perf_counter() - start > budget_s:
            break
    return statistics.median(samples)


def measure_gemm(
    precision: str, *, n: int = 512, repeats: int = 7, budget_s: float = 0.6
) -> float | None:
    """Sustained GEMM op/s (2 n^3 per n x n product) at ``precision``, or ``None`` if torch can't."""
    import torch

    try:
        if precision == "int8":
            if not hasattr(torch, "_int_mm"):
                return None
            a = torch.randint(-128, 127, (n, n), dtype=torch.int8)
            b = torch.randint(-128, 127, (n, n), dtype=torch.int8)
            fn = lambda: torch._int_mm(a, b)  # noqa: E731
        else:
            dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[
                precision
            ]
            a = torch.randn(n, n).to(dtype)
            b = torch.randn(n, n).to(dtype)
            fn = lambda: torch.mm(a, b)  # noqa: E731
        with torch.inference_mode():
            fn()
            seconds = _median_seconds(fn, repeats=repeats, budget_s=budget_s)
    except (RuntimeError, NotImplementedError, TypeError):
        return None
    return 2.0 * n**3 / seconds if seconds > 0 else None


def measure_bandwidth(*, megabytes: int = 64, repeats: int = 7, budget_s: float = 0.6) -> float:
    """Streaming bandwidth in bytes/s: a copy of ``megabytes`` counts one read and one write."""
    import torch

    n = megabytes * 1024 * 1024 // 4
    src = torch.ones(n)
    dst = torch.empty(n)
    seconds = _median_seconds(lambda: dst.copy_(src), repeats=repeats, budget_s=budget_s)
    return 2.0 * n * 4 / seconds


def _largest_cache_bytes() -> tuple[float, str]:
    best = 0.0
    root = Path("/sys/devices/system/cpu/cpu0/cache")
    for index in root.glob("index*"):
        try:
            text = (index / "size").read_text().strip()
        except OSError:
            continue
        scale = {"K": 1024, "M": 1024**2, "G": 1024**3}.get(text[-1:], 1)
        try:
            best = max(best, float(text.rstrip("KMG")) * scale)
        except ValueError:
            continue
    if best:
        return best, "measured: largest CPU cache level in /sys/devices/system/cpu/cpu0/cache"
    return 1024.0**2, "assumed: 1 MB (cache sizes not readable on this OS)"


def _physical_memory_bytes() -> tuple[float, str]:
    try:
        return float(
            os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        ), "measured: physical memory (sysconf)"
    except (ValueError, OSError, AttributeError):
        return 8.0 * 1024**3, "assumed: 8 GB (physical memory not readable on this OS)"


def calibrate_host(*, quick: bool = False) -> dict:
    """Run the micro-benchmarks; returns the host's device file contents (with sources)."""
    import torch

    repeats = 3 if quick else 7
    peaks = {}
    threads = torch.get_num_threads()
    for precision, n in (("fp32", 512), ("bf16", 256), ("fp16", 256), ("int8", 256)):
        rate = measure_gemm(precision, n=n if not quick else min(n, 256), repeats=repeats)
        if rate:
            peaks[precision] = {
                "value": rate,
                "source": f"measured: median {n}x{n} {precision} GEMM (torch {torch.__version__}, {threads} threads)",
            }
    bandwidth = measure_bandwidth(megabytes=32 if quick else 64, repeats=repeats)
    cache, cache_source = _largest_cache_bytes()
    ram, ram_source = _physical_memory_bytes()
    return {
        "name": "host",
        "display_name": f"this host ({platform.machine()}, {os.cpu_count()} CPUs, {threads} threads)",
        "kind": "cpu",
        "description": "This machine, measured by micro-benchmarks (sustained rates, not datasheet peaks).",
        "measured": True,
        "peak_ops_per_s": peaks,
        "bandwidth_bytes_per_s": {
            "value": bandwidth,
            "source": "measured: median 64 MB tensor copy (read + write)",
        },
        "sram_bytes": {"value": cache, "source": cache_source},
        "activation_ram_bytes": {"value": ram, "source": ram_source},
        "activation_memory": "RAM",
        "weight_storage_bytes": {
            "value": ram,
            "source": ram_source + " (weights are loaded into RAM)",
        },
        "weight_storage": "RAM",
        "weights_share_activation_ram": True,
        "energy": {"table": "45nm", "weight_level": "dram", "activation_level": "dram"},
    }


def host_device(*, refresh: bool = False):
    """The ``host`` `Device`: cached measurements, or fresh ones on first use / ``refresh``."""
    from edgefit.hardware.device import device_from_dict

    path = cache_dir() / "host.json"
    key = host_fingerprint()
    data = None
    if not refresh and path.is_file():
        try:
            stored = json.loads(path.read_text())
            if stored.get("version") == _CACHE_VERSION and stored.get("fingerprint") == key:
                data = stored["device"]
        except (OSError, ValueError, KeyError):
            data = None
    if data is None:
        data = calibrate_host()
        try:
            atomic_write(
                path,
                json.dumps(
                    {"version": _CACHE_VERSION, "fingerprint": key, "device": data}, indent=2
                ),
            )
        except OSError:
            pass  # an unwritable cache only costs a re-measurement next time
    return device_from_dict(data, where=f"host calibration ({path})", path=str(path))


def _register_host() -> None:
    from edgefit.hardware.device import register_device_source

    register_device_source("host", host_device)


_register_host()
