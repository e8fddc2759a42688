"""Speed and accuracy of edgefit.profile against other MAC/FLOP counters.

Run with the benchmark virtualenv (see ``benchmarks/README.md``)::

    /work/bench-venv/bin/python benchmarks/profile_speed.py            # all cases
    /work/bench-venv/bin/python benchmarks/profile_speed.py --quick    # 3 cases
    /work/bench-venv/bin/python benchmarks/profile_speed.py --repeat 9 --tools edgefit,thop

Every (tool, case) pair runs in its own subprocess (``--worker``) with a timeout and an
address-space limit, so a tool that hangs, crashes or runs out of memory is reported as
such. In that fresh process the worker

1. imports torch and builds the model and example input (not timed),
2. imports the tool (timed: "first call incl. import" starts here),
3. times the first profiling call ("first call"),
4. runs one more warm-up call, then ``--repeat`` timed calls (``time.perf_counter``);
   the table shows their median,
5. reports the process's peak RSS (``resource.getrusage``), which includes torch and
   the model itself (about 0.3 GB for torch alone; see the "baseline" row).

Competitors get the real fp32 CPU model and a real input (how they are used);
edgefit gets the same model and ``input_shape`` and traces on the meta device. The
LLaMA-7B decoder is built on ``meta`` for everyone (27 GB in fp32 otherwise).

MAC convention of the closed forms (:func:`closed_form_macs`): one MAC is one
multiply-accumulate of a dot product. conv: ``Cout * Hout * Wout * Cin / groups * k * k``;
linear: ``in * out`` per token; attention: ``2 * L * L * d`` per layer (``q @ k^T`` and
``attn @ v``, full ``L x L`` even when causal); bias adds, normalisation, activations,
pooling, softmax, residual adds, rotary embedding and embedding lookups are not MACs.
Params are every parameter element (weights, biases, norm scales, embeddings) once.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "profile_speed.md"
GIB = 1024**3

# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    name: str  # row label
    model: str  # edgefit.zoo name
    options: dict[str, Any] = field(default_factory=dict)
    input_shape: tuple[int, ...] = (1, 3, 224, 224)
    dtype: str = "float32"  # or "int64" (token ids)
    no_grad: bool = True
    meta: bool = False  # model and input on the meta device
    vocab: int = 0  # for int64 inputs
    foreign: bool = False  # built by benchmarks/_foreign.py (torchvision's code), not the zoo


def _bert(attention: str, grad: bool) -> Case:
    return Case(
        name=f"bert_base/{attention}/{'grad' if grad else 'no_grad'}",
        model="bert_base",
        options={"attention": attention, "seq_len": 128},
        input_shape=(1, 128),
        dtype="int64",
        no_grad=not grad,
        vocab=30522,
    )


CASES: dict[str, Case] = {
    c.name: c
    for c in [
        Case("alexnet", "alexnet"),
        Case("vgg16", "vgg16"),
        Case("resnet50", "resnet50"),
        Case("mobilenet_v2", "mobilenet_v2"),
        Case("torchvision-style/mobilenet_v2", "mobilenet_v2", foreign=True),
        Case("torchvision-style/resnet50", "resnet50", foreign=True),
        *(_bert(a, g) for a in ("mha", "sdpa", "matmul") for g in (False, True)),
        Case(
            "llama_7b/meta",
            "llama_7b",
            options={"seq_len": 128},
            input_shape=(1, 128),
            dtype="int64",
            meta=True,
            vocab=32000,
        ),
    ]
}
QUICK = ["alexnet", "resnet50", "bert_base/mha/no_grad"]

# --------------------------------------------------------------------------- closed forms


def _conv(cin: int, cout: int, k: int, h: int, *, s: int = 1, p: int = 0, g: int = 1, bias=False):
    """(macs, weight params, output size) of a square conv on an h x h input."""
    hout = (h + 2 * p - k) // s + 1
    w = cout * (cin // g) * k * k
    return cout * hout * hout * (cin // g) * k * k, w + (cout if bias else 0), hout


def _alexnet() -> tuple[int, int]:
    # grouped two-GPU AlexNet (edgefit.zoo): 224 -> 55 -> pool 27 -> 13 -> 6; all with bias
    macs = params = 0
    h = 224
    for cin, cout, k, s, p, g, pool in [
        (3, 96, 11, 4, 2, 1, True),
        (96, 256, 5, 1, 2, 2, True),
        (256, 384, 3, 1, 1, 1, False),
        (384, 384, 3, 1, 1, 2, False),
        (384, 256, 3, 1, 1, 2, True),
    ]:
        m, w, h = _conv(cin, cout, k, h, s=s, p=p, g=g, bias=True)
        macs, params = macs + m, params + w
        if pool:
            h = (h - 3) // 2 + 1
    assert h == 6
    for i, o in [(256 * 36, 4096), (4096, 4096), (4096, 1000)]:
        macs, params = macs + i * o, params + i * o + o
    return macs, params


def _vgg16() -> tuple[int, int]:
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
    macs = params = 0
    h, c = 224, 3
    for v in cfg:
        if v == "M":
            h //= 2
            continue
        m, w, h = _conv(c, v, 3, h, p=1, bias=True)
        macs, params, c = macs + m, params + w, v
    for i, o in [(512 * 7 * 7, 4096), (4096, 4096), (4096, 1000)]:
        macs, params = macs + i * o, params + i * o + o
    return macs, params


def _resnet50() -> tuple[int, int]:
    # v1.5 (stride on the 3x3), BN after every conv (2 params per channel), no conv bias
    macs, params, h = _conv(3, 64, 7, 224, s=2, p=3)
    params += 2 * 64
    h = (h + 2 - 3) // 2 + 1  # maxpool 3/2/1 -> 56
    cin = 64
    for planes, blocks, stride in [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]:
        for j in range(blocks):
            s = stride if j == 0 else 1
            out = 4 * planes
            m1, w1, _ = _conv(cin, planes, 1, h)
            m2, w2, h2 = _conv(planes, planes, 3, h, s=s, p=1)
            m3, w3, _ = _conv(planes, out, 1, h2)
            macs += m1 + m2 + m3
            params += w1 + w2 + w3 + 2 * (planes + planes + out)
            if s != 1 or cin != out:
                md, wd, _ = _conv(cin, out, 1, h, s=s)
                macs, params = macs + md, params + wd + 2 * out
            cin, h = out, h2
    macs, params = macs + 2048 * 1000, params + 2048 * 1000 + 1000
    return macs, params


def _mobilenet_v2() -> tuple[int, int]:
    settings = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                (6, 160, 3, 2), (6, 320, 1, 1)]  # (expand t, channels c, repeats n, stride s)
    macs, params, h = _conv(3, 32, 3, 224, s=2, p=1)
    params += 2 * 32
    cin = 32
    for t, c, n, s in settings:
        for i in range(n):
            hidden = cin * t
            if t != 1:
                m, w, _ = _conv(cin, hidden, 1, h)
                macs, params = macs + m, params + w + 2 * hidden
            m, w, h = _conv(hidden, hidden, 3, h, s=s if i == 0 else 1, p=1, g=hidden)
            macs, params = macs + m, params + w + 2 * hidden
            m, w, _ = _conv(hidden, c, 1, h)
            macs, params = macs + m, params + w + 2 * c
            cin = c
    m, w, _ = _conv(320, 1280, 1, h)
    macs, params = macs + m + 1280 * 1000, params + w + 2 * 1280 + 1280 * 1000 + 1000
    return macs, params


def _bert_base(seq: int = 128) -> tuple[int, int]:
    d, ffn, layers, vocab, positions = 768, 3072, 12, 30522, 512
    per_token = 4 * d * d + 2 * d * ffn  # q, k, v, out projections + FFN
    attention = 2 * seq * seq * d  # q @ k^T and attn @ v, all heads
    macs = layers * (seq * per_token + attention)
    layer_params = 4 * (d * d + d) + (d * ffn + ffn) + (ffn * d + d) + 2 * (2 * d)
    params = (vocab + positions + 2) * d + 2 * d + layers * layer_params  # no pooler
    return macs, params


def _llama_7b(seq: int = 128) -> tuple[int, int]:
    d, hidden, layers, vocab = 4096, 11008, 32, 32000
    per_token = 4 * d * d + 3 * d * hidden  # wq wk wv wo + SwiGLU w1 w2 w3
    attention = 2 * seq * seq * d  # full L x L (the causal mask is not subtracted)
    macs = layers * (seq * per_token + attention) + seq * d * vocab  # + lm head
    params = 2 * vocab * d + d + layers * (per_token + 2 * d)  # untied, RMSNorm scales
    return macs, params


def closed_form(name: str) -> tuple[int, int]:
    """(MACs, params) of a case, derived by hand from the architecture."""
    model = CASES[name].model if name in CASES else name
    return {
        "alexnet": _alexnet,
        "vgg16": _vgg16,
        "resnet50": _resnet50,
        "mobilenet_v2": _mobilenet_v2,
        "bert_base": _bert_base,
        "llama_7b": _llama_7b,
    }[model]()


def closed_form_macs(name: str) -> int:
    """MACs of a case (see the module docstring for the convention)."""
    return closed_form(name)[0]


# --------------------------------------------------------------------------- worker


def _build(case: Case):
    import torch

    from edgefit.zoo import create

    opts = dict(case.options)
    if case.foreign:
        sys.path.insert(0, str(HERE))
        import _foreign

        torch.manual_seed(0)
        model = _foreign.BUILDERS[case.model]().eval()  # real weights on the CPU
    else:
        if case.meta:
            opts["device"] = "meta"
        model = create(case.model, **opts).eval()
    dev = "meta" if case.meta else "cpu"
    if case.dtype == "int64":
        if case.meta:
            x = torch.zeros(case.input_shape, dtype=torch.int64, device=dev)
        else:
            x = torch.randint(0, case.vocab, case.input_shape, generator=torch.Generator().manual_seed(0))
    else:
        x = torch.randn(case.input_shape, generator=torch.Generator().manual_seed(0))
    return model, x


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def worker(tool: str, case_name: str, repeat: int, out_path: str) -> None:
    """Runs in a fresh process; writes one JSON record to ``out_path``."""
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    import torch  # noqa: F401 - common to every tool, not timed

    sys.path.insert(0, str(HERE))
    import _competitors as comp

    case = CASES[case_name]
    rec: dict[str, Any] = {"tool": tool, "case": case_name}

    def dump() -> None:
        rec["peak_rss"] = _peak_rss_bytes()
        Path(out_path).write_text(json.dumps(rec))

    if tool == "baseline":  # torch + model only: the floor of every peak RSS
        _build(case)
        return dump()
    try:
        model, x = _build(case)
    except Exception as exc:  # noqa: BLE001
        rec["error"] = f"model build failed: {comp._first_line(exc)}"
        return dump()
    rec["rss_after_build"] = _peak_rss_bytes()
    adapter = comp.ADAPTERS[tool]
    t0 = time.perf_counter()
    why = comp.available(tool)  # imports the tool
    if why is not None:
        rec["error"] = why
        return dump()
    t1 = time.perf_counter()
    r = adapter(model, x, no_grad=case.no_grad)
    t2 = time.perf_counter()
    rec.update(macs=r.macs, params=r.params, error=r.error)
    rec["import_s"] = t1 - t0
    rec["first_s"] = t2 - t1
    rec["first_incl_import_s"] = t2 - t0
    if r.error is None:
        adapter(model, x, no_grad=case.no_grad)  # warm-up
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            r2 = adapter(model, x, no_grad=case.no_grad)
            times.append(time.perf_counter() - t)
            if r2.error is not None:
                rec["error"] = f"repeat failed: {r2.error}"
                break
        rec["times_s"] = times
        rec["median_s"] = statistics.median(times) if times else None
    return dump()


def _limit_memory(limit_bytes: int) -> None:
    if limit_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))


def run_one(tool: str, case: str, repeat: int, timeout: float, mem_gb: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "rec.json")
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", tool, case, str(repeat), out]
        env = dict(os.environ, DS_ACCELERATOR="cpu", PYTHONWARNINGS="ignore")
        t = time.perf_counter()
        try:
            proc = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=env,
                preexec_fn=lambda: _limit_memory(int(mem_gb * GIB)),
            )
        except subprocess.TimeoutExpired:
            return {"tool": tool, "case": case, "error": f"timeout after {timeout:.0f} s"}
        wall = time.perf_counter() - t
        if os.path.exists(out):
            rec = json.loads(Path(out).read_text())
            rec["wall_s"] = wall
            return rec
        tail = [ln for ln in (proc.stderr or "").splitlines() if ln.strip()]
        why = tail[-1][:200] if tail else ""
        if proc.returncode < 0:
            sig = -proc.returncode
            why = f"killed by signal {sig}" + (" (likely out of memory)" if sig == 9 else "") + (
                f": {why}" if why else ""
            )
        elif "MemoryError" in (proc.stderr or "") or "alloc" in why.lower():
            why = f"out of memory ({mem_gb:g} GiB address-space limit): {why}"
        else:
            why = f"exit {proc.returncode}: {why}"
        return {"tool": tool, "case": case, "error": why}


# --------------------------------------------------------------------------- report


def _fmt_int(v: int | None) -> str:
    return "—" if v is None else f"{v:,}"


def _fmt_ms(s: float | None) -> str:
    if s is None:
        return "—"
    ms = s * 1e3
    return f"{ms:,.1f}" if ms < 100 else f"{ms:,.0f}"


def _err(v: int | None, ref: int) -> str:
    if v is None:
        return "—"
    e = (v - ref) / ref * 100
    return "0 (exact)" if v == ref else f"{e:+.2f}"


def _load() -> str:
    """The 1-minute load average, for the report."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "unknown"


