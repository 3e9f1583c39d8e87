"""A minimal real server for the request-log tests: uvicorn + FastAPI, scoring ``x * 2`` through
a ``Batcher`` and logging every row; its lifespan's shutdown closes the batcher, then the log.

Run: python log_server.py <log dir> <port> <flush_rows> <flush_interval_s>
"""
from __future__ import annotations

import contextlib
import signal
import sys
import uuid

import numpy as np
import uvicorn
from fastapi import FastAPI

from factory.serving.batching import Batcher
from factory.serving.request_log import RequestLog

directory, port, flush_rows, flush_interval_s = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
state = {}


@contextlib.asynccontextmanager
async def lifespan(app):
    state["batcher"] = Batcher(lambda cols: (cols["x"] * 2.0, 7), max_batch_size=64, max_latency_ms=2)
    state["log"] = RequestLog(directory, exclude=["secret"], flush_rows=flush_rows, flush_interval_s=flush_interval_s)
    yield
    state["batcher"].close()
    state["log"].close()


app = FastAPI(lifespan=lifespan)


@app.post("/predict")
async def predict(body: dict):
    rows = body["rows"]
    features = {"x": np.array([r["x"] for r in rows], dtype=float),
                "secret": np.array([r["secret"] for r in rows], dtype=object)}
    scored = await state["batcher"].submit(features)
    request_id = uuid.uuid4().hex
    state["log"].append(request_id=request_id, model="toy", version=scored.model, features=features,
                        prediction=(scored.outputs > 1).astype(int), score=scored.outputs)
    return {"request_id": request_id, "score": scored.outputs.tolist()}


@app.get("/ready")
async def ready():
    return {"ready": True}


if __name__ == "__main__":
    # uvicorn (>= 0.29) re-raises a captured SIGTERM after its graceful shutdown, which would end the
    # process with -15; a handler of our own takes that re-raised signal, and the process exits 0.
    signal.signal(signal.SIGTERM, lambda *_: None)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
