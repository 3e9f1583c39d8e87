"""A language model registered and served end to end: scripts/serve.py on loopback, hit with httpx.

A tiny GPT (``experiment=gpt_tiny``) is trained for a few steps on a tiny corpus once for the
module and registered; one server (bearer auth on, following ``@production``, the default
backend, which a language model ignores) serves the tests here; the hot reload runs last.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import pytest

from factory import registry
from factory.serving.request_log import read_request_log
from tests.integration.helpers import trained_run
from tests.integration.serve_helpers import metric, start

TOKEN = "lm-t0ken"
NAME = "gpt_tiny"
LIMIT = 2000  # limits.max_new_tokens: long enough that a stream cut after its first event is still sampling
#: a few steps of the CI preset on the module's corpus
TINY_LM = ["experiment=gpt_tiny", "logger=csv", "trainer.max_steps=6", "data.tokenizer.vocab_size=300",
           "data.block_size=32", "data.batch_size=8", "data.windows_per_epoch=48"]
SECRET = "my-private-prompt-4711"  # must reach no byte of the request log


def corpus(directory: Path) -> Path:
    """A few hundred lines of real text: some standard library modules' sources."""
    import inspect
    import json as json_module
    import shlex
    import textwrap

    directory.mkdir()
    for module in (json_module, textwrap, shlex):
        (directory / f"{module.__name__}.txt").write_text(inspect.getsource(module))
    return directory


