"""Hot reload between versions with different features, and the review's other server fixes.

One registry holds three versions under one name: v1 a fraud model, v2 a diagnosis model
(other columns), v3 a model with a feature named ``time`` (a request-log column). A real
server follows ``@production`` while production flips between v1 and v2 under traffic:
each request must be decoded against, scored by and named by one version (a 200 names
the version whose columns the request holds; a request decoded against the other model
is a 400, never a 500). The rest runs the app in process (httpx's ASGI transport) on the
same registry.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

import factory
from factory import registry
from factory.errors import FactoryError
from tests.integration.helpers import FAST_FRAUD
from tests.integration.serve_helpers import run_serve, start

NAME = "fraud_detection"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    """v1 fraud, v2 diagnosis, v3 a model with a feature named ``time``; all exported; v1 in production."""
    root = tmp_path_factory.mktemp("reload-race")
    reg = root / "registry"
    table = root / "clock.csv"
    rng = np.random.default_rng(0)
    pacsv.write_csv(pa.table({"time": rng.normal(size=200), "x": rng.normal(size=200), "y": [0, 1] * 100}), table)
    runs = [FAST_FRAUD, ["experiment=diagnosis", "logger=csv", "trainer.max_epochs=1", "baseline=null"],
            ["data=files", "logger=csv", "trainer=debug", f"data.source.path={table}", "data.source.target=y"]]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACTORY_ROOT", str(root))
        for overrides in runs:
            result = factory.train(factory.compose("train", overrides))
            assert result.status == "completed"
            registry.register(result.run_dir, NAME, registry=reg, export=True)
    registry.promote(NAME, 1, "production", reg)
    bodies = {}
    for version in (1, 2):
        model = registry.load(f"{NAME}@{version}", reg, backend="onnx")
        rows = model.datamodule().split_table("test").slice(0, 3).to_pandas()[model.features]
        bodies[version] = {"rows": rows.astype(object).where(rows.notna(), None).to_dict("records"),
                           "kinds": dict(model.onnx.kinds), "features": list(model.features)}
    return {"root": root, "registry": reg, "bodies": bodies}


def _tensors(body: dict) -> list[dict]:
    return [{"name": f, "shape": [len(body["rows"])], "datatype": "BYTES" if k == "categorical" else "FP64",
             "data": [r[f] for r in body["rows"]]} for f, k in body["kinds"].items()]


@pytest.mark.parametrize("batching", ["true", "false"])
def test_requests_are_scored_by_the_version_they_were_decoded_against(models, tmp_path, batching):
    reg, bodies = models["registry"], models["bodies"]
    registry.promote(NAME, 1, "production", reg)
    server = start(tmp_path, f"model={NAME}@production", f"registry={reg}", "reload.interval_s=0.05",
                   f"batching.enabled={batching}", "batching.max_latency_ms=2", f"serving_dir={tmp_path}/serving")
    stop, results, lock = threading.Event(), [], threading.Lock()

    def traffic(i: int) -> None:
        version = 1 + i % 2  # the version whose columns this thread sends
        body = bodies[version]
        with httpx.Client(base_url=server.url, timeout=30) as c:
            while not stop.is_set():
                kind = ("predict", "infer", "pinned")[i % 3]
                if kind == "predict":
                    r = c.post("/predict", json={"rows": body["rows"]})
                    answered = r.json().get("version") if r.status_code == 200 else None
                else:
                    path = f"/v2/models/{NAME}/infer" if kind == "infer" else f"/v2/models/{NAME}/versions/1/infer"
                    r = c.post(path, json={"inputs": _tensors(body)})
                    answered = int(r.json()["model_version"]) if r.status_code == 200 else None
                with lock:
                    results.append((kind, version, r.status_code, answered, r.text if r.status_code != 200 else ""))

    threads = [threading.Thread(target=traffic, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    try:
        for flip in range(14):  # production moves v1 -> v2 -> v1 ... under the traffic
            registry.promote(NAME, 2 if flip % 2 == 0 else 1, "production", reg)
            time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join()
        code = server.stop()
    assert code == 0, server.output()
    statuses = Counter((kind, version, status) for kind, version, status, _, _ in results)
    assert not [r for r in results if r[2] >= 500], (statuses, [r[4] for r in results if r[2] >= 500][:3])
    for kind, version, status, answered, text in results:
        if status == 200:  # scored by a model of the columns it sent, and named so
            assert answered == version, (kind, version, answered)
            assert kind != "pinned" or answered == 1
        elif status == 400:  # decoded against the other model: its columns are missing or unknown
            assert "missing" in text or "unknown" in text, text
        else:
            assert status == 404 and kind == "pinned" and "is not served" in text, text
    for version in (1, 2):  # both kinds of request got through while their version served
        assert statuses[("predict", version, 200)] > 0, statuses
    assert "Traceback" not in server.output() and "now serves v2 (was v1)" in server.output()


def _cfg(*overrides: str):
    cfg = factory.compose("serve", list(overrides), check=False)
    cfg.model = f"{NAME}@production"
    return cfg


def test_a_refused_or_broken_version_is_not_reloaded_every_interval(models, caplog):
    """v3 has a feature named like a log column: refused before the swap (one log line), v1 serves on,
    and it is tried again after a doubling back-off, not every interval."""
    from factory.serving.model_holder import ModelHolder
    from factory.serving.server import log_check

    reg = models["registry"]
    registry.promote(NAME, 1, "production", reg)
    holder = ModelHolder(f"{NAME}@production", reg, "onnx", interval_s=0.05, check=log_check(_cfg()))
    with caplog.at_level(logging.INFO, logger="factory.serving.model_holder"):
        registry.promote(NAME, 3, "production", reg)
        holder.start()
        time.sleep(1.2)  # 24 intervals
        assert holder.current.version == 1
        assert 2 <= holder.attempts <= 5, holder.attempts  # 0.1, 0.2, 0.4, 0.8 s apart
        refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert len(refused) == 1 and "v3 refused" in refused[0] and "'time'" in refused[0], refused
        registry.promote(NAME, 2, "production", reg)  # the index changed: looked at again at once
        deadline = time.monotonic() + 10
        while holder.current.version != 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    holder.close()
    registry.promote(NAME, 1, "production", reg)
    assert holder.current.version == 2


def test_a_log_exclude_name_that_is_no_feature_stops_the_start(models, tmp_path):
    result = run_serve(tmp_path, f"model={NAME}@1", f"registry={models['registry']}", "log.exclude=[amount,amuont]")
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: log.exclude: 'amuont' is not a feature of fraud_detection v1"), line


def test_a_log_exclude_name_missing_from_a_reloaded_version_is_a_warning(models, caplog):
    from factory.serving.server import log_check

    check = log_check(_cfg("log.exclude=[amount]"))
    v1 = _served(models, 1)
    check(v1, starting=True)  # a feature of v1: fine
    with caplog.at_level(logging.WARNING, logger="factory.serving.server"):
        check(_served(models, 2))  # v2 (diagnosis) has no 'amount': served, with a warning
    assert any("log.exclude: 'amount' is not a feature of fraud_detection v2" in r.getMessage()
               for r in caplog.records)
    with pytest.raises(FactoryError, match="log.exclude: 'amount'"):
        check(_served(models, 2), starting=True)


def _served(models, version: int):
    from factory.serving.model_holder import load_served

    return load_served(f"{NAME}@{version}", models["registry"], "onnx")


# --- the app in process ---------------------------------------------------------------

def _app(models, *overrides: str, version: int = 1):
    from factory.serving.app import create_app
    from factory.serving.model_holder import ModelHolder

    cfg = _cfg("log.enabled=false", *overrides)
    return create_app(cfg, ModelHolder(f"{NAME}@{version}", models["registry"], "onnx", follow=False))


async def _calls(app, *requests):
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)  # raise_app_exceptions: a 500 must not be re-raised
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as c:
            return [await c.request(method, path, **kw) for method, path, kw in requests]


def test_a_crash_is_answered_and_logged_without_re_raising(models, caplog):
    app = _app(models, "batching.enabled=false")

    def broken_hook(*_):
        raise RuntimeError("disk full")

    app.state.after_score.append(broken_hook)
    body = {"rows": models["bodies"][1]["rows"]}
    with caplog.at_level(logging.ERROR, logger="factory.serving.app"):
        crashed, after = asyncio.run(_calls(app, ("POST", "/predict", {"json": body}),
                                            ("GET", "/v2/health/live", {})))
    assert crashed.status_code == 500 and crashed.json() == {
        "error": "internal server error (RuntimeError); the server's log has the details"}
    assert after.status_code == 200
    assert any(r.exc_info and "disk full" in str(r.exc_info[1]) for r in caplog.records)  # the traceback, server-side


def test_a_body_over_max_body_mb_is_413_before_it_is_read(models):
    app = _app(models, "limits.max_body_mb=0.001")  # 1048 bytes
    big = b'{"rows": [' + b" " * 2000 + b"]}"

    async def chunks():  # no Content-Length: a chunked body, counted as it streams in
        yield big[:1000]
        yield big[1000:]

    sized, chunked, small = asyncio.run(_calls(
        app, ("POST", "/predict", {"content": big}), ("POST", f"/v2/models/{NAME}/infer", {"content": chunks()}),
        ("POST", "/predict", {"json": {"rows": models["bodies"][1]["rows"]}})))
    assert sized.status_code == 413 and "over the limit of 0.001 MB (limits.max_body_mb)" in sized.json()["error"]
    assert chunked.status_code == 413 and "limits.max_body_mb" in chunked.json()["error"]
    assert small.status_code == 200


def test_a_closed_batcher_is_503_with_retry_after(models):
    app = _app(models, "batching.enabled=true")

    async def calls():
        async with app.router.lifespan_context(app):
            app.state.scorer.close()  # as at shutdown, before uvicorn stopped taking requests
            transport = httpx.ASGITransport(app)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as c:
                return await c.post("/predict", json={"rows": models["bodies"][1]["rows"]})

    response = asyncio.run(calls())
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert "shutting down" in response.json()["error"]


def test_int8_metadata_names_onnx_runtime(models):
    registry.export(f"{NAME}@1", models["registry"], quantize=True)
    from factory.serving.app import create_app
    from factory.serving.model_holder import ModelHolder

    app = create_app(_cfg("log.enabled=false", "backend=onnx-int8"),
                     ModelHolder(f"{NAME}@1", models["registry"], "onnx-int8", follow=False))
    [meta] = asyncio.run(_calls(app, ("GET", f"/v2/models/{NAME}", {})))
    assert meta.json()["platform"] == "onnxruntime_onnx"


def test_the_signature_is_kept_on_the_served_model(models):
    served = _served(models, 1)
    sig = served.signature(100)
    assert served.signature(100) is sig and sig.features == served.features and sig.max_rows == 100
    assert _served(models, 2).signature(100).features != sig.features
