"""Trials on two local Ray workers (slow: Ray takes ~20 s to start)."""

import pytest

from edgefit.search import search
from edgefit.search.nas import EvalConfig, RandomConfig

from ._toy import TOY


@pytest.mark.slow
def test_two_ray_workers_train_in_parallel():
    pytest.importorskip("ray")
    result = search(TOY, RandomConfig(seed=0), objectives=["accuracy", "params"], trials=4, workers=2,
                    eval_config=EvalConfig(epochs=1, train_fraction=0.2))
    assert result.time_nas["workers"] == 2
    assert len(result.records) == 4 and all(r.feasible for r in result.records)
    assert all(0.0 <= r.values["accuracy"] <= 1.0 for r in result.records)
    assert all(r.metrics["train_seconds"] > 0 for r in result.records)
    import ray

    assert not ray.is_initialized()  # the search shut down the Ray it started
