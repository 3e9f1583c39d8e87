"""What an exported file discloses and how both backends read "": the ONNX metadata holds no category
level, quantile bin edge or mean (only what reading a table needs), and an empty string is a missing
value to the PyTorch preprocessing as to the graph, in training and in scoring, old states included."""
from __future__ import annotations

import json
import re

import numpy as np
import pyarrow as pa
import pytest

from factory.data.preprocessing import MISSING, Preprocessor
from factory.data.spec import TableSchema
from factory.errors import FactoryError
from factory.export import OnnxPredictor, write_onnx
from factory.export.onnx_file import read_metadata
from factory.models import SupervisedModel
from factory.models.predict import predict_table

MLP = {"_target_": "factory.models.TabularMLP", "hidden_dims": [8]}
SGD = {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1}
SCHEMA = TableSchema(features={"amount": "numeric", "merchant": "categorical", "channel": "categorical"},
                     target="y", task="binary")


def _table(rows: int, seed: int) -> pa.Table:
    """Merchant ids (embedded), a one-hot channel; "" and nulls in both."""
    rng = np.random.default_rng(seed)
    merchant = [f"m{rng.integers(0, 40):03d}" for _ in range(rows)]
    channel = rng.choice(["online", "pos", "atm"], rows).tolist()
    for i in range(0, rows, 5):
        merchant[i] = ""
    for i in range(2, rows, 7):
        channel[i] = "" if i % 2 else None
    return pa.table({"amount": rng.lognormal(3, 1, rows), "merchant": merchant, "channel": channel,
                     "y": rng.integers(0, 2, rows)})


def _model(preprocessor: Preprocessor) -> SupervisedModel:
    model = SupervisedModel(net=MLP, optimizer=SGD, spec=preprocessor.input_spec())
    model.configure_model()
    return model.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    train = _table(300, 0)
    preprocessor = Preprocessor.fit(train, SCHEMA, max_onehot=4)
    model = _model(preprocessor)
    path = write_onnx(model, preprocessor, tmp_path_factory.mktemp("meta") / "m.onnx").paths[0]
    return train, preprocessor, model, path


def test_metadata_holds_no_level_bin_edge_or_mean(exported):
    train, preprocessor, _, path = exported
    state = preprocessor.state_dict()
    levels = [level for c in state["categorical"] for level in c["levels"]]
    edges = [edge for c in state["numeric"] for edge in c["bins"]]
    assert len(levels) > 40 and len(edges) > 10  # the fitted state does hold them
    text = "\n".join(json.dumps(v) for v in read_metadata(path).values())
    assert not [level for level in levels if f'"{level}"' in text]
    numbers = {float(x) for x in re.findall(r"-?\d+\.\d+(?:e-?\d+)?", text)}
    amounts = train.column("amount").to_numpy()
    assert not numbers & {*edges, float(amounts.min()), float(amounts.max()), state["numeric"][0]["mean"]}


def test_the_predictor_still_scores_as_pytorch_and_refuses_to_transform(exported):
    _, preprocessor, model, path = exported
    new = _table(120, 1)
    predictor = OnnxPredictor(path)
    got, expected = predictor.predict(new), predict_table(model, preprocessor, new)
    np.testing.assert_allclose(got["score"], expected["score"], atol=1e-5, rtol=0)
    assert list(got.columns) == list(expected.columns)
    np.testing.assert_array_equal(got["target"], expected["target"])
    with pytest.raises(FactoryError, match="for reading tables only"):
        predictor.preprocessor.transform_features(new)


def test_empty_string_is_missing_at_fit_and_at_transform():
    preprocessor = Preprocessor.fit(_table(300, 0), SCHEMA, max_onehot=4)
    assert all("" not in c["levels"] for c in preprocessor.state_dict()["categorical"])
    table = pa.table({"amount": [1.0, 2.0, 3.0], "merchant": ["", None, "m001"], "channel": ["", None, "zzz"]})
    _, x_cat = preprocessor.transform_features(table)
    assert x_cat[:, 0].tolist()[:2] == [MISSING, MISSING] and x_cat[2, 0] > MISSING
    x_num, _ = preprocessor.transform_features(table)
    onehot = x_num[:, 1:]  # amount first, no indicator (no missing amounts in training)
    assert onehot[0].tolist() == onehot[1].tolist() and onehot[0, MISSING] == 1.0


def test_an_old_state_with_an_empty_level_loads_and_both_backends_read_it_as_missing(tmp_path):
    """Fitted before "" was missing: "" was a level. It loads; "" now encodes as missing in both backends."""
    train = _table(300, 0)
    state = Preprocessor.fit(train, SCHEMA, max_onehot=4).state_dict()
    for cat in state["categorical"]:
        cat["levels"] = sorted([*cat["levels"], ""])
    old = Preprocessor.from_state_dict(json.loads(json.dumps(state)))
    model = _model(old)
    new = _table(80, 2)
    expected = predict_table(model, old, new)
    got = OnnxPredictor(write_onnx(model, old, tmp_path / "old.onnx").paths[0]).predict(new)
    np.testing.assert_allclose(got["score"], expected["score"], atol=1e-5, rtol=0)
    blank = pa.table({"amount": [1.0, 1.0], "merchant": ["", None], "channel": ["", None]})
    assert old.transform_features(blank)[1][:, 0].tolist() == [MISSING, MISSING]