@pytest.fixture(scope="module")
def lm(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("serve-lm")
    run_dir = trained_run(root, [*TINY_LM, f"data.source.path={corpus(root / 'corpus')}"])
    reg = root / "registry"
    version = registry.register(run_dir, registry=reg, export=True)  # export: skipped quietly for a language model
    registry.promote(NAME, version.version, "production", reg)
    return {"root": root, "registry": reg, "run_dir": run_dir, "version": version}


@pytest.fixture(scope="module")
def server(lm):
    tokens = lm["root"] / "tokens.txt"
    tokens.write_text(f"{TOKEN}\n")
    srv = start(lm["root"], f"model={NAME}@production", f"registry={lm['registry']}", "reload.interval_s=0.2",
                f"auth.tokens_file={tokens}", f"limits.max_new_tokens={LIMIT}")
    yield srv
    code = srv.stop()
    assert code == 0 and "Application shutdown complete" in srv.output(), srv.output()
    assert "Traceback" not in srv.output(), srv.output()


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as c:
        yield c


def body(text: str = "def ", **parameters) -> dict:
    return {"text_input": text, "parameters": {"max_tokens": 24, "temperature": 0.9, "top_k": 40, "seed": 1,
                                               **parameters}}


def events(response: httpx.Response) -> list[dict]:
    """The JSON of each ``data:`` event of a server-sent event stream, read as it arrives."""
    return [json.loads(line.removeprefix("data: ")) for line in response.iter_lines() if line.startswith("data: ")]


def test_registered_with_its_tokenizer_and_loaded_for_generation(lm):
    meta = registry.show(f"{NAME}@production", lm["registry"])
    assert meta["kind"] == "language_model"
    folder = lm["version"].path
    # no ONNX graph, no reference profile
    assert sorted(p.name for p in folder.iterdir()) == ["meta.json", "model.ckpt", "tokenizer.json"]
    assert meta["tokenizer"]["sha256"] == meta["language_model"]["tokenizer_hash"]
    assert meta["language_model"]["vocab_size"] <= 300 and meta["language_model"]["block_size"] == 32
    assert meta["language_model"]["val_perplexity"] > 1
    assert registry.exported(f"{NAME}@1", lm["registry"]) == {}  # register(export=True) skipped it

    loaded = registry.load(f"{NAME}@production", lm["registry"])
    assert (loaded.name, loaded.version, loaded.kind) == (NAME, 1, "language_model")
    text = loaded.generate_text("def ", max_new_tokens=16, temperature=0.9, top_k=40, seed=3)
    assert text == loaded.generate_text("def ", max_new_tokens=16, temperature=0.9, top_k=40, seed=3)
    assert "".join(loaded.stream_text("def ", max_new_tokens=16, temperature=0.9, top_k=40, seed=3)) == text


def test_health_metadata_and_auth(server, client):
    assert httpx.get(server.url + "/v2/health/live").json() == {"live": True}  # open
    assert httpx.get(server.url + "/v2/health/ready").json() == {"ready": True}
    for path in ("generate", "generate_stream"):
        refused = httpx.post(f"{server.url}/v2/models/{NAME}/{path}", json=body())
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
    meta = client.get(f"/v2/models/{NAME}").json()
    assert meta["inputs"] == [{"name": "text_input", "datatype": "BYTES", "shape": [1]}]
    assert meta["outputs"] == [{"name": "text_output", "datatype": "BYTES", "shape": [-1]}]
    assert meta["parameters"]["task"] == "language_modeling" and meta["parameters"]["max_new_tokens"] == LIMIT
    assert "served through PyTorch (backend=onnx applies to tabular models)" in server.output()


def test_generate_is_reproducible_with_a_seed(client, lm):
    first = client.post(f"/v2/models/{NAME}/generate", json=body())
    assert first.status_code == 200, first.text
    answer = first.json()
    assert set(answer) == {"model_name", "model_version", "text_output"}
    assert (answer["model_name"], answer["model_version"]) == (NAME, "1") and answer["text_output"]
    assert client.post(f"/v2/models/{NAME}/versions/1/generate", json=body()).json() == answer
    assert client.post(f"/v2/models/{NAME}/generate", json=body(seed=2)).json()["text_output"] != answer["text_output"]
    # the server's text is the registry's (the same model, the same seed)
    loaded = registry.load(f"{NAME}@1", lm["registry"])
    assert answer["text_output"] == loaded.generate_text("def ", max_new_tokens=24, temperature=0.9, top_k=40, seed=1)


def test_generate_stream_sends_the_same_text_piece_by_piece(client):
    whole = client.post(f"/v2/models/{NAME}/generate", json=body("import ")).json()["text_output"]
    with client.stream("POST", f"/v2/models/{NAME}/generate_stream", json=body("import ")) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        got = events(response)
    pieces, final = got[:-1], got[-1]
    assert len(pieces) > 1 and "".join(e["text_output"] for e in pieces) == whole
    assert all(e["model_name"] == NAME and e["model_version"] == "1" for e in got)
    assert final["final"] is True and final["text_output"] == ""
    assert final["generated_tokens"] == len(pieces) <= 24 and final["prompt_tokens"] >= 1


def test_metrics_count_generated_tokens(client):
    before = client.get("/metrics").text
    client.post(f"/v2/models/{NAME}/generate", json=body())
    with client.stream("POST", f"/v2/models/{NAME}/generate_stream", json=body()) as response:
        events(response)
    text = client.get("/metrics").text
    assert metric(text, "factory_generated_tokens_total") > (metric(before, "factory_generated_tokens_total") or 0)
    assert metric(text, "factory_prompt_tokens_total") > 0
    assert metric(text, "factory_time_to_first_token_seconds_count") >= 1
    assert metric(text, "factory_generations_total", finish="completed") >= 2
    assert metric(text, "factory_request_duration_seconds_count", endpoint="/v2/models/{name}/generate") >= 1
    assert metric(text, "factory_requests_total", endpoint="/v2/models/{name}/generate_stream", status="200") >= 1


@pytest.mark.parametrize("doc, status, message", [
    ({"parameters": {"max_tokens": 4}}, 400, "text_input: missing"),
    ({"text_input": 42}, 400, "text_input: expected a string"),
    ({"text_input": "a", "parameters": {"max_tokens": LIMIT + 1}}, 422,
     f"parameters.max_tokens: {LIMIT + 1} is over this server's limit of {LIMIT} tokens (limits.max_new_tokens)"),
    ({"text_input": "a", "parameters": {"max_tokens": "many"}}, 400, "parameters.max_tokens: expected an integer"),
    ({"text_input": "a", "parameters": {"temperature": -1}}, 400, "parameters.temperature: -1 is out of range"),
    ({"text_input": "a", "parameters": {"top_k": 0}}, 400, "parameters.top_k: 0 is out of range"),
    ({"text_input": "a", "parameters": {"top_p": 0.9}}, 400, "parameters.top_p: unknown parameter"),
])
def test_bad_input_is_a_4xx_naming_the_field(client, doc, status, message):
    for path in ("generate", "generate_stream"):
        answer = client.post(f"/v2/models/{NAME}/{path}", json=doc)
        assert answer.status_code == status, answer.text
        assert message in answer.json()["error"]
    assert client.post(f"/v2/models/{NAME}/generate", content=b"{not json").status_code == 400


def test_rows_are_refused_and_other_names_are_404(client):
    infer = client.post(f"/v2/models/{NAME}/infer", json={"inputs": []})
    predict = client.post("/predict", json={"rows": [{"x": 1}]})
    for answer in (infer, predict):
        assert answer.status_code == 400
        assert f"model '{NAME}' is a language model: it scores no rows; generate text with " \
               f"POST /v2/models/{NAME}/generate" in answer.json()["error"]
    assert client.post("/v2/models/other/generate", json=body()).status_code == 404
    assert client.post(f"/v2/models/{NAME}/versions/7/generate_stream", json=body()).status_code == 404


def test_a_long_stream_leaves_health_responsive_and_stops_when_the_client_goes(server, client):
    before = client.get("/metrics").text
    cancelled = metric(before, "factory_generations_total", finish="cancelled") or 0
    generated = metric(before, "factory_generated_tokens_total") or 0
    with client.stream("POST", f"/v2/models/{NAME}/generate_stream",
                       json=body(SECRET, max_tokens=LIMIT, seed=None)) as response:
        lines = response.iter_lines()
        assert next(line for line in lines if line.startswith("data: "))  # sampling is under way
        probes = []
        for _ in range(5):  # while the model samples, the event loop answers
            start = time.perf_counter()
            assert httpx.get(server.url + "/v2/health/ready", timeout=5).status_code == 200
            probes.append(time.perf_counter() - start)
        assert min(probes) < 0.5, probes
    # leaving the block closed the connection mid-stream: the server stops sampling
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        text = client.get("/metrics").text
        if (metric(text, "factory_generations_total", finish="cancelled") or 0) > cancelled:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the cut stream was never counted as cancelled")
    assert metric(text, "factory_generated_tokens_total") - generated < LIMIT


def test_health_answers_while_a_long_generate_samples(server, client):
    """Sampling runs in a worker thread: probes sent during a generation (~4 s here) are answered before it ends."""
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(answer=client.post(
        f"/v2/models/{NAME}/generate", json=body(max_tokens=600, seed=None))))
    worker.start()
    time.sleep(0.3)  # the generation is under way
    for _ in range(5):
        assert httpx.get(server.url + "/v2/health/live", timeout=30).status_code == 200
    assert worker.is_alive(), "the probes were answered only after the generation"
    worker.join()
    assert result["answer"].status_code == 200


