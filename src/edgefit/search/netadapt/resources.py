"""Resource meters: one number per budgeted resource, from the profile, device model or lookup table.

Nothing here re-measures a whole network: ``latency`` on the host is the sum of
per-layer entries of the latency lookup table (`edgefit.measure.predict_latency`
with ``measure=False``; a layer configuration not yet in the table is measured
once, alone, and stored), ``latency``/``energy`` on a named device come from the
roofline and energy model (`edgefit.hardware.estimate`), and the counts come from
the exact profile (`edgefit.profile`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field

from torch import nn

from edgefit.errors import ConfigError
from edgefit.search.netadapt.budgets import Budget
from edgefit.search.netadapt.interpolate import InterpolatingTable

HOW = {
    "latency@host": "sum of the host's per-layer latency lookup table (each new layer configuration measured once)",
    "latency@device": "roofline estimate of the device model",
    "energy@device": "energy estimate of the device model",
    "macs": "exact profile",
    "params": "exact profile",
    "model_size": "exact profile: parameters x bits / 8",
    "peak_activations": "exact profile: peak live activations x activation bits / 8",
}


@dataclass
class ResourceMeter:
    """Prices a network on every budgeted resource.

    Args:
        budgets: what to price (one entry per distinct resource label).
        input_shape: the example input, batch included.
        device: where ``latency``/``energy`` budgets without ``@device`` are taken
            (``"host"``: the measured lookup table).
        bits: weight and activation bit width of ``model_size``/``peak_activations``
            and of the device estimates.
        table: the host `edgefit.measure.LatencyTable` (default: the one in the cache dir).
        interpolate: answer a layer whose channel count is not in the table from the two
            nearest measured counts of the same layer (`InterpolatingTable`) instead of
            measuring it.
        timing_lock: a context-manager factory held while the host is timed: from the
            first layer configuration the table does not hold yet (or a calibration) to
            the end of the price, or of the `pricing` phase around it, and during the
            final network's end-to-end check; a price made of stored entries takes no
            lock. E.g. a lock shared with other benchmarks on the host; None: nothing
            is held.
    """

    budgets: Sequence[Budget]
    input_shape: tuple[int, ...]
    device: str = "host"
    bits: int = 32
    table: object | None = None
    notes: list[str] = field(default_factory=list)
    interpolate: bool = False
    timing_lock: Callable[[], AbstractContextManager] | None = None
    _locked: LockedTable | None = field(default=None, init=False, repr=False, compare=False)
    _sticky: bool = field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        from edgefit.hardware import get_device

        for b in self.budgets:
            dev = b.device or self.device
            if b.resource == "energy" and dev == "host":
                raise ConfigError("energy budgets need a named device (energy=...@jetson_orin_nano): the host has no energy table")
            if b.resource in ("latency", "energy") and dev != "host":
                get_device(dev)  # raises DeviceError naming the known devices

    @property
    def labels(self) -> list[str]:
        """Resource column names, e.g. ``["latency@host", "macs"]``."""
        return list(dict.fromkeys(b.label(self.device) for b in self.budgets))

    def how(self, label: str) -> str:
        """How ``label`` is obtained, in words."""
        key = label if label in HOW else label.split("@")[0] + "@device"
        text = HOW.get(key, HOW.get(label.split("@")[0], ""))
        if label == "latency@host" and self.interpolate:
            text += "; unmeasured channel counts interpolated between the two nearest measured ones"
        return text

    def __call__(self, model: nn.Module, labels: Sequence[str] | None = None) -> dict[str, float]:
        """``{label: value}`` of ``model`` on each resource (seconds, joules, MACs, bytes...)."""
        import edgefit
        from edgefit.hardware import estimate

        labels = list(labels) if labels is not None else self.labels
        profile = edgefit.profile(model, input_shape=self.input_shape, bits=self.bits)
        t = profile.totals
        out: dict[str, float] = {}
        estimates: dict[str, object] = {}
        for label in labels:
            resource, _, dev = label.partition("@")
            if resource == "macs":
                out[label] = float(t.macs)
            elif resource == "params":
                out[label] = float(t.params)
            elif resource == "model_size":
                out[label] = float(t.model_size_bytes)
            elif resource == "peak_activations":
                out[label] = float(t.peak_live_bytes)
            elif dev == "host":
                out[label] = self._host_latency(model, profile)
            else:
                if dev not in estimates:
                    estimates[dev] = estimate(profile, dev)
                totals = estimates[dev].totals
                out[label] = float(totals.seconds if resource == "latency" else totals.joules)
        return out

    def timing(self) -> AbstractContextManager:
        """The context to time the host in: ``timing_lock()``, or nothing held."""
        return self.timing_lock() if self.timing_lock is not None else nullcontext()

    @contextmanager
    def pricing(self):
        """A phase of many prices (one iteration's proposals): once the lock is taken, it is kept to the end.

        Taking it for each new layer and releasing it in between would let every other user of the
        lock run its whole job between two layers.
        """
        self._sticky = True
        try:
            yield
        finally:
            self._sticky = False
            if self._locked is not None:
                self._locked.release()

    def _host_latency(self, model: nn.Module, profile) -> float:
        from edgefit.measure import LatencyTable, predict_latency

        if self.table is None:
            self.table = LatencyTable()
        if self.interpolate and not isinstance(self.table, InterpolatingTable):
            self.table = InterpolatingTable(self.table)
        if self.timing_lock is None:
            table = self.table
        elif self._locked is not None and self._locked.table is self.table:
            table = self._locked
        else:
            table = self._locked = LockedTable(self.table, self.timing, lambda: self._sticky)
        # the table's own sum, never a host correction: a stored correction appears once calibrated, and
        # a run resumed across that moment would mix scaled and unscaled values
        pred = predict_latency(model, profile, table=table, measure=False, correction=False)
        missing = pred.unpredicted
        if missing:
            note = f"latency@host leaves out {len(missing)} unpredicted rows: {', '.join(missing[:3])}"
            if note not in self.notes:
                self.notes.append(note)
        return float(pred.seconds)


class LockedTable:
    """A lookup table that holds a lock while it times: on a missing entry, and around its timing gate.

    Stored entries are read without the lock, so pricing networks from a warm table never waits
    for other users of the lock. Everything else is the wrapped table's. The lock is taken once
    however deep the calls nest; with ``sticky()`` true it is kept after the call until `release`.
    """

    def __init__(self, table, lock: Callable[[], AbstractContextManager], sticky: Callable[[], bool] = bool) -> None:
        self.table, self._lock, self._sticky = table, lock, sticky
        self._held_by: ExitStack | None = None

    def __getattr__(self, name):
        return getattr(self.table, name)

    def _held(self, fn):
        if self._held_by is not None:
            return fn()
        held = ExitStack()
        held.enter_context(self._lock())  # if taking the lock fails, nothing counts as held
        self._held_by = held
        try:
            return fn()
        finally:
            if not self._sticky():
                self.release()

    def release(self) -> None:
        """Let the lock go (if held)."""
        held, self._held_by = self._held_by, None
        if held is not None:
            held.close()

    def lookup_or_measure(self, key: str, fn: Callable[[], object]) -> tuple[float, bool]:
        """The wrapped table's answer; under the lock unless it answers from storage without timing
        (an entry due for its second take, `LatencyTable` ``second_take_after_s``, is timed)."""
        will_time = getattr(self.table, "will_time", None)
        timing = will_time(key) if will_time is not None else self.table.get(key) is None
        if self._held_by is None and not timing:
            return self.table.lookup_or_measure(key, fn)
        return self._held(lambda: self.table.lookup_or_measure(key, fn))

    def behind_gate(self, *args, **kwargs):
        """The wrapped table's timing gate (calibrations time through it), under the lock."""
        return self._held(lambda: self.table.behind_gate(*args, **kwargs))
