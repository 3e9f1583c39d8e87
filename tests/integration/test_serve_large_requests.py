"""A request that fills a batch alone skips the batching queue (one model call, scored directly),
with the same scores and metrics; ``factory_score`` buckets count every returned score."""
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
    rows = loaded.datamodule().split_table("test").slice(0, 15).to_pandas()[loaded.features].to_dict("records")
    return {"root": root, "registry": reg, "rows": rows,
            "expected": loaded.predict(pd.DataFrame(rows))["score"].to_numpy()}


def test_a_request_of_max_batch_size_rows_skips_the_queue(model):
    from factory.serving.app import create_app
    from factory.serving.model_holder import ModelHolder

    cfg = factory.compose("serve", ["log.enabled=false", "batching.enabled=true", "batching.max_batch_size=4",
                                    f"serving_dir={model['root'] / 'serving'}"], check=False)
    holder = ModelHolder(f"{NAME}@1", model["registry"], "onnx", follow=False)
    app = create_app(cfg, holder)
    app.state.direct._timed = (holder.current, 1.0)  # as a slow model: a lone small request goes through the queue
    batcher = app.state.scorer.batcher
    rows = model["rows"]

    async def calls():
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as c:
            answers = [await c.post("/predict", json={"rows": rows[a:b]}) for a, b in ((0, 2), (2, 6), (6, 15))]
            return answers, (await c.get("/metrics")).text

    try:
        answers, text = asyncio.run(calls())
    finally:
        app.state.scorer.close()
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert batcher.batches == 1 and batcher.rows == 2  # the 4- and 9-row requests were scored directly
    scores = np.array([p["score"] for a in answers for p in a.json()["predictions"]])
    np.testing.assert_allclose(scores, model["expected"], atol=1e-5)
    assert metric(text, "factory_batch_size_rows_count") == 3 and metric(text, "factory_batch_size_rows_sum") == 15
    assert metric(text, "factory_rows_scored_total") == 15
    for bound in ("0.05", "0.5", "0.95", "+Inf"):  # cumulative buckets: each returned score counted once
        upper = float(bound)
        assert metric(text, "factory_score_bucket", le=bound) == int((scores <= upper).sum()), bound
    assert metric(text, "factory_score_sum") == pytest.approx(scores.sum(), rel=1e-6)
