"""Gather what the HTML report shows: profiles, estimates per device, host
measurements, accuracy, compression stages.

Every figure keeps its kind: ``counted`` (exact, from the trace), ``measured``
(timed on this host, read from disk, evaluated on data) or ``estimated`` (the
device model). What could not be measured is listed with the reason, never
shown as zero.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from torch import nn

from edgefit.errors import ConfigError, InputShapeError
from edgefit.report.html.sections import StageRecord

DEFAULT_DEVICES = ("stm32f746", "jetson_orin_nano")
THROUGHPUT_BATCHES = (16, 8, 4, 2)
# One thread: on a shared host, a second intra-op thread waiting for a busy core made a batch of 16
# of the digits MLP take 50 ms instead of 51 us; one thread is what repeats.
MEASURE_THREADS = 1


@dataclass
class ReportModel:
    """One model on the page, before anything is counted or measured.

    Attributes:
        label: its name on the page.
        model: the module (on CPU to be measured; a model on the meta device is
            profiled and estimated only).
        input_shapes: example input shapes, batch 1.
        input_dtype: ``"float32"`` or ``"int64"`` (token ids).
        bits: weight bit width, one value or ``{layer pattern: bits}`` (a
            compressed model's real widths).
        activation_bits: activation bit width, the same way (``None``: as ``bits``).
        file_path: the file the model came from; its size is the measured bytes on disk.
        trained: real weights were loaded, so accuracy means something.
        stages: Deep Compression stages (bytes and accuracy), when known.
        sections: extra sections about this model (`TableSection`, `CurvesSection`...).
        description: one line under its name (where it came from).
    """

    label: str
    model: nn.Module
    input_shapes: tuple[tuple[int, ...], ...]
    input_dtype: str = "float32"
    bits: int | dict[str, int] = 32
    activation_bits: int | dict[str, int] | None = None
    file_path: Path | None = None
    trained: bool = False
    stages: StageRecord | None = None
    sections: tuple = ()
    description: str = ""

    def __post_init__(self) -> None:
        if not self.input_shapes or any(not s or min(s) < 1 for s in self.input_shapes):
            raise InputShapeError(f"{self.label}: give input shapes with positive dimensions, e.g. ((1, 3, 224, 224),)")
        self.input_shapes = tuple(tuple(int(d) for d in s) for s in self.input_shapes)


@dataclass
class ModelResult:
    """Everything the page shows about one model.

    Attributes:
        entry: the `ReportModel`.
        profile: the `Profile` (counted).
        estimates: ``{device name: Estimate}`` (estimated).
        latency: host latency at batch 1 (`LatencyStats`, measured) or None.
        throughput: ``(batch, items per second)`` measured on the host, or None.
        accuracy: test accuracy in [0, 1] (measured) or None.
        dataset: the dataset's name and test size, when one was given.
        file_bytes: bytes of ``entry.file_path`` on disk, or None.
        not_measured: what is missing and why.
    """

    entry: ReportModel
    profile: object
    estimates: dict
    latency: object = None
    throughput: tuple[int, float] | None = None
    accuracy: float | None = None
    dataset: str = ""
    file_bytes: int | None = None
    not_measured: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- loading MODEL arguments


def load_report_model(
    spec: str, *, input_shape: Sequence[Sequence[int]] | None = None, materialize: bool = True
) -> ReportModel:
    """A `ReportModel` from a MODEL argument.

    Args:
        spec: a ``.efz`` file (the zoo model it records, its codebook bit widths and
            the stages recorded at compression), a ``.safetensors`` weights file
            written by ``edgefit train`` (the zoo model in its metadata), or a model
            spec (``zoo:NAME``, ``file.py:fn``, ``pkg.mod:fn``) with its initial weights.
        input_shape: example input shapes; default: the zoo model's.
        materialize: build a zoo model with real weights (to be measured); ``False``,
            or fp32 weights over a quarter of this host's memory, keeps it on the
            meta device (profiled and estimated only).
    """
    text = os.fspath(spec)
    if text.endswith(".efz"):
        return _from_efz(Path(text), input_shape)
    if text.endswith(".safetensors"):
        return _from_weights(Path(text), input_shape)
    resolved = _resolve_zoo_aware(text, materialize)
    shapes = _shapes(text, input_shape, resolved.input_shape)
    origin = "zoo model" if resolved.from_zoo else "model"
    return ReportModel(resolved.name, resolved.model, shapes, resolved.input_dtype,
                       description=f"{origin} {resolved.name}, weights as built (not trained)")


def _resolve_zoo_aware(text: str, materialize: bool):
    """A zoo model is first built on meta; it gets real weights only when wanted and small enough."""
    from edgefit.zoo import list_models, resolve_model

    name = text.removeprefix("zoo:")
    if name not in list_models():
        return resolve_model(text)
    shell = resolve_model(f"zoo:{name}", device="meta")
    fp32_bytes = 4 * sum(p.numel() for p in shell.model.parameters())
    if not materialize or fp32_bytes > _host_memory_bytes() / 4:
        return shell
    return resolve_model(f"zoo:{name}")


def _host_memory_bytes() -> float:
    try:
        return float(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # not POSIX: assume 8 GiB
        return 8.0 * 2**30


def _shapes(label: str, given, known) -> tuple[tuple[int, ...], ...]:
    if given:
        return tuple(tuple(s) for s in given)
    if known is None:
        raise InputShapeError(f"{label}: the input shape is unknown; give it with --input-shape, e.g. 1,3,224,224")
    return (tuple(known),)


def _zoo_entry(name: str, label: str, input_shape):
    from edgefit.zoo import get_spec, resolve_model

    resolved = resolve_model(f"zoo:{name}")
    return resolved.model, _shapes(label, input_shape, get_spec(name).input_shape), resolved.input_dtype


def _from_weights(path: Path, input_shape) -> ReportModel:
    from edgefit.data.weights import load_weights_, read_weights_metadata
    from edgefit.errors import DataError

    if not path.is_file():
        raise DataError(f"weights file not found: {path}")
    name = read_weights_metadata(path).get("model")
    if not name:
        raise DataError(f"{path.name} records no zoo model (write it with `edgefit train`)")
    model, shapes, dtype = _zoo_entry(name, path.name, input_shape)
    load_weights_(model, path)
    return ReportModel(path.name, model, shapes, dtype, file_path=path, trained=True,
                       description=f"zoo model {name}, trained weights (safetensors)")


def _from_efz(path: Path, input_shape) -> ReportModel:
    from edgefit.compress.file import inspect_compressed, load_compressed
    from edgefit.compress.quantize.precision import model_widths
    from edgefit.errors import CompressedFileError

    if not path.is_file():
        raise CompressedFileError(f"compressed file not found: {path}")
    info = inspect_compressed(path)
    if not info["model"]:
        raise ConfigError(f"{path.name} records no zoo model; build a ReportModel with the model in Python")
    model = load_compressed(path)
    _, shapes, dtype = _zoo_entry(info["model"], path.name, input_shape)
    widths = model_widths(model)  # the codebook and quantized layers' real widths, as `edgefit profile` counts them
    return ReportModel(path.name, model, shapes, dtype, bits=widths.get("bits", 32),
                       activation_bits=widths.get("activation_bits"), file_path=path, trained=True,
                       stages=_stages_of_file(info, model),
                       description=f"zoo model {info['model']}, compressed (.efz, decoded weights)")


def _stages_of_file(info: dict, model: nn.Module) -> StageRecord:
    """The Deep Compression stages of a file, each written now as a real file from its decoded weights.

    Dense fp32: the weights as a safetensors file (same tensors and shapes as the
    original dense file); P: the same nonzeros as sparse fp32 with relative
    indices (the pruned file's size exactly); P+Q: fixed-width codebook indices
    at the width the codebook needs (a k-means width with unused centroids is
    not kept in the file, so this can be smaller than the pipeline's P+Q file);
    P+Q+H: the file itself.
    """
    from edgefit.compress.file import save_compressed
    from edgefit.data.weights import save_weights

    with tempfile.TemporaryDirectory(prefix="edgefit-report-") as tmp:
        d = Path(tmp)
        dense_bytes = save_weights(model, d / "dense.safetensors").stat().st_size
        sizes = {stage: save_compressed(model, d / f"{enc}.efz", model_name=info["model"], encoding=enc).file_bytes
                 for stage, enc in (("P", "sparse"), ("P+Q", "fixed"))}
    sizes["P+Q+H"] = info["file_bytes"]
    acc = info["extra"].get("acc")
    return StageRecord(dense_bytes, sizes, {"P+Q": float(acc)} if isinstance(acc, (int, float)) else {},
                       "bytes: each stage written now as a real file from this file's decoded weights (P+Q at "
                       "the width its codebooks need); P+Q accuracy as recorded at compression, P+Q+H "
                       "evaluated now; accuracy in %")


# ---------------------------------------------------------------- counting, estimating, measuring


def check_same_inputs(entries: Sequence[ReportModel]) -> None:
    """Models compared side by side must take the same inputs."""
    first = entries[0]
    for e in entries[1:]:
        if e.input_shapes != first.input_shapes or e.input_dtype != first.input_dtype:
            raise ConfigError(
                f"cannot compare {e.label} ({_fmt_shapes(e)}) with {first.label} ({_fmt_shapes(first)}): "
                "the models take different inputs"
            )


def _fmt_shapes(e: ReportModel) -> str:
    return "; ".join("x".join(map(str, s)) for s in e.input_shapes) + f" {e.input_dtype}"


def check_output(path: str | os.PathLike) -> Path:
    """Fail now, in one line, if ``path`` cannot be written (before minutes of work)."""
    target = Path(path)
    if target.is_dir():
        raise ConfigError(f"cannot write the report to {path}: it is a directory")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise ConfigError(f"cannot write the report to {path}: {exc.strerror or exc}") from None
    return target


def collect(
    entry: ReportModel,
    devices: Sequence,
    *,
    data=None,
    measure: bool = True,
    budget_s: float = 1.5,
    on_step: Callable[[str], None] | None = None,
) -> ModelResult:
    """Profile, estimate on every device, measure on the host and evaluate one model."""
    from edgefit.hardware import estimate
    from edgefit.metrics import UncountedOpsWarning, profile

    step = on_step or (lambda _msg: None)
    step(f"profile {entry.label}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UncountedOpsWarning)  # the page lists them
        prof = profile(entry.model, input_shape=list(entry.input_shapes), input_dtype=_dtype(entry.input_dtype),
                       bits=entry.bits, activation_bits=entry.activation_bits, name=entry.label)
    res = ModelResult(entry, prof, {d.name: estimate(prof, d) for d in devices})
    if entry.file_path is not None:
        res.file_bytes = entry.file_path.stat().st_size
    else:
        res.not_measured.append("bytes on disk: the model was not loaded from a file")
    step(f"measure {entry.label} on this host")
    if measure:
        _measure(res, budget_s)
    else:
        res.not_measured.append("host latency and throughput: measurement turned off")
    step(f"evaluate {entry.label}")
    _accuracy(res, data)
    return res


def _dtype(name: str):
    import torch

    return getattr(torch, name)


def _on_meta(model: nn.Module) -> bool:
    return any(t.is_meta for t in [*model.parameters(), *model.buffers()])


def _measure(res: ModelResult, budget_s: float) -> None:
    """Host latency at batch 1 and throughput at the largest batch the budget allows."""
    from edgefit.data.train import torch_threads

    e = res.entry
    if _on_meta(e.model):
        res.not_measured.append("host latency and throughput: the model is on the meta device "
                                "(built without weights: not asked for, or too large for this host)")
        return
    with torch_threads(MEASURE_THREADS):
        _timed(res, budget_s)


def _timed(res: ModelResult, budget_s: float) -> None:
    import torch

    from edgefit.measure import measure_latency, random_inputs

    e = res.entry
    inputs = random_inputs(e.input_shapes, e.input_dtype)
    e.model.eval()
    with torch.inference_mode():
        t0 = time.perf_counter()
        e.model(*inputs)
        once = max(time.perf_counter() - t0, 1e-6)
    # The first call warmed the model up; a slow model gets no further warm-up (3 runs at least).
    warmup = 2 if once < budget_s / 10 else 0
    res.latency = measure_latency(e.model, inputs, warmup=warmup, runs=_runs(budget_s, once))
    per_item = res.latency.median_s
    for batch in THROUGHPUT_BATCHES:
        if len(e.input_shapes) == 1 and 8 * batch * per_item <= budget_s:
            shape = (batch, *e.input_shapes[0][1:])
            stats = measure_latency(e.model, random_inputs([shape], e.input_dtype), warmup=3,
                                    runs=_runs(budget_s, batch * per_item))
            res.throughput = (batch, batch / stats.median_s)
            return
    res.throughput = (1, 1.0 / per_item)


def _runs(budget_s: float, once_s: float) -> int:
    """As many runs as fit the budget, 3 to 30."""
    return max(3, min(30, int(budget_s / max(once_s, 1e-6))))


def _accuracy(res: ModelResult, data) -> None:
    from edgefit.data.train import check_model_fits, evaluate

    if data is None:
        res.not_measured.append("accuracy: no dataset given")
        return
    res.dataset = f"{data.name}, {len(data.y_test)} test images"
    if not res.entry.trained:
        res.not_measured.append(f"accuracy on {data.name}: no trained weights (give a .safetensors or .efz file)")
        return
    check_model_fits(res.entry.model, data)
    res.accuracy = evaluate(res.entry.model, data)
    if res.entry.stages is not None:  # the P+Q+H row is this file, evaluated now
        stages = res.entry.stages
        res.entry.stages = replace(stages, accuracy={**stages.accuracy, "P+Q+H": res.accuracy})


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b`` when both are known and ``b`` is not zero."""
    if a is None or b is None or b == 0 or not math.isfinite(a) or not math.isfinite(b):
        return None
    return a / b
