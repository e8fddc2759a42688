"""The study on an Optuna storage: open or resume it, and recover trials a killed
process left running.

A SQLite file (``sqlite:///study.db``) is the default; any SQLAlchemy database URL
(``postgresql://...``, ``mysql://...``) lets searches on several machines share one
study. Rerunning the same command resumes: finished trials are kept, and a trial left
RUNNING by a process that died is marked FAIL and queued again with the same
architecture (at once when its owner was a process on this host that no longer exists,
otherwise once its heartbeat is older than the grace period).
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import optuna
from optuna.trial import TrialState

from edgefit.errors import ConfigError, EdgefitError

OWNER = "owner"
HEARTBEAT_S = 30
GRACE_S = 120


class StorageError(EdgefitError):
    """A study storage URL cannot be opened."""


def owner_tag() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def open_storage(url: str | None, *, heartbeat_s: int = HEARTBEAT_S, grace_s: int = GRACE_S):
    """An Optuna storage for ``url`` (None: in memory)."""
    if url is None:
        return optuna.storages.InMemoryStorage()
    if not isinstance(url, str) or "://" not in url:
        raise StorageError(f"storage {url!r} is not a database URL; use e.g. sqlite:///study.db")
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        if str(path) not in ("", ":memory:") and not path.parent.resolve().is_dir():
            raise StorageError(f"storage {url}: the folder {path.parent} does not exist")
    try:
        return optuna.storages.RDBStorage(
            url,
            heartbeat_interval=heartbeat_s,
            grace_period=grace_s,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2),
        )
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises many kinds; all mean "cannot open"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StorageError(f"cannot open storage {url}: {first[:200]}") from None


def open_study(storage, name: str, directions: list[str], sampler, spec: dict):
    """Create the study or load it; a loaded study must have been made with the same ``spec``."""
    try:
        study = optuna.create_study(storage=storage, study_name=name, directions=directions, sampler=sampler,
                                    load_if_exists=True)
    except ValueError as exc:  # different directions for an existing name
        raise ConfigError(f"study {name!r}: {exc}") from None
    stored = study.user_attrs.get("edgefit_spec")
    mine = json.dumps(spec, sort_keys=True)
    if stored is None:
        study.set_user_attr("edgefit_spec", mine)
    elif stored != mine:
        old = json.loads(stored)
        diff = sorted(k for k in set(old) | set(spec) if old.get(k) != spec.get(k))
        raise ConfigError(
            f"study {name!r} in this storage was made with a different {', '.join(diff)}; "
            "rerun with its settings to resume, or choose another --study-name"
        )
    return study


def recover_stale(study, storage) -> list[int]:
    """Fail the trials a dead process left RUNNING and queue their architectures again.

    Returns the numbers of the trials recovered.
    """
    recovered = []
    host = socket.gethostname()
    if isinstance(storage, optuna.storages.RDBStorage):
        before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        optuna.storages.fail_stale_trials(study)  # heartbeat older than the grace period (any host)
        after = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        recovered += sorted(before - after)
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = t.user_attrs.get(OWNER) or {}
        if owner.get("host") == host and owner.get("pid") != os.getpid() and not _alive(int(owner.get("pid", 0))):
            study.tell(t.number, state=TrialState.FAIL)
            study.enqueue_trial(dict(t.params), user_attrs={"retry_of": t.number}, skip_if_exists=False)
            recovered.append(t.number)
    return recovered
