"""Atomic file writing (write to a temporary name beside the target, then rename) and
SQLite connections whose failures are one-line errors."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` atomically (readers never see a partial file)."""
    payload = data.encode() if isinstance(data, str) else data
    return atomic_write_with(path, lambda tmp: Path(tmp).write_bytes(payload))


def atomic_write_with(path: str | os.PathLike, writer: Callable[[str], object]) -> Path:
    """Call ``writer(tmp_path)`` to produce the file, then rename it onto ``path``.

    For libraries that insist on writing to a path themselves (safetensors,
    matplotlib, sqlite backups).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        writer(tmp)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return target


@contextmanager
def sqlite_connection(path: str | os.PathLike, label: str) -> Iterator[sqlite3.Connection]:
    """A connection to the SQLite file ``path``, committed on leaving the block, then closed.

    Not written through `atomic_write`: each block runs in SQLite's own transaction,
    which is atomic and lets concurrent processes share the file.

    Raises:
        ConfigError: the file cannot be opened or is not a usable database; the
            message names it as ``label`` (``"latency table"``, ``"run state"``).
    """
    from edgefit.errors import ConfigError

    try:
        db = sqlite3.connect(path, timeout=30)
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot open the {label} {path}: {exc}") from None
    try:
        with db:
            yield db
    except sqlite3.Error as exc:
        raise ConfigError(f"{label} {path} is not usable: {exc}") from None
    finally:
        db.close()
