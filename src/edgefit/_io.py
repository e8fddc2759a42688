"""Atomic file writing (write to a temporary name beside the target, then rename),
data files read safely (YAML / JSON, no code runs) and SQLite connections, whose
failures are one-line errors."""

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


def read_mapping(path: str | os.PathLike, what: str, error: type[Exception] | None = None) -> dict:
    """The mapping in a YAML (``yaml.safe_load``) or ``.json`` data file.

    Args:
        path: the file.
        what: how errors name it (``"device file"``, ``"space file"``).
        error: the exception class raised (default: `edgefit.errors.ConfigError`).

    Raises:
        error: the file cannot be read, does not parse, or holds no mapping; one line.
    """
    import json

    import yaml

    from edgefit.errors import ConfigError

    error = error or ConfigError
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise error(f"{what} {path} is not valid YAML/JSON: {detail}") from None
    if not isinstance(data, dict):
        raise error(f"{what} {path} must hold a mapping of fields, got {type(data).__name__}")
    return data
