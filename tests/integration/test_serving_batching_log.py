"""The server's dynamic batching and request log, end to end: scripts/serve.py on a registered
diagnosis model (ONNX backend), concurrent /predict traffic, rejected requests, then SIGTERM."""
from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from factory import registry
from factory.serving.request_log import log_dir, read_request_log
from tests.conftest import REPO, script_env
from tests.integration.helpers import trained_run

TOKEN = "tok-" + "7" * 24


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> tuple[Path, list[str]]:
    """A registered diagnosis model with its ONNX export: (registry dir, feature names)."""
    root = tmp_path_factory.mktemp("serving-log")
    run_dir = trained_run(root)
    version = registry.register(run_dir, "diagnosis", registry=root / "registry", export=True)
    features = list(registry.load(version.ref, root / "registry").features)
    return root / "registry", features


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(tmp_path: Path, reg: Path, *overrides: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = script_env(tmp_path) | {"FACTORY_SERVE_TOKENS": TOKEN}
    proc = subprocess.Popen([sys.executable, str(REPO / "scripts" / "serve.py"), "model=diagnosis@1",
                             f"registry={reg}", f"port={port}", f"serving_dir={tmp_path / 'serving'}",
                             "reload.enabled=false", *overrides],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, proc.stdout.read()
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the server did not come up"
        time.sleep(0.1)


def _metric(text: str, name: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")
               or line.startswith(name + "{"))


def test_batched_requests_are_logged_rejected_ones_not_and_sigterm_flushes(model, tmp_path):
    reg, features = model
    secret = features[0]  # stands for an identifier column: never written
    proc, url = _start(tmp_path, reg, "log.flush_interval_s=60", "log.flush_rows=100000",
                       "batching.max_latency_ms=20", f"log.exclude=[{secret!r}]".replace("'", '"'))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    rng = np.random.default_rng(0)
    sent = {f"req-{i}": [{f: float(v) for f, v in zip(features, rng.normal(size=len(features)))}
                         for _ in range(1 + i % 3)] for i in range(48)}

    async def traffic():
        async with httpx.AsyncClient(base_url=url, headers=auth, timeout=30) as client:
            responses = await asyncio.gather(*(client.post("/predict", json={"rows": rows}, headers={"x-request-id": rid})
                                               for rid, rows in sent.items()))
            return {r.headers["x-request-id"]: r for r in responses}

    answered = asyncio.run(traffic())
    assert all(r.status_code == 200 for r in answered.values()), [r.text for r in answered.values()][:3]
    bad = httpx.post(f"{url}/predict", headers=auth | {"x-request-id": "rejected-1"},
                     json={"rows": [{**sent["req-0"][0], "nope": 1.0}]})
    unauthenticated = httpx.post(f"{url}/predict", headers={"Authorization": "Bearer wrong", "x-request-id": "anon-1"},
                                 json={"rows": sent["req-1"]})
    assert (bad.status_code, unauthenticated.status_code) == (400, 401)
    metrics = httpx.get(f"{url}/metrics", headers=auth).text
    rows = sum(len(r) for r in sent.values())
    assert _metric(metrics, "factory_batch_size_rows_sum") == rows
    assert 1 <= _metric(metrics, "factory_batch_size_rows_count") < len(sent) / 2  # coalesced (2 calls here)
    assert not list((tmp_path / "serving").rglob("*.parquet"))  # nothing flushed yet: SIGTERM must do it

    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "Application shutdown complete" in out, out
    assert TOKEN not in out
    table = read_request_log(log_dir(tmp_path / "serving", "diagnosis"))
    assert table.num_rows == rows and set(table.column("request_id").to_pylist()) == set(sent)
    assert set(table.column("model").to_pylist()) == {"diagnosis"} and set(table.column("version").to_pylist()) == {1}
    assert secret not in table.column_names and features[1] in table.column_names
    logged = table.to_pandas().sort_values(["request_id", "row"])
    for rid, response in answered.items():
        mine = logged[logged.request_id == rid]
        predictions = response.json()["predictions"]
        assert mine[features[1]].tolist() == [row[features[1]] for row in sent[rid]]
        np.testing.assert_allclose(mine.score.to_numpy(), [p["score"] for p in predictions], rtol=1e-12)
        assert mine.prediction.tolist() == [str(p["prediction"]) for p in predictions]


def test_each_worker_writes_its_own_files_and_all_flush_on_sigterm(model, tmp_path):
    reg, features = model
    proc, url = _start(tmp_path, reg, "workers=2", "log.flush_interval_s=60")
    row = {f: 0.5 for f in features}
    for i in range(30):  # a new connection each: the kernel hands them to either worker
        r = httpx.post(f"{url}/predict", json={"rows": [row]},
                       headers={"Authorization": f"Bearer {TOKEN}", "x-request-id": f"w-{i}"})
        assert r.status_code == 200, r.text
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    directory = log_dir(tmp_path / "serving", "diagnosis")
    assert sorted(read_request_log(directory).column("request_id").to_pylist()) == sorted(f"w-{i}" for i in range(30))
    pids = {p.name.split("-pid")[1].split("-")[0] for p in directory.glob("*.parquet")}
    assert pids and str(proc.pid) not in pids  # written by the worker processes, one file set each
    assert not list((directory / "_parts").glob("*"))
