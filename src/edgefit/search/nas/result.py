"""What a search returns: every sample, the Pareto front, the time_nas accounting,
tables, a plot, and the best architectures written out loadable."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from optuna.trial import TrialState

from edgefit._io import atomic_write
from edgefit.search.nas.pareto import pareto_front


@dataclass(frozen=True)
class TrialRecord:
    """One finished sample.

    Attributes:
        number: the Optuna trial number.
        arch: the architecture (choice -> value).
        values: objective key -> value (empty when infeasible).
        metrics: every metric scored (bytes, seconds, joules...).
        feasible: False when a hard constraint failed (the sample was not trained).
        violations: constraint -> how far outside (> 0: broken).
        seconds: time spent on this sample (metrics + training).
    """

    number: int
    arch: dict
    values: dict
    metrics: dict
    feasible: bool
    violations: dict
    seconds: float


def records_of(trials, objectives) -> list[TrialRecord]:
    out = []
    for t in trials:
        feasible = t.state == TrialState.COMPLETE
        values = {o.key: v for o, v in zip(objectives, t.values, strict=False)} if feasible else {}
        out.append(TrialRecord(t.number, dict(t.params), values, dict(t.user_attrs.get("metrics", {})), feasible,
                               dict(t.user_attrs.get("violations", {})), float(t.user_attrs.get("seconds", 0.0))))
    return out


def format_value(key: str, value) -> str:
    """A metric value in the unit a person reads (%, ms, KB, mJ).

    >>> format_value("accuracy", 0.975), format_value("latency@host", 0.00123), format_value("size", 4096.0)
    ('97.50%', '1.230 ms', '4.0 KB')
    """
    metric = key.partition("@")[0]
    if value is None:
        return "-"
    if metric == "accuracy":
        return f"{100 * value:.2f}%"
    if metric == "latency":
        return f"{1e3 * value:.3f} ms"
    if metric == "energy":
        return f"{1e3 * value:.4f} mJ"
    if metric in ("size", "peak_memory"):
        return f"{value / 1024:.1f} KB"
    if metric in ("macs", "params"):
        return f"{int(value):,}"
    return f"{value:.4g}"


@dataclass
class SearchResult:
    """The outcome of `edgefit.search.search`.

    Attributes:
        study_name, storage: where the study lives (storage None: in memory).
        space: the `SearchSpace`; algorithm: the optimizer's name.
        objectives: objective keys; directions: ``maximize`` / ``minimize`` each.
        constraints: the constraint texts.
        records: every finished sample in trial order (infeasible ones included).
        failed: trials that failed (a dead process, an evaluation error).
        recovered: trial numbers a dead process left running, failed and retried now.
        time_nas: the lectures' accounting, time_nas = num_samples x time_per_sample
            (``samples``, ``evaluated``, ``infeasible``, ``seconds_per_sample``,
            ``time_nas_seconds``, ``supernet_seconds``, ``wall_seconds``, ``workers``).
        host_latency: trial number -> the lookup-table prediction, its interval and the
            measured host latency of that final architecture (`measure_host_latency`; filled
            by `edgefit.search.search` when an objective or constraint is ``latency@host``).
    """

    study_name: str
    storage: str | None
    space: object
    algorithm: str
    objectives: list[str]
    directions: list[str]
    constraints: list[str]
    records: list[TrialRecord]
    failed: int = 0
    recovered: list[int] = field(default_factory=list)
    time_nas: dict = field(default_factory=dict)
    host_latency: dict = field(default_factory=dict)

    @classmethod
    def from_study(cls, study, space, objectives, constraints, algorithm, storage, *, wall_seconds, recovered, workers):
        trials = study.get_trials(deepcopy=False)
        finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        records = records_of(finished, objectives)
        total = sum(r.seconds for r in records)
        supernet = float(study.user_attrs.get("darts_supernet_seconds", 0.0))
        time_nas = {
            "samples": len(records),
            "evaluated": sum(r.feasible for r in records),
            "infeasible": sum(not r.feasible for r in records),
            "seconds_per_sample": total / len(records) if records else 0.0,
            "time_nas_seconds": total + supernet,
            "supernet_seconds": supernet,
            "wall_seconds": wall_seconds,
            "workers": workers,
        }
        return cls(study.study_name, storage, space, algorithm, [o.key for o in objectives],
                   [o.direction for o in objectives], [c.text for c in constraints], records,
                   sum(t.state == TrialState.FAIL for t in trials), list(recovered), time_nas)

    @property
    def feasible(self) -> list[TrialRecord]:
        return [r for r in self.records if r.feasible]

    @property
    def front(self) -> list[TrialRecord]:
        """The Pareto-optimal feasible samples (for one objective: every sample with the best value)."""
        ok = self.feasible
        idx = pareto_front([[r.values[k] for k in self.objectives] for r in ok], self.directions)
        front = [ok[i] for i in idx]
        return sorted(front, key=lambda r: [-r.values[k] if d == "maximize" else r.values[k]
                                             for k, d in zip(self.objectives, self.directions, strict=False)])

    @property
    def best(self) -> TrialRecord | None:
        """The best feasible sample on the first objective (ties: the earliest)."""
        ok = self.feasible
        if not ok:
            return None
        key, sign = self.objectives[0], (1 if self.directions[0] == "maximize" else -1)
        return max(ok, key=lambda r: (sign * r.values[key], -r.number))

    def measure_host_latency(self, records=None, *, table=None, budget_s: float | None = None) -> dict:
        """Predict (with the interval) and measure on this host each front architecture (or ``records``).

        Call it when no trial runs: the measurement must not share the host with training.
        Results go to ``host_latency`` (trial number -> `edgefit.search.host_check.host_latency_check`).
        """
        from edgefit.search.host_check import host_latency_check

        for r in self.front if records is None else records:
            model = self.space.build(r.arch).eval()
            self.host_latency[r.number] = host_latency_check(model, self.space.input_shape(), table=table,
                                                             budget_s=budget_s)
        return self.host_latency

    def host_latency_lines(self) -> list[str]:
        """One line per measured architecture: predicted with its interval, measured, inside or not."""
        from edgefit.search.host_check import check_markdown

        return [f"trial {n}: {check_markdown(c)}" for n, c in sorted(self.host_latency.items())]

    def time_nas_line(self) -> str:
        """The lectures' accounting in one line."""
        t = self.time_nas
        line = (f"time_nas = {t['samples']} samples x {t['seconds_per_sample']:.2f} s/sample = "
                f"{t['samples'] * t['seconds_per_sample']:.1f} s ({t['evaluated']} evaluated, {t['infeasible']} "
                f"rejected by constraints before training)")
        if t.get("supernet_seconds"):
            line += f" + {t['supernet_seconds']:.1f} s one-shot supernet"
        return line + f"; wall {t['wall_seconds']:.1f} s with {t['workers']} worker(s)"

    def _rows(self, records) -> list[list[str]]:
        rows = []
        for r in records:
            arch = " ".join(f"{k}={v}" for k, v in r.arch.items())
            rows.append([str(r.number), *[format_value(k, r.values.get(k)) for k in self.objectives], arch])
        return rows

    def table(self, records=None) -> str:
        """The Pareto front (or ``records``) as a plain-text table."""
        records = self.front if records is None else records
        header = ["trial", *self.objectives, "architecture"]
        rows = self._rows(records)
        widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]
        lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=False)).rstrip()]
        lines.append("-" * len(lines[0]))
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip() for row in rows]
        return "\n".join(lines)

    def to_markdown(self, records=None) -> str:
        records = self.front if records is None else records
        header = ["trial", *self.objectives, "architecture"]
        out = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
        out += ["| " + " | ".join(row) + " |" for row in self._rows(records)]
        return "\n".join(out)

    def to_dict(self) -> dict:
        return {
            "study_name": self.study_name,
            "storage": self.storage,
            "space": self.space.name,
            "algorithm": self.algorithm,
            "objectives": dict(zip(self.objectives, self.directions, strict=False)),
            "constraints": self.constraints,
            "time_nas": self.time_nas,
            "failed": self.failed,
            "recovered": self.recovered,
            "front": [r.__dict__ for r in self.front],
            "records": [r.__dict__ for r in self.records],
            "host_latency": {str(n): c for n, c in self.host_latency.items()},
        }

    def plot(self, path: str | os.PathLike) -> Path:
        """Scatter of the first two objectives with the front (one objective: value per trial)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from edgefit.report.plots import save_figure

        fig, ax = plt.subplots(figsize=(6, 4))
        ok = self.feasible
        if len(self.objectives) >= 2:
            kx, ky = self.objectives[1], self.objectives[0]
            ax.scatter([r.values[kx] for r in ok], [r.values[ky] for r in ok], s=14, c="0.6", label="samples")
            front = sorted(self.front, key=lambda r: r.values[kx])
            ax.plot([r.values[kx] for r in front], [r.values[ky] for r in front], "o-", c="C3", label="Pareto front")
            ax.set_xlabel(kx)
            ax.set_ylabel(ky)
        else:
            k = self.objectives[0]
            ax.scatter([r.number for r in ok], [r.values[k] for r in ok], s=14, c="0.6", label="samples")
            ax.set_xlabel("trial")
            ax.set_ylabel(k)
        ax.set_title(f"{self.space.name} / {self.algorithm}: {len(self.records)} samples")
        ax.legend(loc="best", fontsize=8)
        fig.tight_layout()
        try:
            return save_figure(fig, path)
        finally:
            plt.close(fig)

    def report_sections(self) -> list[dict]:
        """The front as a report section (plain data), for ``edgefit report --section``:
        the first maximized objective against each minimized one; empty without such a pair."""
        ups = [k for k, d in zip(self.objectives, self.directions, strict=True) if d == "maximize"]
        downs = [k for k, d in zip(self.objectives, self.directions, strict=True) if d == "minimize"]
        if not ups or not downs:
            return []
        return [{"type": "scatter", "title": f"Search front: {ups[0]} against {k}", "x_label": k,
                 "y_label": ups[0], "points": [[f"trial {r.number}", r.values[k], r.values[ups[0]]]
                                               for r in self.feasible],
                 "note": f"every feasible sample of study {self.study_name!r} ({self.algorithm})"}
                for k in downs]

    def export(self, directory: str | os.PathLike, records=None) -> list[Path]:
        """Write each front architecture (or ``records``) as ``arch_<trial>.json`` plus a
        ``arch_<trial>.py`` whose ``build()`` returns the network, for
        ``edgefit profile arch_7.py:build``, ``compress`` and ``adapt``, and the front as
        ``pareto.sections.json`` for ``edgefit report --section``."""
        directory = Path(directory)
        paths = []
        sections = self.report_sections()
        if sections:
            paths.append(atomic_write(directory / "pareto.sections.json", json.dumps(sections, indent=2)))
        for r in self.front if records is None else records:
            spec = {"study": self.study_name, "trial": r.number, "space": self.space.to_dict(), "arch": r.arch,
                    "values": r.values, "metrics": r.metrics, "input_shape": list(self.space.input_shape())}
            if r.number in self.host_latency:
                spec["host_latency"] = self.host_latency[r.number]
            js = atomic_write(directory / f"arch_{r.number}.json", json.dumps(spec, indent=2))
            paths.append(js)
            paths.append(atomic_write(directory / f"arch_{r.number}.py", _BUILDER.format(
                number=r.number, study=self.study_name, space=self.space.name, json_name=js.name)))
        return paths


_BUILDER = '''"""Architecture of trial {number} of study {study!r} (space {space!r}), written by edgefit search."""

from pathlib import Path

from edgefit.search.nas import load_architecture


def build():
    """The network (untrained)."""
    return load_architecture(Path(__file__).with_name("{json_name}"))
'''


def load_architecture(path: str | os.PathLike):
    """Build the network described by an exported ``arch_<trial>.json`` (JSON only, no code runs)."""
    from edgefit.errors import ConfigError
    from edgefit.search.nas.space import SearchSpace

    try:
        spec = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read architecture file {path}: {exc}") from None
    if not isinstance(spec, dict) or not {"space", "arch"} <= set(spec):
        raise ConfigError(f"{path}: not an edgefit architecture file (needs 'space' and 'arch')")
    return SearchSpace.from_dict(spec["space"]).build(spec["arch"])
