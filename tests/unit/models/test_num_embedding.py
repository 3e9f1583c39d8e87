"""Numerical feature embeddings: bins fitted on train only, only continuous columns embedded, checkpoints."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
import torch

from factory.config.schemas import TabularMLPConf
from factory.data.preprocessing import BINS, Preprocessor
from factory.data.spec import InputSpec, TableSchema
from factory.errors import ConfigError
from factory.models import SupervisedModel, TabularMLP
from factory.models.num_embeddings import NUM_EMBEDDINGS, NumericEmbedding

SCHEMA = TableSchema({"x": "numeric", "gappy": "numeric", "flag": "numeric", "city": "categorical"}, "y", "binary")
ADAM = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 0.01}


def _table(n: int = 200, seed: int = 0, shift: float = 0.0) -> pa.Table:
    rng = np.random.default_rng(seed)
    gappy = rng.normal(size=n)
    return pa.table({
        "x": rng.exponential(size=n) + shift,
        "gappy": [None if i % 5 == 0 else float(v) for i, v in enumerate(gappy)],  # -> a missing indicator
        "flag": rng.integers(0, 2, n).astype(float),  # two values: one bin
        "city": rng.choice(["a", "b", "c"], n),  # -> one-hot columns in the float block
        "y": rng.integers(0, 2, n),
    })


def _spec(table: pa.Table | None = None) -> tuple[Preprocessor, InputSpec]:
    pre = Preprocessor.fit(table if table is not None else _table(), SCHEMA)
    return pre, pre.input_spec([100, 100])


def test_schema_and_module_offer_the_same_embeddings():
    declared = next(f for f in TabularMLPConf.__dataclass_fields__.values() if f.name == "num_embedding")
    assert declared.metadata["choices"] == NUM_EMBEDDINGS


def test_bins_are_train_quantiles_saved_in_the_state_in_column_units():
    train = _table()
    pre, spec = _spec(train)
    state = json.loads(json.dumps(pre.state_dict()))
    x = next(c for c in state["numeric"] if c["name"] == "x")
    values = np.asarray(train.column("x"))
    assert len(x["bins"]) == BINS + 1 and x["bins"][0] == values.min() and x["bins"][-1] == values.max()
    assert [c["bins"] for c in state["numeric"] if c["name"] == "flag"] == [[0.0, 1.0]]
    other = Preprocessor.fit(_table(seed=1, shift=100.0), SCHEMA)  # a different table, a different fit
    assert other.state_dict()["numeric"][0]["bins"][0] > 100.0
    # The network gets them in the units it sees: standardized with the train mean and std.
    np.testing.assert_allclose(spec.bin_edges[0], (np.array(x["bins"]) - x["mean"]) / x["std"], rtol=1e-6)
    assert spec.n_continuous == 3 and spec.n_numeric > 3  # indicator and one-hot columns follow
    assert Preprocessor.from_state_dict(state).input_spec([100, 100]) == spec


def test_a_constant_or_missing_column_still_gets_one_bin():
    table = _table().append_column("const", pa.array([7.0] * 200)).append_column("empty", pa.nulls(200, pa.float64()))
    schema = TableSchema({**SCHEMA.features, "const": "numeric", "empty": "numeric"}, "y", "binary")
    numeric = Preprocessor.fit(table, schema).state_dict()["numeric"]
    assert numeric[3]["bins"] == [6.0, 8.0] and numeric[4]["bins"] == [-1.0, 1.0]


def test_state_saved_before_bins_still_loads_and_builds_the_old_network():
    pre, _ = _spec()
    state = pre.state_dict()
    for column in state["numeric"]:
        del column["bins"]
    spec = Preprocessor.from_state_dict(state).input_spec([100, 100])
    assert spec.bin_edges is None
    old_spec = {k: v for k, v in spec.to_dict().items() if k not in ("n_continuous", "bin_edges")}
    net = TabularMLP(InputSpec(**old_spec), hidden_dims=[8])  # a checkpoint's hparams from before the option
    assert net.layers[0].in_features == spec.n_numeric
    with pytest.raises(ConfigError, match="piecewise_linear needs bin edges"):
        TabularMLP(spec, num_embedding="piecewise_linear")


@pytest.mark.parametrize("kind", NUM_EMBEDDINGS)
def test_only_the_continuous_columns_are_embedded(kind):
    pre, spec = _spec()
    x_num, x_cat, _ = pre.transform(_table(seed=2))
    embed = NumericEmbedding(spec, kind, dim=4)
    out = embed(torch.from_numpy(x_num))
    rest = spec.n_numeric - spec.n_continuous
    assert out.shape == (200, spec.n_numeric if kind == "none" else 3 * 4 + rest)
    torch.testing.assert_close(out[:, -rest:], torch.from_numpy(x_num[:, -rest:]))  # indicators, one-hot as they were
    net = TabularMLP(spec, hidden_dims=[8], num_embedding=kind, num_embedding_dim=4)
    assert net(torch.from_numpy(x_num), torch.from_numpy(x_cat)).shape == (200, 1)


def test_unknown_embedding_is_refused_in_the_config_words():
    with pytest.raises(ValueError, match="model.net.num_embedding"):
        TabularMLP(_spec()[1], num_embedding="fourier")


@pytest.mark.parametrize("kind", ["periodic", "piecewise_linear"])
def test_checkpoint_rebuilds_the_embedding_with_its_edges(tmp_path, kind):
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader

    pre, spec = _spec()
    x_num, x_cat, y = (torch.from_numpy(a) for a in pre.transform(_table()))
    net = {"_target_": "factory.models.TabularMLP", "hidden_dims": [8], "num_embedding": kind}
    model = SupervisedModel(net=net, optimizer=ADAM, spec=spec.to_dict())
    trainer = pl.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(model, train_dataloaders=DataLoader([(x_num, x_cat, y)], batch_size=None))
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    loaded = SupervisedModel.load_from_checkpoint(tmp_path / "model.ckpt").eval()
    assert loaded.spec.bin_edges == spec.bin_edges
    torch.testing.assert_close(loaded(x_num, x_cat), model.eval()(x_num, x_cat))


def test_one_extreme_value_leaves_edges_the_network_accepts():
    # Standardized by a huge std, the other values' edges are a float32 rounding apart: still increasing.
    rng = np.random.default_rng(0)
    values = np.append(rng.uniform(0, 1, 999), 1e9)
    table = pa.table({"x": values, "y": rng.integers(0, 2, 1000)})
    pre = Preprocessor.fit(table, TableSchema({"x": "numeric"}, "y", "binary"))
    spec = pre.input_spec([500, 500])
    assert all(np.all(np.diff(np.float32(edges)) > 0) and len(edges) >= 2 for edges in spec.bin_edges)
    net = TabularMLP(spec, hidden_dims=[4], num_embedding="piecewise_linear")
    x_num, x_cat, _ = pre.transform(table)
    assert torch.isfinite(net(torch.as_tensor(x_num), torch.as_tensor(x_cat))).all()
