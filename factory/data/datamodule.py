"""The LightningDataModule every data config instantiates: one source, split, encoded, batched."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from factory.data.batches import batch_loader
from factory.data.fingerprint import table_fingerprint
from factory.data.preprocessing import Preprocessor
from factory.data.sources.base import DataSource, LoadedTable
from factory.data.spec import InputSpec, TableSchema
from factory.data.split import (SPLITS, check_fold, check_fractions, check_split_sizes, cv_fold_split,
                                stratified_split)
from factory.data.validation import validate_table

#: ``batch_size=None`` sizes batches to the train split: about this many optimizer steps an epoch ...
AUTO_STEPS_PER_EPOCH = 32
#: ... in batches of this many rows at least (batch statistics stay meaningful) and at most.
AUTO_BATCH_ROWS = (64, 1024)


def auto_batch_size(train_rows: int) -> int:
    """Rows per batch for ``batch_size=None``: train rows / 32, within 64-1024 rows.

    A fixed 1,024 gives a table of a few thousand rows 1-4 optimizer steps an epoch: a
    10-epoch run then stops long before the network has fit (docs/benchmarks.md).
    """
    low, high = AUTO_BATCH_ROWS
    return int(min(high, max(low, train_rows // AUTO_STEPS_PER_EPOCH)))


class TabularDataModule(pl.LightningDataModule):
    """Loads a source's table once, validates, splits, encodes and serves tensor batches.

    Batches are ``(x_num, x_cat, y)``: float32 ``(B, n_numeric)`` (``(B, C, H, W)`` for
    images), int64 ``(B, n_embedded)`` category codes, and ``y`` int64 class indices
    ``(B,)`` for classification or float32 ``(B,)`` for regression.

    The fitted preprocessing is the module's state: Lightning stores ``state_dict()`` in
    every checkpoint and calls ``load_state_dict`` when restoring one (after ``setup``),
    so evaluating a checkpoint on other data encodes it as in training instead of
    refitting on that data.

    Args:
        source: the ``DataSource`` to load.
        batch_size: rows per batch; ``None``: sized to the train split (``auto_batch_size``),
            set on ``setup``.
        num_workers: DataLoader worker processes (persistent when > 0).
        val_fraction: share of rows (per class) for validation.
        test_fraction: share of rows (per class) for the test split.
        split_seed: seed of the split and of the per-epoch train shuffle.
        max_onehot: categoricals with at most this many levels are one-hot encoded,
            the others embedded.
        cv_folds: ``k`` >= 2: the table is cut into ``k`` stratified folds and fold ``cv_fold``
            is the test split (``test_fraction`` unused); val comes from the other folds
            (``factory.data.split.cv_fold_split``). None: one split by the fractions.
        cv_fold: the fold held out as the test split when ``cv_folds`` is set.
        snapshot: a stored snapshot's id (or unique prefix): ``setup`` reads exactly that
            curated table (``factory.data.snapshots``) instead of the source.
        curation: ``data.curation`` (``factory.data.curation.chain.DEFAULTS`` fill what it
            leaves out): declared column rules, quarantine limit, dedupe, PII, classification
            and the ``store`` of snapshots and quarantine files (None: ``$FACTORY_ROOT/data``,
            else ``./data``).

    Example:
        >>> dm = TabularDataModule(FraudSource(rows=5000), batch_size=256)
        >>> dm.setup("fit")
        >>> model = build_model(dm.input_spec)
    """

    def __init__(
        self,
        source: DataSource,
        batch_size: int | None = None,
        num_workers: int = 0,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        split_seed: int = 42,
        max_onehot: int = 16,
        cv_folds: int | None = None,
        cv_fold: int = 0,
        snapshot: str | None = None,
        curation: dict | None = None,
    ):
        super().__init__()
        check_fractions(val_fraction, test_fraction)  # no I/O: fails at instantiation
        check_fold(cv_folds, cv_fold)
        from factory.data.curation.chain import settings

        if curation is not None and not isinstance(curation, dict):  # a Hydra DictConfig
            from omegaconf import OmegaConf

            curation = OmegaConf.to_container(curation, resolve=True)
        self.curation = settings(curation)  # a typo'd key or rule fails here, before any read
        self.snapshot = snapshot
        self.source = source
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.split_seed = split_seed
        self.max_onehot = max_onehot
        self.cv_folds = cv_folds
        self.cv_fold = cv_fold
        self.preprocessor: Preprocessor | None = None
        self.schema: TableSchema | None = None
        self.input_spec: InputSpec | None = None
        self.fingerprint: str | None = None
        self.classification: str | None = None  # as read: the stricter of the config's and the policy's
        self.snapshot_id: str | None = None  # the curated table's stored snapshot, once set up
        self.curation_report: dict | None = None  # chain.curate's report (the snapshot's, on replay)
        self.quarantine_path: str | None = None  # the quarantined rows' Parquet file, when any
        # False: curate without writing the snapshot or quarantine file (a command that only looks,
        # such as scripts/plan.py, leaves nothing behind); a run keeps it True
        self.persist = True
        self.split_sizes: dict[str, int] = {}
        self._table: pa.Table | None = None
        self._rows: dict[str, np.ndarray] = {}
        self._tensors: dict[str, tuple[torch.Tensor, ...]] = {}

    @property
    def source_name(self) -> str:
        """The source's short name, for manifests."""
        return self.source.name

    @property
    def class_labels(self) -> list:
        """Display label of each encoded class (empty for regression)."""
        return self._fitted().class_labels

    def setup(self, stage: str | None = None) -> None:
        """Load (or replay a snapshot), curate, validate, split and encode, once for all stages.

        Fits the preprocessor on the train split unless one was restored with
        ``load_state_dict``. ``input_spec``, ``snapshot_id`` and ``curation_report`` are set
        on return; only the rows curation kept are split (a quarantined row is in none).

        Raises:
            DataError: the source's table does not match its schema or its declared rules,
                more than ``max_quarantine`` of its rows were quarantined, the store is not
                writable, or the table is too small to give the splits ``stage`` reads.
            AccessError: the dataset is internal or restricted and no role grants it.
        """
        if self._table is not None:
            return  # "fit" then "test" (or "validate"): one load serves all stages
        loaded = self._replay() if self.snapshot else self._curate()
        self.schema, self._table = loaded.schema, loaded.table
        target = loaded.table.column(loaded.schema.target).to_pandas().to_numpy()
        stratify = loaded.schema.task != "regression"
        if self.cv_folds:
            self._rows = cv_fold_split(target, self.cv_folds, self.cv_fold, self.val_fraction, self.split_seed,
                                       stratify=stratify)
        else:
            self._rows = stratified_split(target, self.val_fraction, self.test_fraction, self.split_seed,
                                          stratify=stratify)
        self.split_sizes = {name: len(rows) for name, rows in self._rows.items()}
        if self.batch_size is None:
            self.batch_size = auto_batch_size(self.split_sizes["train"])
        test_fraction = 1 / self.cv_folds if self.cv_folds else self.test_fraction
        check_split_sizes(self.split_sizes, self.val_fraction, test_fraction,
                          need_val=stage in (None, "fit", "validate"))
        if self.preprocessor is None:
            self.preprocessor = Preprocessor.fit(self.split_table("train"), loaded.schema, self.max_onehot)
        self._encode()

    @property
    def store(self) -> Path:
        """Where snapshots and quarantine files go: ``data.curation.store``, else the default data directory."""
        from factory.data.snapshots import default_store

        return Path(self.curation["store"]) if self.curation["store"] else default_store()

    @property
    def dataset(self) -> str:
        """The governed dataset's name: ``data.curation.dataset``, else the source's."""
        return self.curation["dataset"] or self.source.name

    def _replay(self) -> LoadedTable:
        """The snapshot ``self.snapshot``, as curated when it was written (access checked, read audited)."""
        from factory.data import snapshots

        found = snapshots.read_governed(self.snapshot, self.store, os.environ.get("FACTORY_RUN_ID"),
                                        audit=_rank_zero())  # one audited read per run, not per DDP rank
        meta = found.meta
        self.snapshot_id, self.fingerprint = found.id, found.record["fingerprint"]
        self.curation_report = meta.get("curation")
        self.classification = meta.get("classification")
        self.quarantine_path = str(self.store / meta["quarantine"]) if meta.get("quarantine") else None
        replayed = LoadedTable(found.table, found.schema)
        validate_table(replayed, source=self.source.name)
        return replayed

    def _curate(self) -> LoadedTable:
        """The source's table through ``chain.curate``; quarantine and snapshot written, the read audited."""
        from factory.data import snapshots
        from factory.data.curation import chain, quarantine

        cfg, dataset, store = self.curation, self.dataset, self.store
        run_id = os.environ.get("FACTORY_RUN_ID")
        from factory.governance import access

        # Before any read: a refused reader reads nothing. The policy's classification of the
        # dataset applies when stricter than the config's (a command line cannot lower it).
        classification = self.classification = access.authorize(dataset, cfg["classification"])
        key = None
        if classification == "restricted":
            from factory.governance import encryption

            key = encryption.load_key()
        if self.persist:
            _check_writable(store)
        loaded = self.source.load()
        declared = bool(cfg["columns"] or cfg["unique"])
        if not declared:  # today's checks on the source itself: messages number rows as the source does
            validate_table(loaded, source=self.source.name)
        curated = chain.curate(loaded, cfg, run_id, source=self.source.name)
        source_fingerprint = table_fingerprint(loaded.table)
        held = None
        if curated.quarantine.num_rows and self.persist:
            held = quarantine.file_name(curated.quarantine, source_fingerprint, classification, snapshots.ID_LENGTH)
            quarantine.write(curated.quarantine, store / held, key)
            self.quarantine_path = str(store / held)
        quarantine.check_share(curated.report, cfg["max_quarantine"], self.quarantine_path)
        if declared:  # after the quarantine: a row a rule set aside cannot fail these (rows of the kept table)
            validate_table(LoadedTable(curated.table, curated.schema), source=self.source.name)
        meta = {"source": self.source.name, "source_fingerprint": source_fingerprint, "dataset": dataset,
                "classification": classification, "curation": curated.report, "quarantine": held}
        unchanged = source_fingerprint if curated.table is loaded.table else None
        if self.persist:
            self.snapshot_id = snapshots.write(curated.table, curated.schema, store, meta, key, fingerprint=unchanged)
            self.fingerprint = unchanged or snapshots.load_record(self.snapshot_id, store)["fingerprint"]
        else:
            self.snapshot_id, self.fingerprint = snapshots.snapshot_id(curated.table, curated.schema, unchanged)
        self.curation_report = curated.report
        if classification != "public" and _rank_zero():
            access.record_read(dataset, classification, self.snapshot_id, run_id)
        return LoadedTable(curated.table, curated.schema)

    def split_table(self, name: str) -> pa.Table:
        """The raw rows of split ``name`` (``train``, ``val`` or ``test``), in source order."""
        if self._table is None:
            raise RuntimeError("TabularDataModule.setup() has not run yet")
        if name not in self._rows:
            raise ValueError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")
        return self._table.take(self._rows[name])

    def train_dataloader(self) -> DataLoader:
        from factory.data.batches import data_position

        # After a resume Lightning builds (and prefetches from) this loader before it sets
        # the sampler's epoch: start it at the restored epoch and batch, so the batches
        # continue exactly where the checkpoint left off.
        epoch, done = data_position(self.trainer)
        # A ragged last batch (possibly one row) is dropped once a full batch exists:
        # batch statistics stay meaningful, and rows reshuffle so none is lost for good.
        return self._loader("train", shuffle=True, drop_last=self.split_sizes["train"] > self.batch_size,
                            start=(epoch, done))

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test")

    def state_dict(self) -> dict:
        """``{"preprocessor": <JSON-able state>}`` once fitted or restored, else ``{}``."""
        return {"preprocessor": self.preprocessor.state_dict()} if self.preprocessor is not None else {}

    def load_state_dict(self, state_dict: dict) -> None:
        """Adopt a saved preprocessor; re-encodes the splits if ``setup`` already ran."""
        self.preprocessor = Preprocessor.from_state_dict(state_dict["preprocessor"])
        if self._table is not None:
            self._encode()

    def _encode(self) -> None:
        preprocessor = self._fitted()
        arrays = preprocessor.transform(self._table)
        tensors = tuple(torch.from_numpy(a) for a in arrays)
        self._tensors = {
            name: tuple(t[torch.from_numpy(rows)] for t in tensors) for name, rows in self._rows.items()
        }
        counts: list[int] = []
        if preprocessor.class_labels:
            y_train = self._tensors["train"][2].numpy()
            counts = np.bincount(y_train, minlength=len(preprocessor.class_labels)).tolist()
        self.input_spec = preprocessor.input_spec(counts)

    def _loader(self, split: str, shuffle: bool = False, drop_last: bool = False,
                start: tuple[int, int] = (0, 0)) -> DataLoader:
        if split not in self._tensors:
            raise RuntimeError("TabularDataModule.setup() has not run yet")
        return batch_loader(
            self._tensors[split],
            self.batch_size,
            shuffle=shuffle,
            seed=self.split_seed,
            drop_last=drop_last,
            num_workers=self.num_workers,
            start_epoch=start[0],
            start_batch=start[1],
        )

    def _fitted(self) -> Preprocessor:
        if self.preprocessor is None:
            raise RuntimeError("TabularDataModule.setup() has not run yet")
        return self.preprocessor


def _check_writable(store: Path) -> None:
    """One line when snapshots and quarantine files cannot be written under ``store``."""
    from factory.errors import DataError

    try:
        store.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"data.curation.store: cannot create {store} ({e.strerror}); set data.curation.store to a "
                        "writable directory") from None
    if not os.access(store, os.W_OK | os.X_OK):
        raise DataError(f"data.curation.store: {store} is not writable; set data.curation.store to a writable "
                        "directory")


def _rank_zero() -> bool:
    """Whether this process is rank zero (under DDP every rank sets up; one records the read)."""
    from pytorch_lightning.utilities import rank_zero_only

    return rank_zero_only.rank == 0