def test_generate_on_a_tabular_model_is_refused(tmp_path):
    from fastapi.testclient import TestClient

    import factory
    from factory.serving.app import create_app
    from factory.serving.model_holder import ModelHolder

    reg = tmp_path / "reg"
    registry.register(trained_run(tmp_path), registry=reg)  # a 1-epoch diagnosis model
    cfg = factory.compose("serve", ["log.enabled=false", "batching.enabled=false",
                                    f"serving_dir={tmp_path / 'serving'}"], check=False)
    with TestClient(create_app(cfg, ModelHolder("diagnosis", reg, "torch", follow=False))) as c:
        for path in ("generate", "generate_stream"):
            answer = c.post(f"/v2/models/diagnosis/{path}", json=body())
            assert answer.status_code == 400
            assert answer.json()["error"].startswith("model 'diagnosis' is a binary model: it generates no text; "
                                                     "score rows with POST /v2/models/diagnosis/infer")


def test_concurrent_generations_each_keep_their_seed(client):
    """Two generations at once, each in its own worker thread, give the text each gives alone."""
    alone = {seed: client.post(f"/v2/models/{NAME}/generate", json=body(seed=seed)).json()["text_output"]
             for seed in (5, 6)}
    together: dict = {}

    def call(seed):
        together[seed] = client.post(f"/v2/models/{NAME}/generate", json=body(seed=seed)).json()["text_output"]

    threads = [threading.Thread(target=call, args=(seed,)) for seed in (5, 6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert together == alone


def test_request_log_holds_counts_not_text_then_hot_reload(server, client, lm):
    """Last: the reload changes the served version. The log is read after a flush (1 s)."""
    client.post(f"/v2/models/{NAME}/generate", json=body(SECRET))
    second = registry.register(lm["run_dir"], registry=lm["registry"])
    registry.promote(NAME, second.version, "production", lm["registry"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        answer = client.post(f"/v2/models/{NAME}/generate", json=body()).json()
        if answer["model_version"] == str(second.version):
            break
        time.sleep(0.2)
    else:
        pytest.fail("the promoted version was never served")
    time.sleep(1.5)  # log.flush_interval_s
    requests = lm["root"] / "serving" / NAME / "requests"
    table = read_request_log(requests).to_pandas()
    assert {"request_id", "time", "version", "endpoint", "prompt_tokens", "generated_tokens", "max_tokens",
            "temperature", "top_k", "seed", "seconds", "prediction"} <= set(table.columns)
    assert set(table["endpoint"]) == {"generate", "generate_stream"}
    assert (table["generated_tokens"] >= 1).all() and set(table["prediction"]) <= {"completed", "cancelled"}
    assert {1, second.version} <= set(table["version"])
    for file in requests.rglob("*.parquet"):  # neither the prompt nor any text reaches the log
        assert SECRET.encode() not in file.read_bytes()
