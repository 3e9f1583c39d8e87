"""Streamed Parquet (data=files_stream): sharding, the statistics pass, pushdown, splits and errors."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from factory.data.parquet_stream import ParquetStream, fit_statistics, split_codes
from factory.data.preprocessing import Preprocessor
from factory.data.sources import FileSource
from factory.data.streaming import StreamBatches, StreamingDataModule, StreamLoader
from factory.errors import DataError


def _table(n: int, start: int = 0, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(3, 1, n)
    return pa.table({
        "id": np.arange(start, start + n, dtype=np.int64),
        "amount": pa.array(amount, mask=rng.random(n) < 0.1),
        "shop": pa.array(rng.choice(["a", "b", "c", "d"], n), mask=rng.random(n) < 0.05),
        "note": rng.choice(["x", "y"], n),  # never asked for: must not be read
        "y": (rng.random(n) < 0.3).astype(np.int64),
    })


@pytest.fixture
def parquet_dir(tmp_path):
    """Three files of 300 rows in row groups of 100 (9 units), Spark's layout: part files and _SUCCESS."""
    for i in range(3):
        pq.write_table(_table(300, 300 * i, seed=i), tmp_path / f"part-{i:05d}.parquet", row_group_size=100)
    (tmp_path / "_SUCCESS").touch()
    return tmp_path


def _source(path, **kw) -> FileSource:
    return FileSource(str(path), target="y", features=kw.pop("features", ["id", "amount", "shop"]), **kw)


def _ids(dm: StreamingDataModule, batches) -> list[int]:
    """The ``id`` of each row in encoded batches: column 0 is the standardized id."""
    mean, std = (dm.preprocessor.state_dict()["numeric"][0][k] for k in ("mean", "std"))
    return [int(round(v)) for x, _, _ in batches for v in (x[:, 0].double().numpy() * std + mean)]


def _readers(dm, split, world, workers, shuffle=False, drop_last=False, epoch=0):
    """Each rank's batches as its loader (with ``workers`` worker processes, which hand over chunks) yields them."""
    out = []
    for rank in range(world):
        data = StreamBatches(dm.stream, dm.preprocessor, dm._unit_rows, split, 32, dm.split_seed, dm.val_fraction,
                             dm.test_fraction, rank=rank, world_size=world, workers=workers, shuffle=shuffle,
                             drop_last=drop_last)
        batches = list(StreamLoader(data, num_workers=workers, start_epoch=epoch))
        assert len(batches) == len(data)  # what Lightning is told is what it gets
        out.append(batches)
    return out


@pytest.mark.parametrize("world,workers", [(1, 0), (2, 0), (2, 2), (3, 1)])
def test_every_row_of_a_split_is_read_exactly_once_across_ranks_and_workers(parquet_dir, world, workers):
    dm = StreamingDataModule(_source(parquet_dir), batch_size=32)
    dm.setup("fit")
    expected = sorted(dm.split_table("val").column("id").to_pylist())
    seen = [_ids(dm, batches) for batches in _readers(dm, "val", world, workers)]
    assert sorted(i for ids in seen for i in ids) == expected
    for a in range(world):  # no overlap between ranks (nor, with the total exact, between workers)
        for b in range(a + 1, world):
            assert not set(seen[a]) & set(seen[b])


def test_train_epochs_take_equal_steps_on_every_rank_and_reshuffle(parquet_dir):
    dm = StreamingDataModule(_source(parquet_dir), batch_size=32)
    dm.setup("fit")
    train = set(dm.split_table("train").column("id").to_pylist())
    epochs = []
    for epoch in (0, 1):
        ranks = _readers(dm, "train", 2, 1, shuffle=True, drop_last=True, epoch=epoch)
        assert len(ranks[0]) == len(ranks[1]) > 0 and all(len(b[2]) == 32 for r in ranks for b in r)
        ids = [_ids(dm, r) for r in ranks]
        assert not set(ids[0]) & set(ids[1]) and set(ids[0]) | set(ids[1]) <= train
        epochs.append(ids[0])
    assert epochs[0] != epochs[1]


def test_streamed_statistics_equal_an_in_memory_fit_of_the_train_split(parquet_dir):
    dm = StreamingDataModule(_source(parquet_dir, features=None), batch_size=32, batch_rows=64)
    dm.setup("fit")
    fitted = Preprocessor.fit(dm.split_table("train"), dm.schema).state_dict()
    streamed = dm.preprocessor.state_dict()
    assert streamed["indicators"] == fitted["indicators"] == ["amount"]
    assert streamed["categorical"] == fitted["categorical"] and streamed["class_labels"] == fitted["class_labels"]
    for got, want in zip(streamed["numeric"], fitted["numeric"]):
        assert got["name"] == want["name"]
        assert got["mean"] == pytest.approx(want["mean"], rel=1e-12)
        assert got["std"] == pytest.approx(want["std"], rel=1e-12)
        np.testing.assert_allclose(got["bins"], want["bins"], rtol=1e-12)  # every row sampled: exact
    y = dm.split_table("train").column("y").to_numpy()
    assert dm.input_spec.class_counts == np.bincount(y).tolist()
    assert dm.input_spec.to_dict() == Preprocessor.from_state_dict(fitted).input_spec(np.bincount(y).tolist()).to_dict()


