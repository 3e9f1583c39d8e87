"""A request that fills a batch alone skips the batching queue (one model call, scored directly),
unless that would hold the event loop with a slow model's call; the same scores and metrics;
``factory_score`` buckets count every returned score."""
from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pandas as pd
import pytest

import factory
from factory import registry
from tests.integration.helpers import FAST_FRAUD
from tests.integration.serve_helpers import metric

NAME = "fraud_detection"


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("serve-large")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACTORY_ROOT", str(root))
        result = factory.train(factory.compose("train", FAST_FRAUD))
    assert result.status == "completed"
    reg = root / "registry"
    registry.register(result.run_dir, registry=reg, export=True)
    loaded = registry.load(f"{NAME}@1", reg)
    table = loaded.datamodule().split_table("test").slice(0, 80).to_pandas()[loaded.features]
    rows = [{k: None if isinstance(v, float) and v != v else v for k, v in r.items()}  # JSON has no NaN: null
            for r in table.to_dict("records")]
    return {"root": root, "registry": reg, "rows": rows,
            "expected": loaded.predict(pd.DataFrame(rows))["score"].to_numpy()}


def test_a_request_of_max_batch_size_rows_skips_the_queue(model):
    from factory.serving.app import create_app
    from factory.serving.model_holder import ModelHolder

    cfg = factory.compose("serve", ["log.enabled=false", "batching.enabled=true", "batching.max_batch_size=3",
                                    f"serving_dir={model['root'] / 'serving'}"], check=False)
    holder = ModelHolder(f"{NAME}@1", model["registry"], "onnx", follow=False)
    app = create_app(cfg, holder)
    direct, batcher, rows = app.state.direct, app.state.scorer.batcher, model["rows"]
    sizes = [2, 5, 73]  # 80 rows in all

    async def calls():
        transport = httpx.ASGITransport(app)
        answers, start = [], 0
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as c:
            for size in sizes:
                # As a slow model: a lone request goes through the queue, and so does a full batch small enough
                # to be scored on the event loop (it would hold the loop); 73 rows skip it for a thread.
                direct._timed = (holder.current, 1.0)
                answers.append(await c.post("/predict", json={"rows": rows[start:start + size]}))
                start += size
            return answers, (await c.get("/metrics")).text

    try:
        answers, text = asyncio.run(calls())
    finally:
        app.state.scorer.close()
    assert [a.status_code for a in answers] == [200] * 3
    assert batcher.batches == 2 and batcher.rows == 7  # the 2- and 5-row requests; the 73 rows scored directly
    scores = np.array([p["score"] for a in answers for p in a.json()["predictions"]])
    np.testing.assert_allclose(scores, model["expected"], atol=1e-5)
    assert metric(text, "factory_batch_size_rows_count") == 3 and metric(text, "factory_batch_size_rows_sum") == 80
    assert metric(text, "factory_rows_scored_total") == 80
    for bound in ("0.05", "0.5", "0.95", "+Inf"):  # cumulative buckets: each returned score counted once
        upper = float(bound)
        assert metric(text, "factory_score_bucket", le=bound) == int((scores <= upper).sum()), bound
    assert metric(text, "factory_score_sum") == pytest.approx(scores.sum(), rel=1e-6)