def _tool_versions(tools: list[str]) -> dict[str, str]:
    sys.path.insert(0, str(HERE))
    import _competitors as comp

    return {t: comp.version(t) for t in tools}


def _availability(tools: list[str]) -> dict[str, str | None]:
    """Checked in a subprocess so that importing tools does not touch this process."""
    code = (
        f"import json,sys; sys.path.insert(0, {str(HERE)!r}); import _competitors as c; "
        f"print(json.dumps({{t: c.available(t) for t in {tools!r}}}))"
    )
    env = dict(os.environ, DS_ACCELERATOR="cpu", PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except Exception:  # noqa: BLE001
        return {t: f"availability check failed: {proc.stderr.strip()[-200:]}" for t in tools}


def render(records: list[dict[str, Any]], cases: list[str], tools: list[str], versions, avail, args) -> str:
    by = {(r["tool"], r["case"]): r for r in records}
    L: list[str] = []
    L.append("# edgefit.profile vs other MAC counters\n")
    L.append(
        f"Generated by `benchmarks/profile_speed.py` on {time.strftime('%Y-%m-%d %H:%M:%S')}; "
        f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"repeat={args.repeat}, timeout={args.timeout:g} s, address-space limit {args.mem_gb:g} GiB.\n"
    )
    L.append(
        "MACs are normalised to multiply-accumulates (FlopCounterMode's FLOPs / 2, DeepSpeed's "
        "`macs`). Closed form: conv `Cout*Hout*Wout*Cin/groups*k*k`, linear `in*out` per token, "
        "attention `2*L*L*d` per layer (full square even when causal); bias, norm, activation, "
        "pooling, softmax, residual and embedding lookups are not MACs. Params: every parameter "
        "element once. Error % is (tool - closed form) / closed form. Time: median of "
        f"{args.repeat} calls after a first call and one warm-up, in a fresh process per (tool, case); "
        "competitors run the real fp32 CPU model (LLaMA-7B: meta model, meta input), edgefit "
        "traces on meta, whoever built the model: the `torchvision-style/` cases are models "
        "written as torchvision writes them (`benchmarks/_foreign.py`), real weights on the CPU, "
        "not from edgefit's zoo. The host may be shared with other work (load average "
        f"{args.load_start} at the start of this run, {args.load_end} at its end; the other tools' "
        "real forward passes slow down under load far more than edgefit's meta trace, so a busy "
        "host flatters edgefit's ratios): compare tools within this run; the targets give each median with the "
        "min..max of its calls. Speedup = tool median / edgefit median. Peak RSS is the whole process "
        "(torch + model + tool); `baseline` is torch + model alone. Every tool's code is "
        "byte-compiled before timing (pip does it at install; the edgefit checkout is compiled by "
        "the script), so no first call pays for compiling source.\n"
    )
    L.append(
        "Since the previous run (quiet host, load 0.77-1.15: MobileNetV2 0.32x of ptflops aten on the zoo's "
        "model, 0.40x on the torchvision-style one, the two misses of 13 cases), edgefit's profile of a model "
        "with real weights does less per call, the trace being the same op for op and the profile the same "
        "number for number (`tests/trace`, `tests/metrics`): the weight-swap plan also keeps the module tree, "
        "paths and each class's forward code, checked instead of walking `named_modules()` (any change to "
        "the model is seen: tested); a stock layer's shortcut sits in `nn.Module.__call__`'s compiled-call "
        "slot (no hook checks: a module with hooks gets none); its op's record takes its weights' known specs "
        "and its shape rule's result directly; its output tensor is the one it made in the previous trace "
        "when nothing else holds it (`edgefit.trace.leaves._Spare`) instead of a new meta tensor; the "
        "counting builds rows, totals and the liveness peak with fewer calls. "
        "`benchmarks/trace_shortcuts.py` splits one profile into trace and counting.\n"
    )
    L.append("## Tools\n")
    L.append("| tool | version | status |")
    L.append("|---|---|---|")
    for t in tools:
        L.append(f"| {t} | {versions.get(t, '?')} | {avail.get(t) or 'ok'} |")
    L.append("")
    L.append("## Closed forms\n")
    L.append("| case | MACs | params |")
    L.append("|---|---:|---:|")
    for c in cases:
        m, p = closed_form(c)
        L.append(f"| {c} | {m:,} | {p:,} |")
    L.append("")
    L.append("## Results\n")
    L.append(
        "| case | tool | version | MACs | MAC error % | params | param error % | median ms "
        "| edgefit speedup | first call ms | first call incl. import ms | peak RSS MiB | note |"
    )
    L.append("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for c in cases:
        ref_m, ref_p = closed_form(c)
        ef = by.get(("edgefit", c), {})
        ef_med = ef.get("median_s") if ef.get("error") is None else None
        for t in tools:
            r = by.get((t, c))
            if r is None:
                continue
            ok = r.get("error") is None
            med = r.get("median_s") if ok else None
            speed = "—"
            if t != "edgefit" and med and ef_med:
                speed = f"{med / ef_med:,.1f}x"
            rss = r.get("peak_rss")
            note = (r.get("error") or "").replace("|", "\\|")
            L.append(
                f"| {c} | {t} | {versions.get(t, '?')} | {_fmt_int(r.get('macs'))} | "
                f"{_err(r.get('macs'), ref_m)} | {_fmt_int(r.get('params'))} | "
                f"{_err(r.get('params'), ref_p)} | {_fmt_ms(med)} | {speed} | "
                f"{_fmt_ms(r.get('first_s'))} | {_fmt_ms(r.get('first_incl_import_s'))} | "
                f"{'—' if rss is None else f'{rss / 2**20:,.0f}'} | {note} |"
            )
        b = by.get(("baseline", c))
        if b and b.get("peak_rss"):
            L.append(f"| {c} | baseline | — | — | — | — | — | — | — | — | — | {b['peak_rss'] / 2**20:,.0f} | torch + model only |")
    L.append("")
    L.extend(summary(by, cases, tools))
    return "\n".join(L) + "\n"


def _fastest_other(by, case: str, tools: list[str], key: str) -> tuple[str | None, float | None]:
    best: tuple[str | None, float | None] = (None, None)
    for t in tools:
        if t == "edgefit":
            continue
        r = by.get((t, case), {})
        v = r.get(key)
        if r.get("error") is None and r.get("macs") is not None and v is not None:
            if best[1] is None or v < best[1]:
                best = (t, v)
    return best


def summary(by, cases: list[str], tools: list[str]) -> list[str]:
    L = ["## Targets\n"]
    L.append(
        "\"Fastest other tool\" is the fastest competitor that returned a number for the case, "
        "whether or not that number is right.\n"
    )
    L.append("| target | case | edgefit | fastest other | ratio | met |")
    L.append("|---|---|---|---|---:|---|")

    def row(target: str, case: str, ef: str, other: str, ratio: str, met: bool | None) -> None:
        mark = "n/a" if met is None else ("yes" if met else "**no**")
        L.append(f"| {target} | {case} | {ef} | {other} | {ratio} | {mark} |")

    for c in cases:
        ref_m, ref_p = closed_form(c)
        ef = by.get(("edgefit", c), {})
        if ef.get("error") is not None or ef.get("macs") is None:
            row("exact MACs and params", c, f"not available: {ef.get('error', 'not run')}", "—", "—", None)
            continue
        exact = ef["macs"] == ref_m and ef["params"] == ref_p
        row("exact MACs and params", c, f"{ef['macs']:,} / {ef['params']:,}", "—", "—", exact)
    for c in cases:
        ef = by.get(("edgefit", c), {})
        t, v = _fastest_other(by, c, tools, "median_s")
        em = ef.get("median_s") if ef.get("error") is None else None
        label = f"<= {MAX_RATIO}x the fastest other tool (median)"
        if em is None or v is None:
            row(label, c, _fmt_ms(em) + " ms", f"{t}: {_fmt_ms(v)} ms", "—", None)
        else:
            row(label, c, f"{_fmt_ms(em)} ms ({_spread(ef)})",
                f"{t}: {_fmt_ms(v)} ms ({_spread(by[(t, c)])})", f"{em / v:.2f}x", em / v <= MAX_RATIO)
    if "llama_7b/meta" in cases:
        ef = by.get(("edgefit", "llama_7b/meta"), {})
        rss = ef.get("peak_rss") if ef.get("error") is None else None
        row("peak RSS < 1 GiB (whole process)", "llama_7b/meta",
            "—" if rss is None else f"{rss / 2**20:,.0f} MiB", "—", "—",
            None if rss is None else rss < GIB)
    for key, label in [("first_s", "first call in fresh process"),
                       ("first_incl_import_s", "first call incl. import")]:
        for c in cases:
            ef = by.get(("edgefit", c), {})
            t, v = _fastest_other(by, c, tools, key)
            e = ef.get(key) if ef.get("error") is None else None
            if e is None or v is None:
                row(f"{label} no slower", c, f"{_fmt_ms(e)} ms", f"{t}: {_fmt_ms(v)} ms", "—", None)
            else:
                row(f"{label} no slower", c, f"{_fmt_ms(e)} ms", f"{t}: {_fmt_ms(v)} ms",
                    f"{v / e:,.2f}x", e <= v)
    L.append("")
    return L


MAX_RATIO = 0.3  # edgefit's median over the fastest competitor's, on every case


def _spread(rec: dict[str, Any]) -> str:
    """min..max of a record's timed calls, in ms."""
    times = rec.get("times_s") or []
    return f"{_fmt_ms(min(times))}..{_fmt_ms(max(times))}" if times else "—"


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _byte_compile_edgefit() -> None:
    """Byte-compile the edgefit checkout, as `pip install` does for every competitor.

    An editable checkout is compiled lazily on first import, and not at all where
    PYTHONDONTWRITEBYTECODE is set; without this the first-call columns would
    charge edgefit alone for compiling its source.
    """
    import compileall

    compileall.compile_dir(str(HERE.parent / "src" / "edgefit"), quiet=1)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        tool, case, repeat, out = argv[1:5]
        worker(tool, case, int(repeat), out)
        return 0
    sys.path.insert(0, str(HERE))
    import _competitors as comp

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    ap.add_argument("--repeat", type=int, default=5, help="timed calls per (tool, case) (default 5)")
    ap.add_argument("--cases", help="comma-separated case names (default: all)")
    ap.add_argument("--tools", help=f"comma-separated tools (default: all of {', '.join(comp.TOOLS)})")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per (tool, case) (default 600)")
    ap.add_argument("--mem-gb", type=float, default=16, help="address-space limit per worker, GiB (0: none)")
    ap.add_argument("--out", type=Path, default=RESULTS, help=f"Markdown output (default {RESULTS})")
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")

    cases = args.cases.split(",") if args.cases else (QUICK if args.quick else list(CASES))
    for c in cases:
        if c not in CASES:
            ap.error(f"unknown case {c!r}; choose from {', '.join(CASES)}")
    tools = args.tools.split(",") if args.tools else list(comp.TOOLS)
    for t in tools:
        if t not in comp.TOOLS:
            ap.error(f"unknown tool {t!r}; choose from {', '.join(comp.TOOLS)}")
    if "edgefit" not in tools:
        tools.insert(0, "edgefit")

    args.load_start = _load()
    _byte_compile_edgefit()
    versions = _tool_versions(tools)
    avail = _availability(tools)
    for t in tools:
        print(f"{t:18s} {versions[t]:22s} {avail[t] or 'ok'}", flush=True)

    records: list[dict[str, Any]] = []
    for c in cases:
        records.append(run_one("baseline", c, 1, args.timeout, args.mem_gb))
        for t in tools:
            if avail[t] is not None:
                records.append({"tool": t, "case": c, "error": avail[t]})
                continue
            rec = run_one(t, c, args.repeat, args.timeout, args.mem_gb)
            records.append(rec)
            ref = closed_form_macs(c)
            m = rec.get("macs")
            print(
                f"{c:24s} {t:18s} macs={_fmt_int(m):>22s} err={_err(m, ref):>10s} "
                f"median={_fmt_ms(rec.get('median_s')):>8s} ms  first={_fmt_ms(rec.get('first_s')):>8s} ms  "
                f"rss={(rec.get('peak_rss') or 0) / 2**20:,.0f} MiB  {rec.get('error') or ''}",
                flush=True,
            )
        # rewrite after every case so a long run leaves partial results behind
        args.load_end = _load()
        write_atomic(args.out, render(records, cases, tools, versions, avail, args))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