def test_quantile_bins_from_a_sample_are_within_two_percentiles(tmp_path):
    """sample_rows below the rows: each edge's quantile in the whole train column is within 0.02 of its target."""
    pq.write_table(_table(20000), tmp_path / "a.parquet", row_group_size=5000)
    dm = StreamingDataModule(_source(tmp_path), batch_size=256, sample_rows=4000)
    dm.setup("fit")
    edges = np.array(dm.preprocessor.state_dict()["numeric"][1]["bins"])  # amount
    values = dm.split_table("train").column("amount").drop_null().to_numpy()
    positions = np.searchsorted(np.sort(values), edges[1:-1]) / len(values)
    targets = np.linspace(0, 1, len(edges))[1:-1]
    assert np.abs(positions - targets).max() < 0.02


def test_projection_reads_only_the_features_target_and_filter_columns(parquet_dir):
    stream = ParquetStream(_source(parquet_dir, features=["amount", "shop"], filter=[["id", ">=", 0]]))
    assert stream.columns == ["amount", "shop", "y", "id"]
    table, _ = next(stream.read(stream.units[0]))
    assert table.column_names == ["amount", "shop", "y", "id"]  # "note" never decoded


def test_filter_skips_row_groups_by_their_statistics_and_keeps_only_matching_rows(parquet_dir):
    dm = StreamingDataModule(_source(parquet_dir, filter=[["id", ">=", 650]]), batch_size=16)
    dm.setup("fit")
    assert [u.name for u in dm.stream.units] == ["part-00002.parquet"] * 3 and dm.stream.units[0].row_group == 0
    assert sum(dm.split_sizes.values()) == 250
    assert min(dm.split_table("train").column("id").to_pylist()) >= 650
    assert dm.split_table("train").column_names == ["id", "amount", "shop", "y"]


def test_hive_partitions_are_columns_and_a_filter_on_them_prunes_files(tmp_path):
    for country, start in (("DE", 0), ("FR", 1000)):
        (tmp_path / f"country={country}").mkdir()
        pq.write_table(_table(200, start), tmp_path / f"country={country}" / "part-0.parquet")
    stream = ParquetStream(_source(tmp_path, features=["amount", "country"], filter=[["country", "=", "FR"]]))
    assert {u.name for u in stream.units} == {"country=FR/part-0.parquet"}
    table, _ = next(stream.read(stream.units[0]))
    assert set(table.column("country").to_pylist()) == {"FR"} and stream.schema.features["country"] == "categorical"


def test_split_is_a_hash_of_the_row_and_does_not_depend_on_batching(parquet_dir):
    codes = {}
    for batch_rows in (7, 100):
        stream = ParquetStream(_source(parquet_dir), batch_rows)
        codes[batch_rows] = np.concatenate([split_codes(u, rows, 42, 0.15, 0.15) for u in stream.units
                                            for _, rows in stream.read(u)])
    np.testing.assert_array_equal(codes[7], codes[100])
    shares = np.bincount(codes[7], minlength=3) / len(codes[7])
    assert abs(shares[1] - 0.15) < 0.05 and abs(shares[2] - 0.15) < 0.05


def test_the_checkpoint_state_restores_into_the_in_memory_readers(parquet_dir):
    dm = StreamingDataModule(_source(parquet_dir), batch_size=32)
    dm.setup("fit")
    again = StreamingDataModule(_source(parquet_dir), batch_size=32)
    again.load_state_dict(dm.state_dict())
    again.setup("test")
    assert again.preprocessor.state_dict() == dm.preprocessor.state_dict()
    x, c, y = next(iter(again.test_dataloader()))
    assert x.dtype == torch.float32 and c.dtype == torch.int64 and y.dtype == torch.int64


def _bad(tmp_path, table) -> str:
    pq.write_table(_table(50), tmp_path / "part-0.parquet")
    pq.write_table(table, tmp_path / "part-1.parquet")
    with pytest.raises(DataError) as info:
        fit_statistics(ParquetStream(_source(tmp_path)), 42, 0.15, 0.15)
    assert len(str(info.value).splitlines()) == 1
    return str(info.value)


def test_an_infinite_value_is_named_by_file_and_row(tmp_path):
    table = _table(50)
    amount = table.column("amount").to_numpy(zero_copy_only=False).copy()
    amount[17] = np.inf
    message = _bad(tmp_path, table.set_column(1, "amount", pa.array(amount)))
    assert message == "part-1.parquet: row 17: numeric feature 'amount' is inf"


def test_a_missing_target_is_named_by_file_and_row(tmp_path):
    y = pa.array([0] * 9 + [None] + [1] * 40, pa.int64())
    assert _bad(tmp_path, _table(50).set_column(4, "y", y)).startswith("part-1.parquet: row 9: target 'y' is missing")


