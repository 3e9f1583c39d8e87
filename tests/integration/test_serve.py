"""The model server end to end: a real uvicorn server (scripts/serve.py) on loopback, hit with httpx.

One tiny fraud model is trained for the module and registered twice (v1 exported to ONNX);
one server (ONNX backend, bearer auth on, following ``@production``) serves most tests
here, the hot reload under traffic last; a second one runs the PyTorch backend in two
worker processes. SIGTERM must end each after a graceful shutdown.
"""
from __future__ import annotations

import json
import shutil
import signal
import socket
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

import factory
from factory import registry
from tests.integration.helpers import FAST_FRAUD
from tests.integration.serve_helpers import free_port, metric, run_serve, start

TOKEN = "t0ken-for-tests"
NAME = "fraud_detection"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    """A registry with two versions of one tiny fraud run (v1 in production), rows to score, expected scores."""
    root = tmp_path_factory.mktemp("serve")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACTORY_ROOT", str(root))
        result = factory.train(factory.compose("train", FAST_FRAUD))
    assert result.status == "completed"
    reg = root / "registry"
    for _ in range(2):
        registry.register(result.run_dir, registry=reg)
    registry.promote(NAME, 1, "production", reg)
    registry.export(f"{NAME}@1", reg)  # v2 is exported during the hot reload test
    model = registry.load(f"{NAME}@1", reg)
    table = model.datamodule().split_table("test").slice(0, 40).to_pandas()
    rows = table[model.features].to_dict("records")
    rows[1]["amount"] = None  # a missing numeric value
    rows[2]["channel"] = None  # a missing categorical one
    expected = model.predict(table[model.features].assign(
        amount=[r["amount"] for r in rows], channel=[r["channel"] for r in rows]))["score"].to_numpy()
    return {"root": root, "registry": reg, "rows": rows, "expected": expected, "features": model.features,
            "kinds": dict(model.preprocessor.schema.features)}


@pytest.fixture(scope="module")
def server(models):
    tokens = models["root"] / "tokens.txt"
    tokens.write_text(f"# tokens\nsomeone-else\n{TOKEN}\n")
    srv = start(models["root"], f"model={NAME}@production", f"registry={models['registry']}",
                "reload.interval_s=0.2", f"auth.tokens_file={tokens}")
    yield srv
    code = srv.stop()  # uvicorn drains, shuts the app down (closers), then the process exits 0
    assert code == 0 and "Application shutdown complete" in srv.output(), srv.output()
    assert "Traceback" not in srv.output()
    assert TOKEN not in srv.output()


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as c:
        yield c


def tensors(rows: list[dict], kinds: dict) -> list[dict]:
    return [{"name": f, "shape": [len(rows)], "datatype": "BYTES" if kind == "categorical" else "FP64",
             "data": [r[f] for r in rows]} for f, kind in kinds.items()]


def test_health_and_metadata(client, models):
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    meta = client.get("/v2").json()
    assert meta["name"] == "factory" and meta["version"] and meta["extensions"] == []
    model = client.get(f"/v2/models/{NAME}").json()
    assert model["name"] == NAME and model["platform"] == "onnxruntime_onnx"
    assert model["inputs"] == [{"name": f, "datatype": "BYTES" if k == "categorical" else "FP64", "shape": [-1]}
                               for f, k in models["kinds"].items()]
    assert [o["name"] for o in model["outputs"]] == ["prediction", "score", "probabilities"]
    version = model["versions"][0]
    assert client.get(f"/v2/models/{NAME}/versions/{version}").json()["name"] == NAME
    assert client.get(f"/v2/models/{NAME}/ready").json() == {"name": NAME, "ready": True}
    assert client.get(f"/v2/models/{NAME}/versions/{version}/ready").json()["ready"] is True


@pytest.mark.parametrize("method, path", [
    ("GET", "/v2/models/nope"), ("GET", "/v2/models/nope/ready"), ("POST", "/v2/models/nope/infer"),
    ("GET", f"/v2/models/{NAME}/versions/99"), ("POST", f"/v2/models/{NAME}/versions/99/infer"),
    ("GET", "/no/such/route"), ("GET", "/predict"),
])
def test_unknown_model_version_or_route_is_a_v2_error(client, method, path):
    response = client.request(method, path, content=b"{}")
    assert response.status_code in (404, 405)
    body = response.json()
    assert list(body) == ["error"] and "\n" not in body["error"]
    if "nope" in path:
        assert body["error"] == f"unknown model 'nope': this server serves '{NAME}'"


