"""Drift check: has the host's speed moved since the lookup table's entries were measured?

A table is built at one moment and used minutes or days later. On a shared host
the speed of memory-bound layers moves with what the other tenants do to the
shared caches and memory bus, and the speed gate's reference convolution (small,
in L1/L2) does not see it: in one idle run the layers measured a median 15%
faster in later rounds than their table entries while the reference convolution
did not move. So when a prediction session starts, a small fixed set of
reference layers (`REFERENCE_LAYERS`: ten synthetic layers from a few microseconds
to milliseconds: linear, convolution, depthwise, 1x1, batch norm, pooling) is
measured again, each the way its table entry was measured (timed hot and in
rotation), and compared with its stored entry. The process's code paths are
warmed first (in one benchmark run a baseline taken cold at process start read
the small layers 1.5-1.9x slow, and the check then rescaled a good table by
0.67), and the references are measured twice, the faster take kept. When the
median ratio of a method moved by more than the noise (`drift_scale`) and each
take alone agrees (`confirmed_scale`), every entry of that method is
multiplied by it (`edgefit.measure.LatencyTable.rescale`), so the whole table
speaks of the host as it is now. The first session stores the references (the
baseline).

The two directions are not alike. Other jobs only ever add time, so references
that run faster than their stored entries say those reference entries carried
contention: their baseline, a few seconds' snapshot, was taken in a slow moment.
The faster takes are stored as the new baseline and the other entries are left
as they are (an entry that carried contention gets its own second take,
`LatencyTable` ``second_take_after_s``). Rescaling the whole table by the
references instead once cut 875 good hot entries by 0.816 in a benchmark run and
its random layers fell from 81% within +-10% to 20%. References that run slower are as likely a slow
episode of the host as a slower host (in one benchmark run a 38-second round
read them 1.41x slow on an idle host and the rescaled table missed its networks
by that much), so a slower reading is held (`DriftCheck.held`, stored in the
table) and applied only when a check at least ``confirm_after_s`` later (default
`CONFIRM_AFTER_S`) reads slower too, by the smaller of the two scales.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

NOISE = 0.03  # a median move below this is measurement noise on this kind of host
TAKES = 2  # the references are measured twice; each take must confirm a drift
# a slower reading is applied only when a check this much later reads slower too
CONFIRM_AFTER_S = 60.0
REFERENCE_LAYERS = (
    ("Linear(64->64) batch 1", "linear", (64, 64), (1, 64)),
    ("Linear(512->256) batch 1", "linear", (512, 256), (1, 512)),
    ("Conv2d(16->16, k3) 14x14", "conv", (16, 16, 3, 1, 1), (1, 16, 14, 14)),
    ("Conv2d(64->64, k3, dw) 28x28", "conv", (64, 64, 3, 1, 64), (1, 64, 28, 28)),
    ("Conv2d(32->64, k1) 28x28", "conv", (32, 64, 1, 1, 1), (1, 32, 28, 28)),
    ("Conv2d(64->128, k3, s2) 28x28", "conv", (64, 128, 3, 2, 1), (1, 64, 28, 28)),
    ("Conv2d(128->128, k3) 28x28", "conv", (128, 128, 3, 1, 1), (1, 128, 28, 28)),
    ("Linear(1024->4096) batch 1", "linear", (1024, 4096), (1, 1024)),
    ("BatchNorm2d(64) 56x56", "bn", (64,), (1, 64, 56, 56)),
    ("MaxPool2d(2) 64x56x56", "maxpool", (2,), (1, 64, 56, 56)),
)


@dataclass(frozen=True)
class DriftCheck:
    """One method's drift check: fresh / stored per reference layer, and the scale applied.

    Attributes:
        method: ``"hot"`` (entries timed alone in cache) or ``"rotated"``.
        ratios: fresh measurement / stored entry per reference layer (empty: baseline stored).
        scale: the factor every entry of the method was multiplied by (1.0: not moved).
        rescaled: how many entries were rescaled.
        seconds: how long the check took.
        held: a slower reading not applied yet (waiting for a later check to confirm it), else 1.0.
        rebased: reference entries stored again because they ran faster now (their
            stored baseline carried contention); the other entries were kept.
    """

    method: str
    ratios: tuple[float, ...]
    scale: float = 1.0
    rescaled: int = 0
    seconds: float = 0.0
    held: float = 1.0
    rebased: int = 0

    @property
    def median(self) -> float | None:
        return statistics.median(self.ratios) if self.ratios else None

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "ratios": list(self.ratios),
            "median": self.median,
            "scale": self.scale,
            "rescaled": self.rescaled,
            "seconds": self.seconds,
            "held": self.held,
            "rebased": self.rebased,
        }


def drift_scale(ratios: Sequence[float], noise: float = NOISE) -> float:
    """The factor to rescale a table by, from fresh / stored ratios of its reference entries.

    The median ratio when it moved more than the noise: more than ``noise`` and more
    than twice the standard error of the median of the logs (1.2533 sd / sqrt(n));
    1.0 otherwise.

    >>> drift_scale([0.84, 0.85, 0.86, 0.85, 0.83, 0.86, 0.84, 0.85])
    0.85
    >>> drift_scale([0.99, 1.01, 1.02, 0.98, 1.0]), drift_scale([0.6, 1.4, 0.9, 1.2, 0.8])
    (1.0, 1.0)
    """
    if len(ratios) < 3:
        return 1.0
    logs = [math.log(r) for r in ratios]
    m = statistics.median(logs)
    se = 1.2533 * statistics.stdev(logs) / math.sqrt(len(logs))
    if abs(m) > max(math.log1p(noise), 2 * se):
        return round(math.exp(m), 12)
    return 1.0


def reference_layers():
    """The `REFERENCE_LAYERS` as (label, module, input shape), with fixed weights."""
    import torch
    from torch import nn

    out = []
    with torch.random.fork_rng():
        torch.manual_seed(0)
        for label, kind, a, shape in REFERENCE_LAYERS:
            if kind == "linear":
                module = nn.Linear(*a)
            elif kind == "conv":
                cin, cout, k, stride, groups = a
                module = nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups)
            elif kind == "bn":
                module = nn.BatchNorm2d(*a)
            else:
                module = nn.MaxPool2d(*a)
            out.append((label, module.eval(), shape))
    return out


def _reference_parts(table, rotate: int):
    """[(key, callable)] of every reference layer as the table keys and times it with ``rotate``."""
    import warnings

    import torch

    from edgefit.measure.lut import _row_parts
    from edgefit.metrics import profile

    parts = []
    for label, module, shape in reference_layers():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            row = profile(module, input_shape=shape, name=label).layers[0]
        got, _ = _row_parts(row, module, "float32", torch.get_num_threads(), rotate)
        parts += got or []
    return parts


def check_drift(
    table, *, noise: float = NOISE, methods=None, confirm_after_s: float = CONFIRM_AFTER_S
) -> tuple[DriftCheck, ...]:
    """Measure the reference layers again and rescale ``table``'s entries where the host drifted.

    Per method (hot, rotated; rotated only if the table rotates): a reference entry
    missing from the table is measured and stored (the baseline); otherwise the fresh
    measurement over the stored one is a ratio. When `drift_scale` of the ratios
    says slower, it multiplies every entry the method measured (the table's
    per-host calibration rows with the hot entries), once a check
    ``confirm_after_s`` or more after the first slower one confirms it
    (`persistent_scale`). When it says faster, the references' own entries took
    contention when stored: the faster takes replace them (the baseline) and the
    other entries are kept. ``methods`` limits the check (default: both). Returns
    one `DriftCheck` per method.
    """
    import torch

    from edgefit.measure.latency import steady_allocator
    from edgefit.measure.lut import CALL_METHOD, HOT_METHOD, LEAF_METHOD, METHOD

    # the table methods each check rescales: the per-host calibration rows go with the hot entries
    rescaled_methods = {"hot": (HOT_METHOD, CALL_METHOD, LEAF_METHOD), "rotated": (METHOD,)}
    steady_allocator()
    checks = []
    rotations = {"hot": 0, "rotated": table.rotate_bytes} if table.rotate_bytes > 0 else {"hot": 0}
    rotations = {m: r for m, r in rotations.items() if methods is None or m in methods}
    for method, rotate in rotations.items():
        t0 = time.time()
        parts = _reference_parts(table, rotate)
        with torch.inference_mode():
            for _key, fn in parts:  # warm the process's code paths first, untimed
                _run(fn, 3)
            takes = [[table.measure(fn).p10_s for _key, fn in parts] for _ in range(TAKES)]
        ratios, per_take, faster = [], [[] for _ in takes], {}
        for i, (key, _fn) in enumerate(parts):
            fresh, stored = min(t[i] for t in takes), table.get(key)
            if stored is None:
                table.put(key, fresh, table.runs)
            elif stored > 0 and fresh > 0:
                ratios.append(fresh / stored)
                for take, out in zip(takes, per_take, strict=True):
                    out.append(take[i] / stored)
                if fresh < stored:
                    faster[key] = fresh
        scale, held = persistent_scale(
            table, method, confirmed_scale(ratios, per_take, noise), confirm_after_s
        )
        rebased = 0
        if scale < 1.0:  # the baseline carried contention, not the table: store the faster takes
            for key, fresh in faster.items():
                table.put(key, fresh, table.runs)
            scale, rebased = 1.0, len(faster)
        changed = table.rescale(rescaled_methods[method], scale) if scale != 1.0 else 0
        checks.append(
            DriftCheck(method, tuple(ratios), scale, changed, time.time() - t0, held, rebased)
        )
    return tuple(checks)


def _held_key(method: str) -> str:
    return f"drift-held:{method}"


def _held_reading(text: str | None) -> dict | None:
    """The stored held reading ({"scale", "at"}), or None: none held, or a record not readable as one
    (a damaged record is dropped, as if nothing were held, rather than stopping the prediction)."""
    try:
        held = json.loads(text) if text else None
        return held if float(held["scale"]) > 1.0 and float(held["at"]) >= 0 else None
    except (ValueError, TypeError, KeyError):
        return None


def persistent_scale(
    table, method: str, scale: float, confirm_after_s: float = CONFIRM_AFTER_S
) -> tuple[float, float]:
    """(scale to apply, slower reading held) for one method's confirmed reading ``scale``.

    Faster (< 1) is returned at once (`check_drift` then stores the faster references
    as the baseline instead of rescaling); slower (> 1) is held in ``table`` until a
    reading at least ``confirm_after_s`` after the first held one is slower too,
    and then the smaller of the two is applied. A reading within the noise (1.0)
    or faster clears what was held.
    """
    key, now = _held_key(method), time.time()
    held = _held_reading(table.get_text(key))
    if scale <= 1.0:
        if held:
            table.put_text(key, "")
        return scale, 1.0
    if held and now - held["at"] >= confirm_after_s:
        table.put_text(key, "")
        return min(scale, held["scale"]), 1.0
    if not held:
        table.put_text(key, json.dumps({"scale": scale, "at": now}))
    return 1.0, scale


def confirmed_scale(
    ratios: Sequence[float], per_take: Sequence[Sequence[float]], noise: float = NOISE
) -> float:
    """`drift_scale` of the faster takes' ``ratios``, if every take alone moved the same way; else 1.0.

    One slow episode during one take must not rescale a table: each take's own
    ratios must call for a scale on the same side of 1.

    >>> confirmed_scale([0.8, 0.8, 0.8], [[0.8, 0.8, 0.8], [0.85, 0.82, 0.81]])
    0.8
    >>> confirmed_scale([0.8, 0.8, 0.8], [[0.8, 0.8, 0.8], [1.0, 1.01, 0.99]])
    1.0
    """
    scale = drift_scale(ratios, noise)
    if scale == 1.0:
        return 1.0
    for take in per_take:
        own = drift_scale(take, noise)
        if own == 1.0 or (own < 1.0) != (scale < 1.0):
            return 1.0
    return scale


def _run(fn, times: int) -> None:
    for _ in range(times):
        if hasattr(fn, "prepare"):
            fn.prepare()
        fn()


def drift_note(check: DriftCheck) -> str:
    """One line for a prediction's notes.

    >>> drift_note(DriftCheck("hot", (0.84, 0.86, 0.85), 0.85, 120))
    'drift check (hot): reference layers now 0.85x their entries (0.84..0.86): 120 entries rescaled by 0.850'
    >>> drift_note(DriftCheck("rotated", ()))
    'drift check (rotated): reference entries stored (baseline)'
    """
    if not check.ratios:
        return f"drift check ({check.method}): reference entries stored (baseline)"
    head = (
        f"drift check ({check.method}): reference layers now {check.median:.2f}x their entries "
        f"({min(check.ratios):.2f}..{max(check.ratios):.2f})"
    )
    if check.held != 1.0:
        return (
            head
            + f": slower by {check.held:.3f}, held until a later check confirms it (table kept)"
        )
    if check.rebased:
        return (
            head + f": faster, so the stored references carried contention: {check.rebased} "
            "reference entries stored again (baseline), the other entries kept"
        )
    if check.scale == 1.0:
        return head + ": within the noise, table kept"
    return head + f": {check.rescaled} entries rescaled by {check.scale:.3f}"
