"""``data=files_stream``: Parquet larger than memory, streamed into tensor batches; each process reads its share.

``StreamingDataModule`` is ``TabularDataModule``'s contract (``setup``, ``input_spec``,
``preprocessor``, ``schema``, ``fingerprint``, ``split_sizes``, ``split_table``, the
preprocessing as its checkpoint state) over ``factory.data.parquet_stream``: no table is held.
``setup`` makes one pass over the files (checks, per-unit split counts, train statistics:
``fit_statistics``); each loader then streams its split.

Sharding. A loader's ``StreamBatches`` knows its rank and world size (from the Trainer) and
``torch.utils.data.get_worker_info``: DataLoader worker ``w`` of rank ``r`` reads the row
groups ``g, g + G, ...`` (``g = w * world + r``, ``G = world * workers``: consecutive row groups
go to different ranks first, so a few row groups still spread over the ranks) of the split's
row groups, in an order reshuffled each epoch (train) from ``split_seed``. Under DDP every rank must
take the same number of optimizer steps (the gradients' all-reduce waits for all): the unit
counts from ``setup`` give each rank's rows, so each rank stops the train epoch at the smallest
rank's number of full batches (a few batches of the larger shards wait for the next epoch's
shuffle). Validation and test read every row of their split exactly once across ranks.

Shuffling is by row group order and within each record batch (``batch_rows``): rows stored
sorted (by time, by label) should be shuffled by the engine that writes them.
"""
from __future__ import annotations

import itertools
import os
import warnings

import numpy as np
import pyarrow as pa
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from factory.data.batch_encoder import BatchEncoder
from factory.data.datamodule import auto_batch_size
from factory.data.encoded_cache import EncodedCache, wait
from factory.data.parquet_stream import SPLIT_CODES, ParquetStream, Unit, cached_statistics, split_codes
from factory.data.preprocessing import Preprocessor
from factory.data.spec import InputSpec, TableSchema
from factory.data.split import SPLITS, check_fractions, check_split_sizes
from factory.errors import DataError


# Lightning warns that an IterableDataset's length may be wrong with workers; StreamBatches counts
# each worker's batches from the row group counts, so its length is exact.
warnings.filterwarnings("ignore", message=r"Your `IterableDataset` has `__len__` defined", category=UserWarning)

#: Batches a DataLoader worker hands over at once.
CHUNK = 16