def test_a_binary_target_other_than_0_1_past_the_schema_sample_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr("factory.data.parquet_stream.SCHEMA_SAMPLE_ROWS", 50)  # the first file only
    (tmp_path / "d").mkdir()
    pq.write_table(_table(50), tmp_path / "d" / "part-0.parquet")
    table = _table(50)
    pq.write_table(table.set_column(4, "y", pa.array([0] * 30 + [2] + [1] * 19, pa.int64())),
                   tmp_path / "d" / "part-1.parquet")
    source = FileSource(str(tmp_path / "d"), target="y", features=["amount"])
    with pytest.raises(DataError, match=r"^part-1.parquet: row 30: target 'y' is 2.0"):
        fit_statistics(ParquetStream(source), 42, 0.15, 0.15)


@pytest.mark.parametrize("setup,message", [
    (lambda d: (d / "a.csv").write_text("x,y\n1,0\n"), "streaming reads Parquet"),
    (lambda d: None, "holds no data files"),
])
def test_bad_directories_are_one_line(tmp_path, setup, message):
    setup(tmp_path)
    with pytest.raises(DataError, match=message):
        ParquetStream(FileSource(str(tmp_path), target="y"))


def test_a_bad_filter_or_path_is_one_line(parquet_dir, tmp_path):
    with pytest.raises(DataError, match=r"data.source.filter condition \['amt', '>', 1\]: unknown column 'amt'"):
        ParquetStream(_source(parquet_dir, filter=[["amt", ">", 1]]))
    with pytest.raises(DataError, match="no such file or directory"):
        ParquetStream(_source(tmp_path / "nope"))
    with pytest.raises(DataError, match=r"^unknown feature column 'nope'; available columns: id, amount, shop"):
        ParquetStream(_source(parquet_dir, features=["amount", "nope"]))
    with pytest.raises(DataError, match="no train rows"):
        StreamingDataModule(_source(parquet_dir, filter=[["id", "<", 0]])).setup("fit")


def test_a_delta_table_streams_its_latest_version_only(tmp_path):
    deltalake = pytest.importorskip("deltalake")
    path = tmp_path / "delta"
    deltalake.write_deltalake(path, _table(300), partition_by=["shop"])
    deltalake.write_deltalake(path, _table(200, start=1000), partition_by=["shop"], mode="overwrite")
    assert len(list(path.rglob("*.parquet"))) > len(deltalake.DeltaTable(path).file_uris())  # old files remain
    dm = StreamingDataModule(_source(path, features=["id", "amount", "shop"]), batch_size=16)
    dm.setup("fit")
    ids = sorted(i for name in ("train", "val", "test") for i in dm.split_table(name).column("id").to_pylist())
    assert ids == list(range(1000, 1200))  # the overwritten version's rows (0-299) are not read
    shops = set(dm.split_table("train").column("shop").to_pylist())
    assert None in shops and "__HIVE_DEFAULT_PARTITION__" not in shops  # a null partition reads as null
    with pytest.raises(DataError, match="is a Delta table: train on it with data=files_stream"):
        FileSource(str(path), target="y").load()


@pytest.mark.parametrize("workers", [0, 1])
def test_a_resumed_epoch_continues_with_the_batches_it_missed(parquet_dir, workers):
    dm = StreamingDataModule(_source(parquet_dir), batch_size=16)
    dm.setup("fit")

    def batches(start_batch):
        data = StreamBatches(dm.stream, dm.preprocessor, dm._unit_rows, "train", 16, dm.split_seed, dm.val_fraction,
                             dm.test_fraction, workers=workers, shuffle=True, drop_last=True)
        return _ids(dm, StreamLoader(data, num_workers=workers, start_epoch=1, start_batch=start_batch))

    whole = batches(0)
    assert batches(5) == whole[5 * 16:] and len(whole) > 5 * 16


def test_the_statistics_pass_is_kept_by_fingerprint_and_shared(parquet_dir, tmp_path_factory, monkeypatch):
    import factory.data.parquet_stream as parquet_stream

    passes = []
    real = parquet_stream.fit_statistics
    monkeypatch.setattr(parquet_stream, "fit_statistics", lambda *a: passes.append(1) or real(*a))
    cache = str(tmp_path_factory.mktemp("stats"))
    first, second = (StreamingDataModule(_source(parquet_dir), batch_size=32, stats_cache=cache) for _ in range(2))
    first.setup("fit")
    second.setup("fit")  # another rank, or a later run on the same files: no second pass
    assert len(passes) == 1 and first.preprocessor.state_dict() == second.preprocessor.state_dict()
    assert second.split_sizes == first.split_sizes and second.input_spec == first.input_spec
    StreamingDataModule(_source(parquet_dir), batch_size=32, stats_cache=cache, split_seed=7).setup("fit")
    assert len(passes) == 2  # other settings: their own pass
