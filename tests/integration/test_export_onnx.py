"""ONNX export on real tiny runs: the file on raw columns scores as the PyTorch path does, says what it is,
quantizes, needs only onnxruntime, and refuses what it cannot export without leaving a file.

Five runs are trained once for the module (fraud 3000 rows, diagnosis, digits, a TabM, a regression on a
300-row CSV), each exported once; ~40 s on 2 cores.
"""
from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch

from factory import compose, train
from factory.errors import DataError, FactoryError
from factory.export import OnnxPredictor, export_onnx, quantized_path, read_metadata
from factory.models.tabular_mlp import TabularMLP
from tests.integration.helpers import FAST_FRAUD

FRAUD = [*FAST_FRAUD, "baseline=null"]
RUNS = {
    "fraud": FRAUD,
    "diagnosis": ["experiment=diagnosis", "logger=csv", "trainer.max_epochs=1", "baseline=null"],
    "digits": ["experiment=digits", "logger=csv", "trainer.max_epochs=1", "baseline=null"],
    "tabm": [*FRAUD, "model=tabm", "model.net.k=4", "model.net.d_block=32", "task_name=tabm"],
    "regression": ["data=files", "data.source.target=y", "data.source.task=regression", "task_name=regression",
                   "logger=csv", "trainer.max_epochs=2"],
}
FP32_TOLERANCE = 1e-5


