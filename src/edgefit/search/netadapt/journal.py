"""The run's state: one SQLite file in the output directory, one row per finished iteration.

An iteration's weights are written atomically (`edgefit.data.save_weights`)
*before* its row is inserted, and the insert is one SQLite transaction: a run
killed at any moment leaves either the whole iteration or none of it. The same
command then resumes after the last row, losing at most the iteration in flight.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from edgefit._io import sqlite_connection
from edgefit.errors import ConfigError

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS iterations (iteration INTEGER PRIMARY KEY, block TEXT, widths TEXT NOT NULL,"
    " resources TEXT NOT NULL, score REAL, test_accuracy REAL, weights TEXT NOT NULL, proposals INTEGER NOT NULL,"
    " seconds REAL NOT NULL, created REAL NOT NULL)",
)
FINAL = -1  # the iteration number of the long-term fine-tuned network


@dataclass(frozen=True)
class Member:
    """One network of the family: iteration 0 is the unadapted one, -1 the final fine-tuned one."""

    iteration: int
    block: str | None
    widths: dict[str, int]
    resources: dict[str, float]
    score: float | None
    test_accuracy: float | None
    weights: str
    proposals: int
    seconds: float

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class Journal:
    """``<output_dir>/netadapt.sqlite``."""

    def __init__(self, output_dir: str | Path) -> None:
        self.dir = Path(output_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / "netadapt.sqlite"
        with self._connect() as db:
            for stmt in SCHEMA:
                db.execute(stmt)

    def _connect(self):
        return sqlite_connection(self.path, "run state")

    def start(self, fingerprint: dict) -> bool:
        """Record the run's settings, or check they match the recorded run; True when resuming.

        Raises:
            ConfigError: the directory holds a run with other settings.
        """
        text = json.dumps(fingerprint, sort_keys=True)
        with self._connect() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'run'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES ('run', ?)", (text,))
                return False
        if row[0] != text:
            old = json.loads(row[0])
            diff = sorted(k for k in set(old) | set(fingerprint) if old.get(k) != fingerprint.get(k))
            raise ConfigError(
                f"{self.dir} holds a NetAdapt run with other settings ({', '.join(diff)}): "
                "use the same command to resume or another --output-dir"
            )
        return bool(self.members())

    def put_meta(self, key: str, value) -> None:
        with self._connect() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def meta(self, key: str):
        with self._connect() as db:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def record(self, m: Member) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO iterations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (m.iteration, m.block, json.dumps(m.widths), json.dumps(m.resources), m.score,
                 m.test_accuracy, m.weights, m.proposals, m.seconds, time.time()),
            )

    def members(self) -> list[Member]:
        """Every recorded network, iterations in order, the final one last."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT iteration, block, widths, resources, score, test_accuracy, weights, proposals, seconds"
                " FROM iterations ORDER BY iteration = -1, iteration"
            ).fetchall()
        return [
            Member(r[0], r[1], json.loads(r[2]), json.loads(r[3]), r[4], r[5], r[6], r[7], r[8]) for r in rows
        ]