class StreamBatches(IterableDataset):
    """``(x_num, x_cat, y)`` batches of one split, read from this process's share of the row groups.

    Args:
        stream: the opened files. preprocessor: the fitted encoding.
        unit_rows: ``(n_units, 3)`` rows of each unit per split (``fit_statistics``).
        split: ``train``, ``val`` or ``test``. batch_size: rows per batch.
        seed, val_fraction, test_fraction: the split's hash (as in ``setup``); seed also shuffles.
        rank, world_size: this process's place in the run. workers: DataLoader workers (0: the main process).
        shuffle: new row group order each epoch (``epoch``, set by ``StreamLoader``), rows permuted per batch.
        drop_last: a train epoch is whole batches only, the same count on every rank.
        cache: where encoded units are kept and read (``factory.data.encoded_cache``); None: encode every epoch.
    """

    def __init__(self, stream: ParquetStream, preprocessor: Preprocessor, unit_rows: np.ndarray, split: str,
                 batch_size: int, seed: int, val_fraction: float, test_fraction: float, *, rank: int = 0,
                 world_size: int = 1, workers: int = 0, shuffle: bool = False, drop_last: bool = False,
                 cache: EncodedCache | None = None):
        self.stream, self.preprocessor, self.unit_rows = stream, preprocessor, unit_rows
        self.split, self.code, self.batch_size = split, SPLIT_CODES[split], batch_size
        self.seed, self.fractions = seed, (val_fraction, test_fraction)
        self.rank, self.world_size, self.workers = rank, world_size, max(1, workers)
        self.shuffle, self.drop_last, self.cache = shuffle, drop_last, cache
        self.epoch = 0
        # Batches per item yielded: a worker hands over CHUNK batches at once (StreamLoader cuts them
        # apart), since moving each small batch's tensors between processes costs more than encoding it.
        self.chunk = CHUNK if workers > 0 else 1

    def shares(self, epoch: int) -> list[np.ndarray]:
        """Unit indices each of the ``world_size * workers`` readers takes in ``epoch``; reader ``w * world + r``."""
        units = np.flatnonzero(self.unit_rows[:, self.code] > 0)
        if self.shuffle:
            units = units[np.random.default_rng([self.seed, epoch]).permutation(len(units))]
        readers = self.world_size * self.workers
        return [units[g::readers] for g in range(readers)]

    def caps(self, epoch: int) -> np.ndarray:
        """Batches each reader yields in ``epoch``: ``(world_size, workers)``, equal rank sums when ``drop_last``."""
        rows = np.array([self.unit_rows[share, self.code].sum() for share in self.shares(epoch)], dtype=np.int64)
        rows = rows.reshape(self.workers, self.world_size).T  # (world_size, workers)
        if not self.drop_last:
            return -(-rows // self.batch_size)
        caps = rows // self.batch_size
        steps = caps.sum(axis=1).min()
        for rank_caps in caps:  # trim the larger ranks, from their fullest reader, down to the common steps
            for _ in range(int(rank_caps.sum() - steps)):
                rank_caps[rank_caps.argmax()] -= 1
        return caps

    def __len__(self) -> int:
        return int(self.caps(self.epoch)[self.rank].sum())

    def __iter__(self):
        info = get_worker_info()
        worker = info.id if info is not None else 0
        if (info.num_workers if info is not None else 1) != self.workers:
            raise RuntimeError(f"StreamBatches was built for {self.workers} worker(s)")
        reader = worker * self.world_size + self.rank
        cap = int(self.caps(self.epoch)[self.rank, worker])
        if cap == 0:
            return
        rng = np.random.default_rng([self.seed, self.epoch, reader])
        rest: tuple[np.ndarray, ...] | None = None  # the rows short of a batch, carried to the next record batch
        done, size = 0, self.batch_size
        for index in self.shares(self.epoch)[reader]:
            parts = self._encoded(index, rng if self.shuffle else None)
            for arrays in parts:
                if rest is not None:  # the carried rows and the first new ones make a batch (only it is copied)
                    need = size - len(rest[0])
                    if len(arrays[0]) < need:
                        rest = tuple(np.concatenate(pair) for pair in zip(rest, arrays))
                        continue
                    yield tuple(torch.from_numpy(np.concatenate((r, a[:need]))) for r, a in zip(rest, arrays))
                    done, rest = done + 1, None
                    if done == cap:
                        self._finish(parts, index)
                        self._published()
                        return
                    arrays = tuple(a[need:] for a in arrays)
                full, start = len(arrays[0]) // size * size, 0
                while start < full:
                    count = min(self.chunk, (full - start) // size, cap - done)
                    yield tuple(torch.from_numpy(a[start : start + count * size]) for a in arrays)
                    done, start = done + count, start + count * size
                    if done == cap:
                        self._finish(parts, index)
                        self._published()
                        return
                rest = tuple(a[full:] for a in arrays) if full < len(arrays[0]) else None
        if rest is not None and not self.drop_last and done < cap:
            yield tuple(torch.from_numpy(a) for a in rest)
        self._published()

    def _published(self) -> None:
        if self.cache is not None:  # the units this epoch wrote are on disk before it ends
            wait()

    def _finish(self, parts, index: int) -> None:
        """Read the rest of a unit the epoch stops in, when it is being cached (a partial unit is never kept)."""
        if self.cache is not None and getattr(self, "_writing", None) == index:
            for _ in parts:
                pass

    def _encoded(self, index: int, rng: np.random.Generator | None):
        """Unit ``index``'s rows of this split, encoded (``Preprocessor.transform``'s arrays), shuffled by ``rng``.

        With a cache: from its mapped copy when complete (the same record batches, the same draws of
        ``rng``), else encoded unshuffled, written, and shuffled by a gather (equal to the fused shuffle).
        """
        unit, rows_in_split = self.stream.units[index], int(self.unit_rows[index, self.code])
        if self.cache is None:
            yield from self._encode(unit, rng)
            return
        kept = self.cache.load(self.split, index, rows_in_split, f"{unit.name}#{unit.row_group}")
        if kept is not None:
            arrays, start = kept[0], 0
            for n in kept[1]:
                if rng is None:
                    yield tuple(a[start : start + n].copy() for a in arrays)  # out of the read-only map
                else:
                    order = rng.permutation(n) + start
                    yield tuple(np.take(a, order, axis=0) for a in arrays)  # 2x a[order] on 2-D rows
                start += n
            return
        writer = self.cache.writer(self.split, index, rows_in_split, f"{unit.name}#{unit.row_group}")
        self._writing = index
        try:
            for arrays in self._encode(unit, None):
                writer.add(arrays)
                if rng is None:
                    yield arrays
                else:
                    order = rng.permutation(len(arrays[0]))
                    yield tuple(np.take(a, order, axis=0) for a in arrays)
            writer.commit()
        finally:
            writer.discard()
            if self._writing == index:
                self._writing = None

    def _encode(self, unit: Unit, rng: np.random.Generator | None):
        if not hasattr(self, "_encoder"):  # built where it runs (a worker builds its own)
            self._encoder = BatchEncoder(self.preprocessor)
        for table, rows in self.stream.read(unit, dictionaries=True):
            if any(self.fractions):
                codes = split_codes(unit, rows, self.seed, *self.fractions)
            else:  # every row is train: no hash to compute
                codes = np.zeros(len(rows), dtype=np.int8)
            table, rows, _ = self.stream.select(table, rows, codes, self.split)
            if not len(rows):
                continue
            try:
                yield self._encoder.encode(table, None if rng is None else rng.permutation(len(rows)))
            except DataError as err:  # name the file: the preprocessing knows only the batch
                raise DataError(f"{unit.name} (rows {rows[0]}-{rows[-1]}): {err}") from None


class StreamLoader(DataLoader):
    """A DataLoader over ``StreamBatches`` that tells it each new pass's epoch (workers start per pass).

    Its first pass is epoch ``start_epoch`` from batch ``start_batch``: where a resumed fit stands
    (``factory.data.batches.data_position``). The batches before it are read and dropped: an epoch's
    batches follow from its number alone, so the fit continues with exactly the batches it missed.
    """

    def __init__(self, dataset: StreamBatches, num_workers: int = 0, start_epoch: int = 0, start_batch: int = 0):
        super().__init__(dataset, batch_size=None, num_workers=num_workers, persistent_workers=False)
        self.passes, self.start_batch = start_epoch, start_batch

    # Lightning's "stateful loader" protocol, as batches.BatchLoader: the position comes from the
    # restored loops (start_epoch, start_batch), so the loader is resumable without a state of its own.
    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state_dict: dict) -> None:
        pass

    def __iter__(self):
        self.dataset.epoch = self.passes  # read by the workers forked for this pass
        self.passes += 1
        skip, self.start_batch = self.start_batch, 0
        # Without workers the dataset's own iterator: DataLoader's adds ~17 us a batch (its fetcher and
        # default_convert, a no-op on tensors), a third of what a raw scan spends on 1,024 rows.
        batches = iter(self.dataset) if self.num_workers == 0 else super().__iter__()
        if self.dataset.chunk > 1:
            size = self.dataset.batch_size
            batches = (tuple(t[start : start + size] for t in chunk) for chunk in batches
                       for start in range(0, len(chunk[0]), size))
        return itertools.islice(batches, skip, None) if skip else batches


class StreamingDataModule(pl.LightningDataModule):
    """Streams a Parquet ``FileSource`` (directory, glob, Hive partitions, fsspec URL) in sharded batches.

    Batches, preprocessing state and attributes are ``TabularDataModule``'s (a checkpoint of
    either restores into the other's readers: registry, export, serving).

    Args:
        source: a ``factory.data.sources.FileSource`` over Parquet (its ``filter`` is pushed down).
        batch_size: rows per batch and process; ``None``: from the train rows, as ``TabularDataModule``.
        num_workers: DataLoader workers per process, each reading its own row groups.
        val_fraction, test_fraction: expected shares of rows (split by a hash of each row's place).
        split_seed: seed of the split hash and of the shuffle.
        max_onehot: as ``TabularDataModule``.
        batch_rows: rows per record batch read from a file (memory per worker ~ a few of them).
        sample_rows: at most this many rows sampled for the quantile bins.
        stats_cache: a directory keeping the statistics pass's result by the files' fingerprint
            (``cached_statistics``): the ranks of a run share one pass, later runs on the same files none.
            ``None``: each process makes its own pass.
        encoded_cache: a directory keeping each unit's encoded rows from the first epoch that reads it
            (``factory.data.encoded_cache``): later epochs and runs map them, reading no Parquet.
            ``None``: every epoch reads and encodes.

    Example:
        >>> dm = StreamingDataModule(FileSource("data/tx/", target="is_fraud"), num_workers=2)
        >>> dm.setup("fit")
    """

    def __init__(self, source, batch_size: int | None = None, num_workers: int = 0, val_fraction: float = 0.15,
                 test_fraction: float = 0.15, split_seed: int = 42, max_onehot: int = 16,
                 batch_rows: int = 65536, sample_rows: int = 1000000, stats_cache: str | None = None,
                 encoded_cache: str | None = None, dataset: str | None = None, classification: str = "public"):
        super().__init__()
        check_fractions(val_fraction, test_fraction)
        self.source, self.batch_size, self.num_workers = source, batch_size, num_workers
        self.val_fraction, self.test_fraction, self.split_seed = val_fraction, test_fraction, split_seed
        self.max_onehot, self.batch_rows, self.sample_rows = max_onehot, batch_rows, sample_rows
        self.stats_cache, self.encoded_cache = stats_cache, encoded_cache
        self.dataset, self.classification = dataset, classification
        self.preprocessor: Preprocessor | None = None
        self.schema: TableSchema | None = None
        self.input_spec: InputSpec | None = None
        self.fingerprint: str | None = None
        self.split_sizes: dict[str, int] = {}
        self.stream: ParquetStream | None = None
        self._unit_rows: np.ndarray | None = None

    @property
    def source_name(self) -> str:
        return self.source.name

    @property
    def class_labels(self) -> list:
        return self._fitted().class_labels

    def setup(self, stage: str | None = None) -> None:
        """Open the files and make the statistics pass (or read it from ``stats_cache``), once for all stages.

        A preprocessor restored with ``load_state_dict`` is kept (the pass then only counts and checks).
        """
        if self.stream is not None:
            return
        from factory.data.datamodule import _rank_zero
        from factory.governance import access

        # governed as the in-memory path is: checked before a byte is read, the read recorded once
        dataset = self.dataset or self.source.name
        self.classification = access.authorize(dataset, self.classification)
        stream = ParquetStream(self.source, self.batch_rows)
        self.fingerprint = stream.fingerprint()
        if self.classification != "public" and _rank_zero():
            access.record_read(dataset, self.classification, None, os.environ.get("FACTORY_RUN_ID"),
                               purpose="stream")
        stats = cached_statistics(stream, self.fingerprint, self.stats_cache, self.split_seed, self.val_fraction,
                                  self.test_fraction, self.max_onehot, self.sample_rows)
        self.stream, self.schema, self._unit_rows = stream, stream.schema, stats.unit_rows
        self.split_sizes = {name: int(stats.unit_rows[:, code].sum()) for name, code in SPLIT_CODES.items()}
        check_split_sizes(self.split_sizes, self.val_fraction, self.test_fraction,
                          need_val=stage in (None, "fit", "validate"))
        if self.batch_size is None:
            self.batch_size = auto_batch_size(self.split_sizes["train"])
        if self.preprocessor is None:
            self.preprocessor = stats.preprocessor
        counts: list[int] = []
        if self.preprocessor.class_labels:
            values, n = stats.targets
            codes = self.preprocessor.encode_target(pa.table({self.schema.target: values}))
            counts = np.bincount(codes, weights=n, minlength=len(self.preprocessor.class_labels)).astype(int).tolist()
        self.input_spec = self.preprocessor.input_spec(counts)

    def split_table(self, name: str) -> pa.Table:
        """The raw rows of split ``name``, read whole into memory (for evaluation and baselines on small splits)."""
        if self.stream is None:
            raise RuntimeError("StreamingDataModule.setup() has not run yet")
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")
        parts = []
        for unit in self.stream.units:
            for table, rows in self.stream.read(unit):
                codes = split_codes(unit, rows, self.split_seed, self.val_fraction, self.test_fraction)
                parts.append(self.stream.select(table, rows, codes, name)[0])
        columns = [*self.schema.features, self.schema.target]
        if not parts:
            return self.stream.dataset.schema.empty_table().select(columns)
        return pa.concat_tables(parts).select(columns)

    def train_dataloader(self) -> DataLoader:
        from factory.data.batches import data_position

        return self._loader("train", shuffle=True, drop_last=True, start=data_position(self.trainer))

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test")

    def state_dict(self) -> dict:
        return {"preprocessor": self.preprocessor.state_dict()} if self.preprocessor is not None else {}

    def load_state_dict(self, state_dict: dict) -> None:
        self.preprocessor = Preprocessor.from_state_dict(state_dict["preprocessor"])

    def _loader(self, split: str, shuffle: bool = False, drop_last: bool = False,
                start: tuple[int, int] = (0, 0)) -> DataLoader:
        if self.stream is None:
            raise RuntimeError("StreamingDataModule.setup() has not run yet")
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        cache = None
        if self.encoded_cache is not None:
            cache = EncodedCache.for_stream(self.encoded_cache, self.fingerprint, self._fitted().state_dict(),
                                            self.split_seed, self.val_fraction, self.test_fraction, self.batch_rows,
                                            self.stream.columns)
        dataset = StreamBatches(self.stream, self._fitted(), self._unit_rows, split, self.batch_size,
                                self.split_seed, self.val_fraction, self.test_fraction, rank=rank, world_size=world,
                                workers=self.num_workers, shuffle=shuffle, drop_last=drop_last, cache=cache)
        if drop_last and len(dataset) == 0:
            raise DataError(f"the train split gives some rank fewer than data.batch_size={self.batch_size} rows "
                            f"({self.split_sizes['train']} train rows over {world} rank(s)); lower the batch size")
        return StreamLoader(dataset, num_workers=self.num_workers, start_epoch=start[0], start_batch=start[1])

    def _fitted(self) -> Preprocessor:
        if self.preprocessor is None:
            raise RuntimeError("StreamingDataModule.setup() has not run yet")
        return self.preprocessor
