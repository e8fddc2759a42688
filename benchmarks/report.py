"""The HTML report for every zoo model: time to write it and its size, beside the
separate outputs a user would otherwise produce (a profile table as text plus a
roofline PNG and a per-layer bars PNG per device, from `edgefit roofline --plot --bars`).

Targets: a ResNet-50 report (no dataset) written in under 10 s and under 2 MB.

Each model: the report with host measurement (what `edgefit report MODEL -o r.html`
does), without it (`--no-measure`), and the text + PNG set, each ``--repeat``
times in one process, interleaved; medians with min..max. Plus the whole
`edgefit report zoo:resnet50` command in a fresh process (imports included).
Timing runs must not overlap other benchmarks:

    flock /tmp/edgefit-bench.lock .venv/bin/python benchmarks/report.py [--only resnet50] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgefit._io import atomic_write
from edgefit.hardware import estimate, get_device
from edgefit.metrics import profile
from edgefit.report.html import DEFAULT_DEVICES, html_report, load_report_model
from edgefit.report.plots import plot_layer_bars, plot_roofline
from edgefit.zoo import list_models

OUT = Path(__file__).parent / "results" / "report.md"


def time_report(name: str, out: Path, measure: bool) -> tuple[float, int, float | None]:
    """Seconds, bytes, and the model's measured host latency (what the measurement cost per call)."""
    t0 = time.perf_counter()
    res = html_report([name], out, measure=measure)
    lat = res.results[0].latency
    return time.perf_counter() - t0, res.bytes, lat.median_s if lat else None


def time_pngs(name: str, d: Path) -> tuple[float, int]:
    """The text table and the two PNGs per device that `edgefit profile` / `roofline --plot --bars` write."""
    t0 = time.perf_counter()
    entry = load_report_model(name, materialize=False)
    p = profile(entry.model, input_shape=list(entry.input_shapes), input_dtype=entry.input_dtype)
    files = [atomic_write(d / "profile.txt", p.table())]
    for dev in DEFAULT_DEVICES:
        est = estimate(p, get_device(dev))
        files += [plot_roofline(est, d / f"{dev}-roof.png"), plot_layer_bars(est, d / f"{dev}-bars.png")]
    return time.perf_counter() - t0, sum(f.stat().st_size for f in files)


def cli_seconds(name: str, out: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "edgefit.cli", "report", f"zoo:{name}", "-o", str(out)], check=True,
                   capture_output=True)
    return time.perf_counter() - t0


def spread(xs: list[float]) -> str:
    return f"{statistics.median(xs):.2f} ({min(xs):.2f}..{max(xs):.2f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", default="", help="comma-separated zoo names (default: every zoo model)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sizes-only", action="store_true", help="page sizes without host measurement; times nothing")
    args = ap.parse_args()
    if args.sizes_only:
        return write_sizes()
    # ResNet-50 (the target) first: a run cut short keeps it
    names = args.only.split(",") if args.only else sorted(list_models(), key=lambda n: n != "resnet50")
    rows, results, cli = [], {}, []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for name in names:
            t_m, t_n, t_p, lat = [], [], [], []
            for _ in range(args.repeat):
                s, size, one = time_report(name, d / "r.html", True)
                t_m.append(s)
                lat.append(one)
                t_n.append(time_report(name, d / "n.html", False)[0])
                s, png_bytes = time_pngs(name, d)
                t_p.append(s)
            results[name] = (statistics.median(t_m), size)
            one = "not timed" if None in lat else f"{1e3 * statistics.median(lat):.1f}"
            rows.append(f"| `{name}` | {spread(t_m)} | {one} | {spread(t_n)} | {size / 1e6:.3f} | {spread(t_p)} | "
                        f"{png_bytes / 1e6:.3f} |")
            print(rows[-1], flush=True)
            if name == "resnet50":
                cli = [cli_seconds("resnet50", d / "cli.html") for _ in range(args.repeat)]
            write(rows, results, cli, args.repeat)  # a killed run keeps what it measured


def write_sizes() -> None:
    """Bytes of the `--no-measure` page of every zoo model (nothing is timed, so no lock is needed)."""
    rows = [f"| `{name}` | {html_report([name], None, measure=False).bytes / 1e6:.3f} |" for name in list_models()]
    atomic_write(OUT, "\n".join([
        "# HTML report: size for every zoo model", "",
        f"Devices: {', '.join(DEFAULT_DEVICES)} (the default); no dataset; `--no-measure` pages (host "
        "measurement adds two summary lines per model, under 1 kB). Times are in the full run "
        "(`flock /tmp/edgefit-bench.lock python benchmarks/report.py`).", "",
        "| model | report MB |", "| --- | ---: |", *rows, ""]))
    print(f"wrote {OUT}")


def write(rows, results, cli, repeat) -> None:
    lines = [
        "# HTML report: time and size for every zoo model",
        "",
        f"Host: {platform.machine()}, {os.cpu_count()} cores, shared with other work while this ran "
        f"(medians of {repeat} runs in one process, min..max in brackets); Python {platform.python_version()}.",
        f"Devices: {', '.join(DEFAULT_DEVICES)} (the default); no dataset. `report` includes timing the model on "
        "this host (batch 1 and a larger batch, about 1.5 s of budget each); models too large for the host "
        "(llama_7b) are built on the meta device and not timed. `host latency` is the model's measured median "
        "forward time: the measurement takes at least 4 forward passes, so on a busy host it dominates. The alternative is the profile table as text "
        "plus a roofline PNG and a per-layer bars PNG per device (matplotlib, 150 dpi).",
        "",
        "| model | report s | host latency ms | report --no-measure s | report MB | text + 4 PNGs s | text + 4 PNGs MB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *rows,
        "",
    ]
    if "resnet50" in results:
        secs, size = results["resnet50"]
        ok = secs < 10 and size < 2e6
        lines += [f"Target, ResNet-50 under 10 s and 2 MB: **{'met' if ok else 'missed'}** "
                  f"({secs:.2f} s with host measurement, {size / 1e6:.3f} MB, in process)."]
    if cli:
        lines += [f"`edgefit report zoo:resnet50 -o r.html` in a fresh process (imports, building the model, "
                  f"measuring, writing): {spread(cli)} s."]
    atomic_write(OUT, "\n".join(lines) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
