"""Batching's waits and answers: no deadline waited out for requests that cannot come, one loop
wake-up per batch, a cancelled caller's rows skipped."""
from __future__ import annotations

import asyncio
import threading
import time

import numpy as np

from factory.serving.batching import Batcher


def _model(calls, gate=None):
    def score(columns):
        if gate is not None:
            gate.wait(5)
        time.sleep(0.01)
        calls.append(columns["x"].tolist())
        return columns["x"] * 2.0, "m"
    return score


def test_a_batch_stops_waiting_when_requests_stop_coming():
    calls = []
    batcher = Batcher(_model(calls), max_batch_size=256, max_latency_ms=1000)
    try:
        async def burst():
            start = time.monotonic()
            await asyncio.gather(*(batcher.submit({"x": np.array([float(i)])}) for i in range(8)))
            return time.monotonic() - start
        took = asyncio.run(burst())
    finally:
        batcher.close()
    assert took < 0.6, took  # the idle gap (200 ms here) ends the batch, not the 1 s deadline
    assert sorted(x for call in calls for x in call) == [float(i) for i in range(8)]


def test_each_batch_wakes_the_event_loop_once():
    calls = []
    batcher = Batcher(_model(calls), max_batch_size=256, max_latency_ms=5)
    wakeups = []
    try:
        async def burst():
            loop = asyncio.get_running_loop()
            plain = loop.call_soon_threadsafe
            loop.call_soon_threadsafe = lambda *a, **k: (wakeups.append(1), plain(*a, **k))[1]
            results = await asyncio.gather(*(batcher.submit({"x": np.array([float(i)])}) for i in range(32)))
            return [float(r.outputs[0]) for r in results]
        answers = asyncio.run(burst())
    finally:
        batcher.close()
    assert answers == [2.0 * i for i in range(32)]
    assert len(wakeups) == len(calls) < 32, (len(wakeups), len(calls))


def test_a_cancelled_caller_is_not_scored():
    calls, gate = [], threading.Event()
    batcher = Batcher(_model(calls, gate), max_batch_size=1, max_latency_ms=5)
    try:
        async def run():
            first = asyncio.ensure_future(batcher.submit({"x": np.array([1.0])}))
            await asyncio.sleep(0.05)  # the worker holds it, blocked on the gate
            second = asyncio.ensure_future(batcher.submit({"x": np.array([2.0])}))
            await asyncio.sleep(0.01)
            second.cancel()
            gate.set()
            return await first, await asyncio.gather(second, return_exceptions=True)
        first, (second,) = asyncio.run(run())
    finally:
        batcher.close()
    assert first.outputs.tolist() == [2.0] and isinstance(second, asyncio.CancelledError)
    assert calls == [[1.0]]