def test_predict_scores_as_the_registered_model(client, models):
    response = client.post("/predict", json={"rows": models["rows"]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == NAME and isinstance(body["version"], int)
    assert response.headers["x-request-id"] == body["request_id"] and len(body["request_id"]) == 32
    scores = np.array([p["score"] for p in body["predictions"]])
    np.testing.assert_allclose(scores, models["expected"], atol=1e-5)  # ONNX Runtime against PyTorch
    first = body["predictions"][0]
    assert first["prediction"] == int(first["score"] >= 0.5)
    assert first["probabilities"]["1"] == pytest.approx(first["score"]) and set(first["probabilities"]) == {"0", "1"}
    # A client's own request id is kept.
    again = client.post("/predict", json={"rows": models["rows"][:1]}, headers={"X-Request-ID": "abc-123"})
    assert again.headers["x-request-id"] == "abc-123" and again.json()["request_id"] == "abc-123"
    bad = client.post("/predict", json={"rows": []}, headers={"X-Request-ID": "abc-124"})
    assert bad.status_code == 400 and bad.headers["x-request-id"] == "abc-124"  # on an error too
    odd = client.post("/predict", json={"rows": models["rows"][:1]}, headers={"X-Request-ID": "a b\tc"})
    assert len(odd.headers["x-request-id"]) == 32  # not an id we keep: one of ours instead


def test_infer_answers_as_predict(client, models):
    rows = models["rows"][:5]
    response = client.post(f"/v2/models/{NAME}/infer", json={"id": "req-7", "inputs": tensors(rows, models["kinds"])})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == NAME and body["model_version"].isdigit() and body["id"] == "req-7"
    out = {o["name"]: o for o in body["outputs"]}
    assert out["score"]["datatype"] == "FP64" and out["score"]["shape"] == [5]
    np.testing.assert_allclose(out["score"]["data"], models["expected"][:5], atol=1e-5)
    assert out["probabilities"]["shape"] == [5, 2]
    only = client.post(f"/v2/models/{NAME}/infer", json={"inputs": tensors(rows, models["kinds"]),
                                                          "outputs": [{"name": "prediction"}]}).json()
    assert [o["name"] for o in only["outputs"]] == ["prediction"] and only["id"]  # no id given: the request id


def _with(row: dict, **changes) -> dict:
    return {**row, **changes}


def bad_predict_bodies(rows: list[dict]) -> list[tuple[str, bytes, int, str]]:
    row = rows[0]
    extra = _with(row, zipcode=12345)
    missing = {k: v for k, v in row.items() if k != "hour"}
    return [
        ("empty body", b"", 400, "empty request body"),
        ("malformed JSON", b'{"rows": [{"amount": 1', 400, "malformed JSON"),
        ("rows not a list", b'{"rows": {"amount": 1}}', 400, "rows: expected a list"),
        ("no rows key", b'{"data": []}', 400, 'expected a JSON object {"rows"'),
        ("missing feature", json.dumps({"rows": [row, missing]}).encode(), 400, "rows[1]: missing column 'hour'"),
        ("unknown column", json.dumps({"rows": [extra]}).encode(), 400, "rows[0]: unknown column 'zipcode'"),
        ("wrong type", json.dumps({"rows": [row, row, _with(row, amount="abc")]}).encode(), 400,
         'rows[2].amount: expected a number or null, got "abc"'),
        ("over max_rows", json.dumps({"rows": [row] * 10001}).encode(), 413, "over the limit of 10000"),
    ]


def test_bad_predict_requests_get_a_one_line_4xx(client, models):
    for what, body, status, message in bad_predict_bodies(models["rows"]):
        response = client.post("/predict", content=body, headers={"content-type": "application/json"})
        assert response.status_code == status, (what, response.text)
        error = response.json()["error"]
        assert message in error and "\n" not in error and "Traceback" not in response.text, what


def test_bad_infer_requests_get_a_one_line_4xx(client, models):
    rows, kinds = models["rows"][:2], models["kinds"]
    good = tensors(rows, kinds)
    amount = next(i for i, t in enumerate(good) if t["name"] == "amount")
    cases = [
        ("wrong datatype", [*good[:amount], {**good[amount], "datatype": "BYTES"}, *good[amount + 1:]],
         "('amount'): datatype 'BYTES', expected 'FP64'"),
        ("shape mismatch", [*good[:amount], {**good[amount], "shape": [3]}, *good[amount + 1:]],
         "('amount'): shape [3] holds 3 values, data has 2"),
        ("unequal lengths", [*good[:-1], {**good[-1], "shape": [1], "data": good[-1]["data"][:1]}],
         "1 rows, but inputs before it have 2"),
        ("missing input", good[1:], f"missing input '{good[0]['name']}'"),
        ("wrong type", [*good[:amount], {**good[amount], "data": ["abc", 1.0]}, *good[amount + 1:]],
         "('amount').data[0]: expected a number or null"),
    ]
    for what, inputs, message in cases:
        response = client.post(f"/v2/models/{NAME}/infer", json={"inputs": inputs})
        assert response.status_code == 400, (what, response.text)
        assert message in response.json()["error"], what
    assert client.post(f"/v2/models/{NAME}/infer", content=b"").status_code == 400


def raw_status(url: str, request: bytes) -> tuple[int, bytes]:
    """Send ``request`` as bytes (httpx refuses a header value ending in a space); the status and response."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1]), data


def test_an_empty_bearer_token_is_401(server):
    status, response = raw_status(server.url, b"POST /predict HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \r\n"
                                              b"Content-Length: 2\r\nConnection: close\r\n\r\n{}")
    assert status == 401 and b"www-authenticate: Bearer" in response.lower().replace(b"bearer", b"Bearer")


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", "Bearer", f"Basic {TOKEN}", f"Bearer {TOKEN}x",
                                    f"bearer {TOKEN[:-1]}"])
def test_requests_without_a_valid_token_are_401(server, models, header):
    headers = {"Authorization": header} if header is not None else {}
    for method, path in (("POST", "/predict"), ("POST", f"/v2/models/{NAME}/infer"), ("GET", f"/v2/models/{NAME}"),
                         ("GET", "/metrics")):
        response = httpx.request(method, server.url + path, headers=headers, json={"rows": models["rows"][:1]})
        assert response.status_code == 401, (path, response.text)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert list(response.json()) == ["error"]
    for probe in ("/v2/health/live", "/v2/health/ready", "/docs", "/openapi.json"):  # open without a token
        assert httpx.get(server.url + probe, headers=headers).status_code == 200


def test_docs_describe_every_endpoint(client):
    assert "swagger" in client.get("/docs").text.lower()
    spec = client.get("/openapi.json").json()
    for path in ("/predict", "/v2/models/{name}/infer", "/v2/models/{name}", "/v2/health/ready", "/metrics"):
        assert path in spec["paths"], path
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "rows" in body["properties"]
    infer = spec["paths"]["/v2/models/{name}/infer"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "inputs" in infer["properties"] and "$ref" not in json.dumps(infer)


def test_metrics_in_prometheus_text(client, models):
    before = client.get("/metrics").text
    scored = metric(before, "factory_rows_scored_total") or 0.0
    client.post("/predict", json={"rows": models["rows"][:3]})
    client.post("/predict", content=b"{")
    httpx.post(client.base_url.join("/predict"), json={"rows": []})  # no token: 401
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert metric(text, "factory_rows_scored_total") == scored + 3
    assert metric(text, "factory_requests_total", endpoint="/predict", status="200") >= 1
    assert metric(text, "factory_requests_total", endpoint="/predict", status="400") >= 1
    assert metric(text, "factory_requests_total", endpoint="/predict", status="401") >= 1  # counted by route too
    assert metric(text, "factory_request_duration_seconds_count", endpoint="/predict") >= 2
    assert metric(text, "factory_request_duration_seconds_bucket", endpoint="/predict", le="+Inf") >= 2
    assert metric(text, "factory_batch_size_rows_count") >= 1 and metric(text, "factory_score_count") >= 3
    version = client.get(f"/v2/models/{NAME}").json()["versions"][0]
    assert metric(text, "factory_model_info", name=NAME, version=version, stage="production", backend="onnx") == 1
    assert "# TYPE factory_request_duration_seconds histogram" in text


def test_hot_reload_under_traffic(client, models, server):
    """Requests keep coming while production moves to v2: first a v2 that cannot load (not exported yet:
    v1 keeps serving, one log line), then its export lands. No request fails; versions go 1 -> 2, never back."""
    assert client.post("/predict", json={"rows": models["rows"][:1]}).json()["version"] == 1
    stop, failures, seen = threading.Event(), [], [[] for _ in range(3)]

    def traffic(i: int) -> None:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as c:
            while not stop.is_set():
                r = c.post("/predict", json={"rows": models["rows"][i:i + 2]})
                if r.status_code != 200:
                    failures.append(r.text)
                else:
                    seen[i].append(r.json()["version"])

    threads = [threading.Thread(target=traffic, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        registry.promote(NAME, 2, "production", models["registry"])
        time.sleep(1.0)  # several reload checks: each fails, v1 keeps answering
        assert {v for s in seen for v in s} == {1}
        registry.export(f"{NAME}@2", models["registry"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(s and s[-1] == 2 for s in seen):
            time.sleep(0.2)
        time.sleep(0.5)  # and a while on v2
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    for versions in seen:
        assert versions[0] == 1 and versions[-1] == 2, versions
        assert versions == sorted(versions)  # never back to v1
    assert client.get(f"/v2/models/{NAME}").json()["versions"] == ["2"]
    text = client.get("/metrics").text
    assert metric(text, "factory_model_info", name=NAME, version="2", stage="production", backend="onnx") == 1
    assert metric(text, "factory_model_info", name=NAME, version="1") is None
    log = server.output()
    assert log.count("failed to load") == 1, log  # once per version, not once per check
    assert "now serves v2 (was v1)" in log


@pytest.fixture(scope="module")
def torch_server(models):
    """The PyTorch backend in two worker processes, pinned to v1, no auth."""
    srv = start(models["root"], f"model={NAME}@1", f"registry={models['registry']}", "backend=torch", "workers=2",
                f"serving_dir={models['root']}/serving-torch")
    yield srv
    assert srv.stop() == 0, srv.output()
    assert "Traceback" not in srv.output()


def test_torch_backend_in_two_workers(torch_server, models):
    """Same scores as the model in process; /metrics on any worker counts every worker's requests."""
    with httpx.Client(base_url=torch_server.url, timeout=30) as c:
        assert c.get(f"/v2/models/{NAME}").json()["platform"] == "pytorch"
        for _ in range(8):  # new connections: the kernel spreads them over the workers
            with httpx.Client(base_url=torch_server.url, timeout=30) as fresh:
                body = fresh.post("/predict", json={"rows": models["rows"]}).json()
            np.testing.assert_allclose([p["score"] for p in body["predictions"]], models["expected"], atol=1e-6)
            assert body["version"] == 1
        text = c.get("/metrics").text
        assert metric(text, "factory_requests_total", endpoint="/predict", status="200") == 8
        assert metric(text, "factory_rows_scored_total") == 8 * len(models["rows"])
        assert metric(text, "factory_model_info", name=NAME, version="1", backend="torch") == 1


def _corrupt_copy(models: dict, tmp_path: Path) -> Path:
    reg = tmp_path / "registry"
    shutil.copytree(models["registry"], reg)
    with open(reg / NAME / "v1" / "model.ckpt", "ab") as f:
        f.write(b"x")
    return reg


@pytest.mark.parametrize("case", ["no model", "unknown name", "unknown stage", "checksum", "bad config",
                                  "busy port", "tokens file"])
def test_a_server_that_cannot_start_says_why_in_one_line(models, tmp_path, case):
    reg = _corrupt_copy(models, tmp_path) if case == "checksum" else models["registry"]
    args = {"no model": [], "unknown name": ["model=nope@production"], "unknown stage": [f"model={NAME}@staging"],
            "checksum": [f"model={NAME}@1"], "bad config": [f"model={NAME}", "workers=0", "backend=tf"],
            "busy port": [f"model={NAME}"], "tokens file": [f"model={NAME}", f"auth.tokens_file={tmp_path}/none"]}[case]
    expected = {"no model": "model: missing required value", "unknown name": "no model named 'nope'",
                "unknown stage": f"model '{NAME}' has no version in staging",
                "checksum": "changed since it was registered (sha256 mismatch)",
                "bad config": "workers: must be >= 1, got 0", "busy port": "cannot listen on 127.0.0.1",
                "tokens file": "auth.tokens_file: cannot read"}[case]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1] if case == "busy port" else free_port()
        result = run_serve(tmp_path, *args, f"registry={reg}", "backend=torch" if case != "bad config" else "port=1",
                           f"port={port}")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and expected in result.stderr, result.stderr
    if case == "bad config":  # every bad key at once, one line each
        assert any("backend" in line for line in lines)
    else:
        assert len(lines) == 1, result.stderr
    assert "Uvicorn running" not in result.stdout + result.stderr


def test_an_unexpected_error_is_a_one_line_500(models):
    """A failure past decoding (here: a request-log hook that raises) answers 500 with one line, no traceback."""
    import asyncio

    from factory.serving.app import create_app
    from factory.serving.model_holder import ModelHolder

    cfg = factory.compose("serve", ["limits.max_rows=10", "log.enabled=false", "batching.enabled=false"], check=False)
    holder = ModelHolder(f"{NAME}@1", models["registry"], "onnx", follow=False)
    app = create_app(cfg, holder)

    def broken_hook(*_):
        raise RuntimeError("disk full\nsecond line")

    app.state.after_score.append(broken_hook)

    async def calls():
        transport = httpx.ASGITransport(app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as c:
            return (await c.post("/predict", json={"rows": models["rows"][:1]}),
                    await c.post("/predict", json={"rows": models["rows"][:11]}), (await c.get("/metrics")).text)

    response, too_many, text = asyncio.run(calls())
    assert response.status_code == 500
    assert response.json() == {"error": "internal server error (RuntimeError); the server's log has the details"}
    assert too_many.status_code == 413  # limits from the config
    assert metric(text, "factory_requests_total", endpoint="/predict", status="500") == 1
