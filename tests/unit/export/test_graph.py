"""The exported graph against the PyTorch path on small hand-made tables: each encoding's corner (no
numeric column, only embedded categoricals, non-string categoricals, string classes, regression), a
batch size other than the one traced, and the fast path's input checks. Untrained networks: parity
is about the encoding and the graph, not the fit."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from factory.data.preprocessing import Preprocessor
from factory.data.spec import TableSchema
from factory.errors import DataError
from factory.export import OnnxPredictor, write_onnx
from factory.models import SupervisedModel
from factory.models.predict import predict_table

SGD = {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1}
TOLERANCE = 1e-5


def _table(rows: int = 60, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    amount = rng.normal(100, 30, rows)
    amount[::7] = np.nan
    return pa.table({
        "amount": amount,
        "age": rng.integers(18, 90, rows),
        "city": pa.array(rng.choice(["north", "south", "east"], rows).tolist()),
        "zip": rng.choice([1001, 1002, 1003, 1004, 1005], rows),  # integers declared categorical
        "shop": pa.array([None if i % 9 == 0 else f"s{i % 5}" for i in range(rows)]),
        "y": rng.choice(["bad", "good", "ugly"], rows),
        "value": rng.normal(size=rows),
    })


def _model(features: dict, target: str, task: str, net: dict, max_onehot: int = 4, positive_label=None):
    schema = TableSchema(features=features, target=target, task=task, positive_label=positive_label)
    preprocessor = Preprocessor.fit(_table(), schema, max_onehot=max_onehot)
    model = SupervisedModel(net=net, optimizer=SGD, spec=preprocessor.input_spec())
    model.configure_model()
    return model.eval(), preprocessor


MLP = {"_target_": "factory.models.TabularMLP", "hidden_dims": [8]}
CASES = {
    "multiclass strings, one-hot and embedded": (
        {"amount": "numeric", "age": "numeric", "city": "categorical", "zip": "categorical",
         "shop": "categorical"}, "y", "multiclass", MLP, 4),
    "only embedded categoricals": ({"city": "categorical", "shop": "categorical"}, "y", "binary", MLP, 0, "good"),
    "only numerics, regression": ({"amount": "numeric", "age": "numeric"}, "value", "regression", MLP, 4),
    "wide residual MLP": ({"amount": "numeric", "city": "categorical", "shop": "categorical"}, "y", "binary",
                          {"_target_": "factory.models.WideMLP", "width": 16, "depth": 2}, 2, "good"),
    "tabm-mini": ({"amount": "numeric", "city": "categorical", "shop": "categorical"}, "y", "multiclass",
                  {"_target_": "factory.models.TabM", "k": 3, "d_block": 8, "arch_type": "tabm-mini"}, 2),
}


@pytest.mark.parametrize("case", list(CASES))
def test_graph_scores_as_pytorch_on_new_rows(case, tmp_path):
    model, preprocessor = _model(*CASES[case])
    path = write_onnx(model, preprocessor, tmp_path / "m.onnx").paths[0]
    predictor = OnnxPredictor(path, intra_op_threads=1)
    new = _table(rows=37, seed=1)  # another batch size than traced; unseen zips and shops appear below
    new = new.set_column(new.column_names.index("shop"), "shop",
                         pa.array(["s-new" if i % 4 == 0 else (None if i % 5 == 0 else "s1") for i in range(37)]))
    expected = predict_table(model, preprocessor, new)
    got = predictor.predict(new)
    assert list(got.columns) == list(expected.columns) and got.dtypes.to_dict() == expected.dtypes.to_dict()
    scores = [c for c in expected.columns if c == "score" or c.startswith("prob_") or expected[c].dtype == "float32"]
    for column in expected.columns:
        if column in scores:
            np.testing.assert_allclose(got[column], expected[column], atol=TOLERANCE, rtol=0)
        else:
            assert got[column].equals(expected[column]), column


def test_non_string_categoricals_are_matched_as_at_training(tmp_path):
    model, preprocessor = _model(*CASES["multiclass strings, one-hot and embedded"])
    predictor = OnnxPredictor(write_onnx(model, preprocessor, tmp_path / "m.onnx").paths[0])
    table = _table(rows=8, seed=2)
    columns = {name: table.column(name).to_numpy(zero_copy_only=False) for name in predictor.features}
    assert columns["zip"].dtype.kind == "i"  # integers in, converted as Arrow did when fitting
    as_text = dict(columns, zip=columns["zip"].astype(str), shop=np.where(columns["shop"] == None, "", columns["shop"]))  # noqa: E711
    np.testing.assert_allclose(predictor.predict_columns(columns), predictor.predict_columns(as_text), rtol=0, atol=0)
    np.testing.assert_allclose(predictor.predict_columns(columns), predict_table(model, preprocessor, table)
                               [[f"prob_{c}" for c in preprocessor.class_labels]].to_numpy(), atol=TOLERANCE, rtol=0)


def test_fast_path_refuses_infinity_and_2d_columns(tmp_path):
    model, preprocessor = _model(*CASES["only numerics, regression"])
    predictor = OnnxPredictor(write_onnx(model, preprocessor, tmp_path / "m.onnx").paths[0])
    assert predictor.task == "regression" and predictor.class_labels == []
    assert predictor.predict_columns({"amount": [1.0, None], "age": [30, 40]}).shape == (2,)  # None is missing
    with pytest.raises(DataError, match="'amount' holds an infinite value at row 1"):
        predictor.predict_columns({"amount": np.array([1.0, np.inf]), "age": np.array([30.0, 40.0])})
    with pytest.raises(DataError, match="'age' must be 1-D"):
        predictor.predict_columns({"amount": np.zeros(2), "age": np.zeros((2, 1))})


def test_a_file_that_is_not_an_export_is_one_line(tmp_path):
    from factory.errors import FactoryError

    with pytest.raises(FactoryError, match="no such ONNX file: .*absent.onnx"):
        OnnxPredictor(tmp_path / "absent.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(FactoryError, match="junk.onnx is not a loadable ONNX model") as info:
        OnnxPredictor(tmp_path / "junk.onnx")
    assert len(str(info.value).splitlines()) == 1
    with pytest.raises(FactoryError, match="<bytes> is not a loadable ONNX model"):
        OnnxPredictor(b"junk")
