"""data.encoded_cache: cached epochs give exactly the uncached batches; only complete units are ever read."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from factory.data.encoded_cache import EncodedCache
from factory.data.sources import FileSource
from factory.data.streaming import StreamBatches, StreamingDataModule, StreamLoader
from factory.errors import DataError


@pytest.fixture
def parquet_dir(tmp_path):
    """Two files of 400 rows in row groups of 100 (8 units), read in record batches of 64 (see _dm)."""
    folder = tmp_path / "data"
    folder.mkdir()
    for i in range(2):
        rng = np.random.default_rng(i)
        n = 400
        pq.write_table(pa.table({
            "id": np.arange(400 * i, 400 * i + n, dtype=np.int64),
            "amount": pa.array(rng.lognormal(3, 1, n), mask=rng.random(n) < 0.1),
            "shop": pa.array(rng.choice(["a", "b", "c", "d"], n), mask=rng.random(n) < 0.05),
            "merchant": rng.choice([f"m{k}" for k in range(40)], n),  # embedded (more levels than max_onehot)
            "y": (rng.random(n) < 0.3).astype(np.int64),
        }), folder / f"part-{i:05d}.parquet", row_group_size=100)
    return folder


def _dm(path, cache=None, **kw) -> StreamingDataModule:
    dm = StreamingDataModule(FileSource(str(path), target="y"), batch_size=16, batch_rows=64, max_onehot=8,
                             encoded_cache=cache, **kw)
    dm.setup("fit")
    return dm


def _cache(dm) -> EncodedCache:
    return EncodedCache.for_stream(dm.encoded_cache, dm.fingerprint, dm.preprocessor.state_dict(), dm.split_seed,
                                   dm.val_fraction, dm.test_fraction, dm.batch_rows, dm.stream.columns)


def _batches(dm, split, rank=0, world=1, workers=0, epoch=0, start=0, cached=True):
    train = split == "train"
    data = StreamBatches(dm.stream, dm.preprocessor, dm._unit_rows, split, dm.batch_size, dm.split_seed,
                         dm.val_fraction, dm.test_fraction, rank=rank, world_size=world, workers=workers,
                         shuffle=train, drop_last=train, cache=_cache(dm) if cached and dm.encoded_cache else None)
    return [tuple(t.clone() for t in b) for b in StreamLoader(data, num_workers=workers, start_epoch=epoch,
                                                               start_batch=start)]


def _same(a, b) -> None:
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
        for s, t in zip(x, y):
            assert s.dtype == t.dtype and torch.equal(s, t)


def _units(cache_dir) -> list:
    return sorted(p.name for p in cache_dir.glob("*/*") if p.is_dir())


@pytest.mark.parametrize("world,workers", [(1, 0), (2, 0), (1, 2)])
def test_cached_epochs_and_runs_give_exactly_the_uncached_batches(parquet_dir, tmp_path_factory, world, workers):
    cache_dir = tmp_path_factory.mktemp("encoded")
    plain, dm = _dm(parquet_dir), _dm(parquet_dir, cache=str(cache_dir))
    for epoch in (0, 1, 2):  # 0 writes (and a rank's last unit is read to its end), 1 and 2 read the maps
        for rank in range(world):
            _same(_batches(plain, "train", rank, world, workers, epoch),
                  _batches(dm, "train", rank, world, workers, epoch))
        if epoch == 0:  # every unit with train rows is kept after one epoch (none trimmed whole here)
            assert len(_units(cache_dir)) == int((dm._unit_rows[:, 0] > 0).sum())
    for rank in range(world):
        _same(_batches(plain, "val", rank, world, workers), _batches(dm, "val", rank, world, workers))
    # a later run with the same key reads no Parquet at all
    again = _dm(parquet_dir, cache=str(cache_dir))

    def no_read(*args, **kwargs):
        raise AssertionError("Parquet read although every unit is cached")

    again.stream.read = no_read
    for rank in range(world):
        _same(_batches(plain, "train", rank, world, workers, 3), _batches(again, "train", rank, world, workers, 3))
        _same(_batches(plain, "val", rank, world, workers), _batches(again, "val", rank, world, workers))


def test_a_resumed_epoch_from_the_cache_continues_with_the_batches_it_missed(parquet_dir, tmp_path):
    plain, dm = _dm(parquet_dir), _dm(parquet_dir, cache=str(tmp_path / "enc"))
    _batches(dm, "train", epoch=0)  # writes
    full = _batches(plain, "train", epoch=1)
    _same(full[5:], _batches(dm, "train", epoch=1, start=5))
    _same(full[5:], _batches(_dm(parquet_dir, cache=str(tmp_path / "enc2")), "train", epoch=1, start=5))


def test_an_interrupted_epoch_keeps_only_complete_units(parquet_dir, tmp_path):
    cache_dir = tmp_path / "enc"
    plain, dm = _dm(parquet_dir), _dm(parquet_dir, cache=str(cache_dir))
    data = StreamBatches(dm.stream, dm.preprocessor, dm._unit_rows, "train", 16, dm.split_seed, dm.val_fraction,
                         dm.test_fraction, shuffle=True, drop_last=True, cache=_cache(dm))
    batches = iter(StreamLoader(data))
    for _ in range(3):  # 48 rows: inside the first unit (about 70 train rows)
        next(batches)
    del batches  # the run stops mid-unit
    assert _units(cache_dir) == [] and not list(cache_dir.glob("*/.tmp-*"))
    # a killed writer's leftovers: a temp directory with arrays but no meta.json, never read
    first = int(data.shares(0)[0][0])
    writer = _cache(dm).writer("train", first, int(dm._unit_rows[first, 0]), "x")
    writer.add(tuple(np.zeros((4, *s), dtype=d) for s, d in (((dm.preprocessor.n_float,), np.float32),
                                                              ((1,), np.int64), ((), np.int64))))
    _same(_batches(plain, "train", epoch=0), _batches(dm, "train", epoch=0))
    for unit in cache_dir.glob("*/train-*"):
        meta = json.loads((unit / "meta.json").read_text())
        assert meta["rows"] == sum(meta["lengths"]) == len(np.load(unit / "y.npy"))
    _same(_batches(plain, "train", epoch=1), _batches(dm, "train", epoch=1))


def test_other_settings_make_another_key_and_a_damaged_unit_is_one_line(parquet_dir, tmp_path):
    cache_dir = tmp_path / "enc"
    dm = _dm(parquet_dir, cache=str(cache_dir))
    _batches(dm, "train")
    _batches(_dm(parquet_dir, cache=str(cache_dir), split_seed=7), "train")
    assert len([p for p in cache_dir.iterdir() if p.is_dir()]) == 2
    unit = next(cache_dir.glob(f"{_cache(dm).root.name}/train-*"))
    meta = json.loads((unit / "meta.json").read_text())
    (unit / "meta.json").write_text(json.dumps({**meta, "rows": meta["rows"] + 1}))
    with pytest.raises(DataError, match=r"data.encoded_cache: .*train-\d+ holds .*; delete"):
        for epoch in range(4):  # some epoch reads the damaged unit
            _batches(dm, "train", epoch=epoch)


def test_an_unwritable_cache_directory_is_one_line(parquet_dir, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(DataError, match=r"^data.encoded_cache: cannot write under .*a-file"):
        _batches(_dm(parquet_dir, cache=str(blocker)), "train")