def _regression_csv(root: Path) -> Path:
    """300 rows with a categorical column and missing numerics."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x1": rng.normal(size=300), "x2": rng.normal(size=300),
                          "region": rng.choice(["north", "south", "east"], 300)})
    frame["y"] = 2 * frame.x1 - frame.x2 + (frame.region == "north") + rng.normal(scale=0.3, size=300)
    frame.loc[::17, "x2"] = np.nan
    frame.to_csv(root / "table.csv", index=False)
    return root / "table.csv"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """name -> (run directory, test split as Arrow, PyTorch model, preprocessor)."""
    from omegaconf import OmegaConf

    from factory.models import SupervisedModel
    from factory.training.restore import load_factory_checkpoint, restore_datamodule

    root = tmp_path_factory.mktemp("export-runs")
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACTORY_ROOT", str(root))
        for name, overrides in RUNS.items():
            if name == "regression":
                overrides = [*overrides, f"data.source.path={_regression_csv(root)}"]
            result = train(compose("train", overrides))
            assert result.status == "completed"
            run_dir = Path(result.run_dir)
            checkpoint = run_dir / "checkpoints" / "best.ckpt"
            datamodule = restore_datamodule(OmegaConf.load(run_dir / "config.yaml").data,
                                            load_factory_checkpoint(checkpoint))
            model = SupervisedModel.load_from_checkpoint(checkpoint, map_location="cpu").eval()
            out[name] = (run_dir, datamodule.split_table("test"), model, datamodule.preprocessor)
    return out


@pytest.fixture(scope="module")
def exported(runs, tmp_path_factory) -> dict:
    """name -> ExportResult (fp32 and int8) written from the run directory."""
    where = tmp_path_factory.mktemp("exported")
    return {name: export_onnx(run_dir, where / f"{name}.onnx", metadata={"name": name, "version": 3}, quantize=True)
            for name, (run_dir, *_) in runs.items()}


def _torch(runs, name, table):
    from factory.models.predict import predict_table

    _, _, model, preprocessor = runs[name]
    return predict_table(model, preprocessor, table)


def _score_columns(frame: pd.DataFrame) -> list[str]:
    """The model's float32 outputs: score, prob_<label>, a regression's prediction."""
    return [c for c in frame.columns if c == "score" or c.startswith("prob_") or frame[c].dtype == "float32"]


def _max_diff(got: pd.DataFrame, expected: pd.DataFrame) -> float:
    return max(float(np.abs(got[c].to_numpy() - expected[c].to_numpy()).max()) for c in _score_columns(expected))


def _check_same_frame(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(got.columns) == list(expected.columns)
    assert got.dtypes.to_dict() == expected.dtypes.to_dict()
    assert got.index.equals(expected.index)
    scores = _score_columns(expected)
    pd.testing.assert_frame_equal(got.drop(columns=scores), expected.drop(columns=scores))
    assert _max_diff(got, expected) <= FP32_TOLERANCE


@pytest.mark.parametrize("name", list(RUNS))
def test_onnx_scores_the_test_split_as_pytorch_does(runs, exported, name):
    _, test, _, _ = runs[name]
    predictor = OnnxPredictor(exported[name].paths[0])
    expected = _torch(runs, name, test)
    _check_same_frame(predictor.predict(test), expected)
    # The fast path gives the same probabilities from bare arrays.
    columns = predictor.preprocessor.raw_features(test)
    probabilities = predictor.predict_columns(columns)
    if name == "digits":
        assert probabilities.shape == (test.num_rows, 10)
        np.testing.assert_allclose(probabilities[:, 3], expected["prob_3"], atol=FP32_TOLERANCE, rtol=0)
    else:
        assert probabilities.shape == (test.num_rows,)
        np.testing.assert_allclose(probabilities, expected["score"], atol=FP32_TOLERANCE, rtol=0)


def test_missing_and_unseen_values_score_as_pytorch_does(runs, exported):
    _, test, _, preprocessor = runs["fraud"]
    state = preprocessor.state_dict()
    onehot = {c["name"]: c["onehot"] for c in state["categorical"]}
    assert onehot["channel"] and not onehot["merchant_id"]  # both encodings are exercised
    assert "distance_from_home_km" in state["indicators"] and "amount" not in state["indicators"]
    frame = test.to_pandas().iloc[:40].copy()
    frame.index = range(100, 140)  # a caller's index is kept
    original = frame.copy()
    frame.loc[100:109, "amount"] = np.nan  # imputed, no indicator
    frame.loc[105:114, "distance_from_home_km"] = np.nan  # imputed, with its indicator
    frame.loc[110:119, "merchant_category"] = None  # one-hot: the missing level
    frame.loc[115:124, "channel"] = "teleport"  # one-hot: the unseen level
    frame.loc[120:129, "merchant_id"] = None  # embedded: the missing code
    frame.loc[125:134, "merchant_id"] = "m-never-seen"  # embedded: the unseen code
    frame = frame.drop(columns=["is_fraud"])  # scoring new rows: no target
    predictor = OnnxPredictor(exported["fraud"].paths[0])
    got, expected = predictor.predict(frame), _torch(runs, "fraud", frame)
    _check_same_frame(got, expected)
    assert "target" not in got.columns and "label" not in got.columns
    changed = got["score"].to_numpy() != predictor.predict(original)["score"].to_numpy()
    # The edits reached the model (a row whose value was missing already may score the same), nothing else moved.
    assert changed[:35].sum() >= 30 and not changed[35:].any()
    # Bare arrays: NaN/None for a missing number, "" or None for a missing category, as the tables did.
    columns = {name: frame[name].to_numpy() for name in predictor.features}
    category = frame["merchant_category"]
    columns["merchant_category"] = np.where(category.isna(), "", category).astype(str)
    np.testing.assert_allclose(predictor.predict_columns(columns), expected["score"], atol=FP32_TOLERANCE, rtol=0)


def test_metadata_says_what_the_file_is(runs, exported):
    run_dir, _, _, preprocessor = runs["fraud"]
    result = exported["fraud"]
    meta = read_metadata(result.paths[0])
    record = json.loads((run_dir / "run.json").read_text())
    assert meta["name"] == "fraud" and meta["version"] == 3 and meta["run_id"] == run_dir.name
    assert meta["task"] == "binary" and meta["target"] == "is_fraud" and meta["class_labels"] == [0, 1]
    assert meta["features"] == list(preprocessor.schema.features)
    assert meta["kinds"]["merchant_id"] == "categorical" and meta["kinds"]["amount"] == "numeric"
    assert meta["data_fingerprint"] == record["data"]["fingerprint"] and len(meta["data_fingerprint"]) >= 16
    assert meta["factory_version"] == version("factory")
    assert "NaN" in meta["input_convention"] and '""' in meta["input_convention"]
    assert meta == result.metadata
    predictor = OnnxPredictor(result.paths[0])
    assert (predictor.features, predictor.kinds, predictor.task) == (meta["features"], meta["kinds"], "binary")
    digits = OnnxPredictor(exported["digits"].paths[0])
    assert digits.class_labels == list(range(10)) and digits.task == "multiclass" and len(digits.features) == 64
    # The graph: one input per raw column, strings for categoricals, a dynamic batch.
    inputs = {i.name: i.type for i in predictor.session.get_inputs()}
    assert list(inputs) == meta["features"]
    assert inputs["merchant_id"] == "tensor(string)" and inputs["amount"] == "tensor(double)"
    assert predictor.session.get_inputs()[0].shape == ["N"] and predictor.output == "probabilities"
    # Strict JSON values only.
    import onnx

    for prop in onnx.load(str(result.paths[0])).metadata_props:
        json.loads(prop.value, parse_constant=lambda c: pytest.fail(f"{prop.key} holds {c}"))


def test_int8_copy_loads_and_stays_close(runs, exported, capsys):
    diffs = {}
    for name in ("fraud", "digits", "tabm"):
        fp32, int8 = exported[name].paths
        assert int8 == quantized_path(fp32) and int8.name == f"{name}.int8.onnx"
        _, test, _, _ = runs[name]
        quantized = OnnxPredictor(int8)
        assert quantized.metadata["quantization"].startswith("dynamic int8")
        diffs[name] = _max_diff(quantized.predict(test), _torch(runs, name, test))
    with capsys.disabled():
        print(f"\nint8 max |probability difference| vs PyTorch on the test split: {diffs}")
    assert all(0 < d < 0.1 for d in diffs.values()), diffs


def test_scoring_needs_only_onnxruntime(runs, exported, tmp_path):
    """An edge device: onnxruntime and numpy, no factory, no torch."""
    path = exported["fraud"].paths[0]
    code = f"""
