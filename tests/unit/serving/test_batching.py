"""Dynamic batching with a real, slow-ish score function (20 ms a call, like a small model under load)."""
from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from factory.serving.batching import Batcher, BatcherClosed

CALL_S = 0.02


class SlowModel:
    """Scores ``x * 2`` after sleeping, recording each call's rows."""

    def __init__(self, fail_on: float | None = None):
        self.calls: list[int] = []
        self.fail_on = fail_on
        self.version = 1

    def __call__(self, columns):
        time.sleep(CALL_S)
        x = columns["x"]
        self.calls.append(len(x))
        if self.fail_on is not None and self.fail_on in x:
            raise ValueError(f"cannot score {self.fail_on}")
        return x * 2.0, self.version


async def _submit_all(batcher, requests):
    return await asyncio.gather(*(batcher.submit(r) for r in requests), return_exceptions=True)


def _requests(n, rows=1):
    return [{"x": np.arange(i * rows, (i + 1) * rows, dtype=float), "c": np.array(["a"] * rows, object)}
            for i in range(n)]


def test_a_lone_request_is_not_held_waiting_for_company():
    model = SlowModel()
    batcher = Batcher(model, max_batch_size=256, max_latency_ms=500)
    try:
        for _ in range(3):
            start = time.monotonic()
            scored = batcher.submit_nowait({"x": np.array([1.0, 2.0])}).result(timeout=5)
            assert time.monotonic() - start < 0.25  # 500 ms if it waited for the deadline
            np.testing.assert_array_equal(scored.outputs, [2.0, 4.0])
            assert scored.batch_rows == 2 and scored.model == 1
    finally:
        batcher.close()


def test_concurrent_requests_coalesce_and_each_caller_gets_its_own_rows():
    model = SlowModel()
    batches = []
    batcher = Batcher(model, max_batch_size=256, max_latency_ms=5, on_batch=batches.append)
    requests = _requests(64, rows=3)
    results = asyncio.run(_submit_all(batcher, requests))
    batcher.close()
    for request, scored in zip(requests, results):
        np.testing.assert_array_equal(scored.outputs, request["x"] * 2)
    assert sum(model.calls) == 64 * 3
    assert len(model.calls) <= 8, model.calls  # one call per request would be 64
    assert batches == model.calls and batcher.batches == len(model.calls) and batcher.rows == 192


def test_max_batch_size_is_respected_and_a_larger_request_runs_alone_unsplit():
    model = SlowModel()
    batcher = Batcher(model, max_batch_size=10, max_latency_ms=50)
    requests = _requests(30, rows=3) + [{"x": np.arange(25, dtype=float)}] + _requests(5, rows=3)
    futures = [batcher.submit_nowait(r) for r in requests]
    results = [f.result(timeout=10) for f in futures]
    batcher.close()
    assert 25 in model.calls  # the big one, whole
    assert all(rows <= 10 for rows in model.calls if rows != 25), model.calls
    assert max(r.batch_rows for r in results[:30]) == 9  # three 3-row requests fill a batch of 10
    for request, scored in zip(requests, results):
        np.testing.assert_array_equal(scored.outputs, request["x"] * 2)


def test_requests_with_different_columns_are_never_concatenated():
    model = SlowModel()
    batcher = Batcher(lambda cols: (model(cols)[0], sorted(cols)), max_batch_size=100, max_latency_ms=20)
    futures = [batcher.submit_nowait({"x": np.array([float(i)]), **({"extra": np.array([1.0])} if i % 2 else {})})
               for i in range(10)]
    for i, f in enumerate(futures):
        assert f.result(timeout=5).model == (["extra", "x"] if i % 2 else ["x"])
    batcher.close()


def test_a_failing_model_call_fails_only_the_bad_request_and_bad_requests_fail_alone():
    model = SlowModel(fail_on=-1.0)
    batcher = Batcher(model, max_batch_size=4, max_latency_ms=20)
    with pytest.raises(ValueError, match="different lengths"):
        batcher.submit_nowait({"x": np.array([1.0]), "c": np.array(["a", "b"], object)})
    with pytest.raises(ValueError, match="at least one row"):
        batcher.submit_nowait({"x": np.array([])})
    blocker = batcher.submit_nowait({"x": np.array([100.0, 101.0, 102.0, 103.0])})  # keeps the worker busy
    poisoned = [batcher.submit_nowait({"x": np.array([v])}) for v in (1.0, -1.0, 2.0, 3.0)]  # one full batch
    healthy = [batcher.submit_nowait({"x": np.array([v])}) for v in (4.0, 5.0)]
    assert blocker.result(timeout=5).outputs.tolist() == [200.0, 202.0, 204.0, 206.0]
    with pytest.raises(ValueError, match="cannot score -1.0"):
        poisoned[1].result(timeout=5)
    # The batch's other requests were scored again one at a time: only the bad one failed.
    assert [poisoned[i].result(timeout=5).outputs[0] for i in (0, 2, 3)] == [2.0, 4.0, 6.0]
    assert [f.result(timeout=5).outputs[0] for f in healthy] == [8.0, 10.0]  # the worker kept serving
    batcher.close()


def test_close_scores_everything_queued_then_refuses_new_requests():
    model = SlowModel()
    batcher = Batcher(model, max_batch_size=2, max_latency_ms=1)
    futures = [batcher.submit_nowait({"x": np.array([float(i)])}) for i in range(20)]
    batcher.close()
    assert all(f.done() for f in futures)
    assert [f.result().outputs[0] for f in futures] == [2.0 * i for i in range(20)]
    with pytest.raises(BatcherClosed):
        batcher.submit_nowait({"x": np.array([1.0])})


def test_the_model_swapped_between_batches_scores_whole_batches():
    model = SlowModel()
    batcher = Batcher(model, max_batch_size=8, max_latency_ms=5)
    swapper = threading.Timer(0.05, lambda: setattr(model, "version", 2))
    swapper.start()
    results = asyncio.run(_submit_all(batcher, _requests(64)))
    batcher.close()
    by_batch: dict[tuple, set] = {}
    for scored in results:
        by_batch.setdefault(id(scored.outputs.base), set()).add(scored.model)
    assert all(len(versions) == 1 for versions in by_batch.values())
    assert {s.model for s in results} <= {1, 2}
