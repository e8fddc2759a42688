"""`search`: one verb for every optimizer, on an Optuna study, trials inline or on Ray.

The driver asks the study for an architecture, builds it, scores the cheap metrics
itself (one exact profile, the device models, the host latency table: no measurement
per sample), rejects it when a hard constraint fails (the trial is PRUNED, never
trained), and sends the training for accuracy to a worker: inline when ``workers`` is
1 and no Ray address is given, otherwise Ray tasks (``ray.init(num_cpus=workers)``
in process, or the cluster at ``ray_address``, e.g. ``auto`` after ``ray start --head``).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from optuna.trial import TrialState

from edgefit.errors import ConfigError
from edgefit.search.nas.evaluation import (
    EvalConfig,
    call_user_evaluate,
    search_split,
    train_and_score,
)
from edgefit.search.nas.objectives import Constraint, Objective, cheap_keys, compute_metrics
from edgefit.search.nas.optimizers import OptimizerConfig, make_sampler, optimizer_config
from edgefit.search.nas.result import SearchResult, records_of
from edgefit.search.nas.space import SearchSpace, load_space
from edgefit.search.nas.study import OWNER, open_storage, open_study, owner_tag, recover_stale


@dataclass
class SearchContext:
    """What an optimizer factory may need beyond its config (DARTS trains on the data)."""

    study: object
    data: object
    eval: EvalConfig
    threads: int = 1
    _split: object = field(default=None, repr=False)

    def search_data(self):
        if self._split is None:
            self._split = search_split(self.data, self.eval)
        return self._split


class _Done:
    def __init__(self, value) -> None:
        self.value = value


class _Inline:
    """Runs each evaluation at once, in this process."""

    width = 1

    def submit(self, fn, *args):
        return _Done(fn(*args))

    def wait(self, handles):
        return handles[0], handles[0].value

    def close(self):
        pass


class _RayPool:
    """Evaluations as Ray tasks, at most ``width`` in flight."""

    def __init__(self, workers: int | None, address: str | None) -> None:
        try:
            import ray
        except ImportError:  # pragma: no cover - optional dependency
            raise ConfigError("parallel trials need Ray: pip install 'edgefit[search]'") from None
        self.ray = ray
        self.owned = not ray.is_initialized()
        if self.owned:
            if address and address != "local":
                try:
                    ray.init(address=address, log_to_driver=False)
                except Exception as exc:  # noqa: BLE001 - connection errors have many types
                    raise ConfigError(f"cannot connect to the Ray cluster at {address!r}: {str(exc).splitlines()[0][:200]}") from None
            else:
                src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
                path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)
                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
                         runtime_env={"env_vars": {"PYTHONPATH": path}})
        self.width = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._remote = ray.remote(num_cpus=1)(_call)

    def submit(self, fn, *args):
        return self._remote.remote(fn, *args)

    def wait(self, handles):
        ready, _ = self.ray.wait(list(handles), num_returns=1)
        return ready[0], self.ray.get(ready[0])

    def close(self):
        if self.owned:
            self.ray.shutdown()


def _study_name(space: SearchSpace, algorithm: OptimizerConfig, objectives) -> str:
    return f"{space.name}-{algorithm.name}-{'+'.join(o.key for o in objectives)}"


def _check_feasible_at_all(space, constraints, keys, latency_table) -> None:
    """Stop before searching when even the cheapest architecture breaks a constraint."""
    if not constraints:
        return
    metrics = compute_metrics(space.build(space.smallest()), space.input_shape(), keys, latency_table=latency_table)
    for c in constraints:
        if c.violation(metrics) > 0:
            got = "does not fit" if c.objective is None else f"{c.objective.key} = {metrics[c.key]:.4g}"
            raise ConfigError(
                f"no architecture in space {space.name!r} can meet {c.text}: its cheapest one ({got}) already fails"
            )


def search(
    space: str | SearchSpace,
    algorithm: str | OptimizerConfig = "random",
    *,
    objectives: Sequence[str | Objective] = ("accuracy",),
    constraints: Sequence[str | Constraint] = (),
    trials: int = 20,
    storage: str | None = None,
    study_name: str | None = None,
    data=None,
    eval_config: EvalConfig | None = None,
    evaluate: Callable[[dict], dict] | None = None,
    workers: int | None = None,
    ray_address: str | None = None,
    latency_table=None,
    on_trial: Callable | None = None,
    heartbeat_s: int = 30,
    grace_s: int = 120,
) -> SearchResult:
    """Search ``space`` with ``algorithm`` until the study holds ``trials`` finished samples.

    Args:
        space: a built-in space name (``mbv2``, ``cell``), a YAML file or a `SearchSpace`.
        algorithm: an optimizer name (``random``, ``coordinate``, ``evolution``,
            ``reinforce``, ``tpe``, ``gp``, ``nsga2``, ``darts``) or its config.
        objectives: ``accuracy``, ``latency@host``, ``latency@DEVICE``, ``energy@DEVICE``,
            ``size``, ``peak_memory``, ``macs``, ``params``; two or more make it multi-objective.
        constraints: hard constraints, ``fits@DEVICE`` or ``METRIC<=VALUE`` (``latency@host<=2ms``).
        trials: finished samples wanted in the study (resuming counts the ones stored).
        storage: an Optuna storage URL (``sqlite:///study.db``); None keeps it in memory.
        study_name: default ``<space>-<algorithm>-<objectives>``.
        data: the dataset for accuracy, or its name (``digits``, a ``.npz``: loaded only when
            the search trains, `needs_data`; otherwise the digits stand in); default: digits.
        eval_config: how accuracy is approximated (`EvalConfig`).
        evaluate: replaces the training: ``evaluate(arch) -> {metric key: value}``.
        workers: trials in flight. None: 1 in this process, or every CPU of the Ray
            cluster when ``ray_address`` is given. More than 1 runs them on Ray.
        ray_address: a Ray cluster address (``auto``); without it Ray starts in
            process (``ray.init(num_cpus=workers)``) when ``workers`` > 1.
        latency_table: the `LatencyTable` for ``latency@host`` (default: the cache's).
        on_trial: called as ``on_trial(record, finished, trials)`` after each sample.
        heartbeat_s, grace_s: a RUNNING trial whose heartbeat is older than ``grace_s``
            is failed and retried on resume.

    Returns:
        A `SearchResult`: every trial, the Pareto front, the time_nas accounting.

    Raises:
        RegistryError: unknown space or optimizer. ConfigError: unknown objective,
        a constraint the cheapest architecture cannot meet, a study made with other
        settings. StorageError: the storage cannot be opened.
    """
    start = time.perf_counter()
    space = load_space(space)
    config = optimizer_config(algorithm) if isinstance(algorithm, str) else algorithm
    if not isinstance(config, OptimizerConfig):
        raise ConfigError(f"algorithm must be a name or an optimizer config, got {type(algorithm).__name__}")
    objectives = _objectives(objectives)
    constraints = [c if isinstance(c, Constraint) else Constraint.parse(c) for c in constraints]
    for name, value in (("trials", trials), ("workers", 1 if workers is None else workers)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    eval_config = eval_config or EvalConfig()
    keys = cheap_keys(objectives, constraints)
    _check_feasible_at_all(space, constraints, keys, latency_table)
    data = _dataset(data, evaluate, objectives, config)
    with _quiet_optuna():
        store = open_storage(storage, heartbeat_s=heartbeat_s, grace_s=grace_s)
        name = study_name or _study_name(space, config, objectives)
        spec = {"space": space.to_dict(), "algorithm": config.name, "objectives": [o.key for o in objectives],
                "constraints": [c.text for c in constraints]}
        study = open_study(store, name, [o.direction for o in objectives], None, spec)
        recovered = recover_stale(study, store)
        context = SearchContext(study, data, eval_config, eval_config.threads)
        study.sampler = make_sampler(config, space, context)
        runner = _Runner(study, store, space, objectives, constraints, keys, context, evaluate, latency_table, on_trial)
        pool = _RayPool(workers, ray_address) if (ray_address or (workers or 1) > 1) else _Inline()
        try:
            runner.run(trials, pool)
        finally:
            pool.close()
        result = SearchResult.from_study(study, space, objectives, constraints, config.name, storage,
                                         wall_seconds=time.perf_counter() - start, recovered=recovered,
                                         workers=pool.width)
    if HOST_LATENCY in keys and result.feasible:  # every trial is done: nothing else loads the host
        result.measure_host_latency(table=latency_table, budget_s=_host_budget(constraints))
    return result


HOST_LATENCY = "latency@host"


def _host_budget(constraints) -> float | None:
    """The tightest ``latency@host<=...`` limit, if any."""
    limits = [c.limit for c in constraints if c.objective is not None and c.key == HOST_LATENCY]
    return min(limits) if limits else None


def needs_data(objectives: Sequence[str | Objective], algorithm: str | OptimizerConfig = "random") -> bool:
    """Whether a search with these objectives trains (an ``accuracy`` objective, or DARTS's supernet).

    >>> needs_data(["latency@host", "macs"]), needs_data(["accuracy", "macs"]), needs_data(["macs"], "darts")
    (False, True, True)
    """
    name = algorithm if isinstance(algorithm, str) else algorithm.name
    return name == "darts" or any(o.metric == "accuracy" for o in _objectives(objectives))


def _dataset(data, evaluate, objectives, config):
    """The dataset: ``data`` itself, loaded by name (``digits``, a ``.npz``) only when the search trains.

    A name is dropped when nothing trains: the default digits are loaded instead (nothing with ``evaluate``).
    """
    if isinstance(data, str):
        if evaluate is None and needs_data(objectives, config):
            from edgefit.data import load_dataset

            return load_dataset(data)
        data = None
    if data is None and evaluate is None:
        from edgefit.data import load_digits

        return load_digits()
    return data


def _objectives(objectives) -> list[Objective]:
    out = [o if isinstance(o, Objective) else Objective.parse(o) for o in objectives]
    if not out:
        raise ConfigError("give at least one objective")
    if len({o.key for o in out}) != len(out):
        raise ConfigError(f"an objective is repeated: {[o.key for o in out]}")
    return out


@contextmanager
def _quiet_optuna():
    """The library never prints: Optuna's INFO lines and warnings about its own API are muted."""
    import optuna

    old = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            # heartbeats are recorded by this loop, not by Study.optimize; the API is stable enough here
            warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
            warnings.filterwarnings("ignore", message="Heartbeat of storage")
            yield
    finally:
        optuna.logging.set_verbosity(old)


class _Runner:
    """The ask / score / tell loop."""

    def __init__(self, study, store, space, objectives, constraints, keys, context, evaluate, table, on_trial):
        self.study, self.store, self.space = study, store, space
        self.objectives, self.constraints, self.keys = objectives, constraints, keys
        self.context, self.evaluate, self.table, self.on_trial = context, evaluate, table, on_trial
        self.needs_training = any(o.key not in keys for o in objectives)
        self._beat = 0.0
        self.total = 0

    def finished(self) -> int:
        return len(self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))

    def run(self, trials: int, pool) -> None:
        self.total = trials
        pending: dict = {}
        failures = 0
        while True:
            done = self.finished()
            while len(pending) < pool.width and done + len(pending) < trials:
                handle, trial, metrics = self._start(pool)
                if handle is not None:
                    pending[handle] = (trial, metrics)
                done = self.finished()
            if not pending:
                if done >= trials:
                    return
                continue
            self._heartbeat(pending)
            handle, outcome = pool.wait(list(pending))
            trial, metrics = pending.pop(handle)
            if isinstance(outcome, BaseException):
                failures += 1
                trial.set_user_attr("error", f"{type(outcome).__name__}: {outcome}"[:300])
                self.study.tell(trial, state=TrialState.FAIL)
                if failures > max(3, trials):
                    raise ConfigError(f"evaluations keep failing; last: {type(outcome).__name__}: {outcome}")
                continue
            self._finish(trial, metrics, outcome)

    def _heartbeat(self, pending) -> None:
        if hasattr(self.store, "record_heartbeat") and time.monotonic() - self._beat > 1.0:
            for trial, _ in pending.values():
                self.store.record_heartbeat(trial._trial_id)
            self._beat = time.monotonic()

    def _start(self, pool):
        trial = self.study.ask(self.space.distributions())
        trial.set_user_attr(OWNER, owner_tag())
        if hasattr(self.store, "record_heartbeat"):
            self.store.record_heartbeat(trial._trial_id)
        arch = {k: trial.params[k] for k in self.space.params}
        t0 = time.perf_counter()
        metrics = compute_metrics(self.space.build(arch), self.space.input_shape(), self.keys,
                                  latency_table=self.table) if self.keys else {}
        metrics["metric_seconds"] = time.perf_counter() - t0
        violations = {c.text: c.violation(metrics) for c in self.constraints}
        if any(v > 0 for v in violations.values()):
            trial.set_user_attr("metrics", _jsonable(metrics))
            trial.set_user_attr("violations", violations)
            trial.set_user_attr("seconds", metrics["metric_seconds"])
            frozen = self.study.tell(trial, state=TrialState.PRUNED)
            self._report(frozen)
            return None, trial, metrics
        if not self.needs_training and self.evaluate is None:
            self._finish(trial, metrics, {"train_seconds": 0.0})
            return None, trial, metrics
        if self.evaluate is None:
            job = (_safe, train_and_score, self.space.to_dict(), arch, self.context.search_data(), self.context.eval)
        else:
            job = (_safe, call_user_evaluate, self.evaluate, arch)
        return pool.submit(*job), trial, metrics

    def _finish(self, trial, metrics, outcome: dict) -> None:
        metrics = {**metrics, **outcome}
        missing = [o.key for o in self.objectives if o.key not in metrics]
        if missing:
            raise ConfigError(f"the evaluation returned no value for {missing}")
        seconds = metrics.get("metric_seconds", 0.0) + metrics.get("train_seconds", 0.0)
        trial.set_user_attr("metrics", _jsonable(metrics))
        trial.set_user_attr("seconds", seconds)
        frozen = self.study.tell(trial, [float(metrics[o.key]) for o in self.objectives])
        self._report(frozen)

    def _report(self, frozen) -> None:
        if self.on_trial is not None:
            record = records_of([frozen], self.objectives)[0]
            self.on_trial(record, self.finished(), self.total)


def _call(fn, *args):
    return fn(*args)


def _safe(fn, *args):
    """Return the exception instead of raising, so one bad sample fails one trial."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001
        return exc


def _jsonable(metrics: dict) -> dict:
    return {k: (v if isinstance(v, (int, float, bool, str, list, dict)) or v is None else str(v)) for k, v in metrics.items()}