import json, sys
import numpy as np, onnxruntime as ort
session = ort.InferenceSession({str(path)!r})
feeds = {{"amount": np.array([12.5, np.nan]), "merchant_category": np.array(["grocery", ""]),
         "hour": np.array([3.0, 14.0]), "day_of_week": np.array([1.0, 5.0]),
         "distance_from_home_km": np.array([2.0, np.nan]), "card_age_days": np.array([40.0, 900.0]),
         "tx_velocity_24h": np.array([1.0, 7.0]), "is_foreign": np.array([0.0, 1.0]),
         "channel": np.array(["online", "teleport"]), "merchant_id": np.array(["m0001", ""])}}
(p,) = session.run(["probabilities"], feeds)
assert "torch" not in sys.modules and "factory" not in sys.modules
print(json.dumps(p.tolist()))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    frame = pd.DataFrame({"amount": [12.5, None], "merchant_category": ["grocery", None], "hour": [3, 14],
                          "day_of_week": [1, 5], "distance_from_home_km": [2.0, None], "card_age_days": [40, 900],
                          "tx_velocity_24h": [1, 7], "is_foreign": [0, 1], "channel": ["online", "teleport"],
                          "merchant_id": ["m0001", None]})
    np.testing.assert_allclose(json.loads(done.stdout), _torch(runs, "fraud", frame)["score"],
                               atol=FP32_TOLERANCE, rtol=0)


def test_bad_columns_are_named(exported):
    predictor = OnnxPredictor(exported["fraud"].paths[0])
    columns = {name: np.zeros(2) if kind == "numeric" else np.array(["a", "b"])
               for name, kind in predictor.kinds.items()}
    assert predictor.predict_columns(columns).shape == (2,)
    with pytest.raises(DataError, match="missing feature column 'amount'"):
        predictor.predict_columns({k: v for k, v in columns.items() if k != "amount"})
    with pytest.raises(DataError, match="'hour' must hold numbers"):
        predictor.predict_columns({**columns, "hour": np.array(["abc", "1"])})
    with pytest.raises(DataError, match="'channel' has 3 values; the others have 2"):
        predictor.predict_columns({**columns, "channel": np.array(["a", "b", "c"])})
    with pytest.raises(DataError, match="'amount'"):  # as predict_table: the preprocessing's own message
        predictor.predict(pa.table({k: v for k, v in columns.items() if k != "amount"}))


def test_sharded_checkpoint_is_refused_until_consolidated(runs, tmp_path):
    """A directory shaped as DeepSpeed writes one (``latest`` + tag folder of shards): training a real ZeRO run
    costs ~60 s here (tests/integration/test_deepspeed.py), and the refusal reads only the shape."""
    sharded = tmp_path / "checkpoints" / "best.ckpt"
    (sharded / "global_step4").mkdir(parents=True)
    (sharded / "latest").write_text("global_step4")
    torch.save({"module": {}}, sharded / "global_step4" / "mp_rank_00_model_states.pt")
    target = tmp_path / "out" / "model.onnx"
    with pytest.raises(FactoryError) as info:
        export_onnx(sharded, target, quantize=True)
    assert str(info.value) == (f"{sharded} is a sharded DeepSpeed checkpoint; consolidate it first: "
                               f"python scripts/export.py {sharded}")
    assert not target.parent.exists() or not any(target.parent.iterdir())
    # Once scripts/export.py consolidated it (the file beside it, newer than the shards), it exports.
    consolidated = tmp_path / "checkpoints" / "best-fp32.ckpt"
    consolidated.write_bytes((runs["diagnosis"][0] / "checkpoints" / "best.ckpt").read_bytes())
    assert export_onnx(sharded, target).paths == [target] and read_metadata(target)["task"] == "binary"


class ExoticNet(TabularMLP):
    """The fraud network plus an op torch cannot export to ONNX (``erfcx``), contributing nothing."""

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        return super().forward(x_num, x_cat) + 0 * torch.special.erfcx(x_num[:, :1])


def test_unexportable_network_is_one_line_and_leaves_no_file(runs, tmp_path, capfd):
    run_dir = runs["fraud"][0]
    checkpoint = torch.load(run_dir / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    checkpoint["hyper_parameters"]["net"]["_target_"] = f"{__name__}.{ExoticNet.__qualname__}"
    exotic = tmp_path / "exotic.ckpt"
    torch.save(checkpoint, exotic)
    target = tmp_path / "out" / "model.onnx"
    with pytest.raises(FactoryError) as info:
        export_onnx(exotic, target, quantize=True)
    message = str(info.value)
    assert len(message.splitlines()) == 1
    assert message.startswith(f"cannot export {exotic} to ONNX: ") and "'aten::special_erfcx'" in message
    assert list(target.parent.iterdir()) == []  # no .onnx, no .int8.onnx, no temp file
    with pytest.raises(FactoryError, match="no such checkpoint"):
        export_onnx(tmp_path / "absent.ckpt", target)
