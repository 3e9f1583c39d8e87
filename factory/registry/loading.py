"""A registered version loaded for inference: the model in eval mode and its fitted preprocessing."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from factory.errors import DataError, FactoryError
from factory.registry.store import ModelVersion, Registry


@dataclass
class RegisteredModel:
    """What ``factory.registry.load`` returns: everything needed to score raw tables.

    Attributes:
        version: the index entry (name, version, stage, run id, key metric, folder).
        metadata: ``meta.json``: run lineage, metrics, data fingerprint, config.
        model: the ``SupervisedModel``, in eval mode on the CPU.
        preprocessor: the ``Preprocessor`` fitted on the run's train split.

    Example:
        >>> fraud = factory.registry.load("fraud_detection@production")
        >>> scored = fraud.predict(pd.read_csv("new_transactions.csv"))  # + prediction, score
    """

    version: ModelVersion
    metadata: dict
    model: Any
    preprocessor: Any
    _datamodule_state: dict = field(default_factory=dict, repr=False)

    @property
    def ref(self) -> str:
        return self.version.ref

    @property
    def task(self) -> str:
        return self.model.task

    @property
    def class_labels(self) -> list:
        """Display label of each predicted class index (empty for regression)."""
        return list(self.preprocessor.class_labels)

    @property
    def features(self) -> list[str]:
        """The raw columns a table to score must hold."""
        return list(self.preprocessor.schema.features)

    @property
    def config(self):
        """The run's resolved config, as a DictConfig."""
        from omegaconf import OmegaConf

        return OmegaConf.create(self.metadata.get("config") or {})

    def predict(self, table, batch_size: int = 8192):
        """Score raw rows (pandas DataFrame or Arrow table) as at training time.

        Returns:
            The rows plus ``prediction`` and ``score`` (and ``prob_<label>`` per class for
            multiclass; ``target`` and ``label`` when the table has the target column);
            see ``factory.models.predict.predict_table``.
        """
        from factory.models.predict import predict_table

        return predict_table(self.model, self.preprocessor, table, batch_size)

    def datamodule(self):
        """The run's DataModule rebuilt from its config with this preprocessing, set up for test.

        For scoring the run's own splits (``dm.split_table("test")``); reads the data source.
        """
        from factory.data.datamodule import TabularDataModule
        from factory.training.restore import restore_datamodule

        return restore_datamodule(self.config.data, {TabularDataModule.__qualname__: self._datamodule_state})


def load(registry: Registry, ref: str, verify: bool = True) -> RegisteredModel:
    """Load ``ref`` (``NAME``, ``NAME@3``, ``NAME@production``) for inference.

    Args:
        registry: the registry to read.
        ref: the model reference.
        verify: check the checkpoint's sha256 against the one recorded at registration.

    Raises:
        FactoryError: an unknown reference, a missing or altered checkpoint.
    """
    from factory.registry.capture import sha256

    version = registry.get(ref)  # a bad reference answers before torch loads
    metadata = version.metadata()
    path = version.checkpoint
    if not path.is_file():
        raise FactoryError(f"{version.ref}: checkpoint {path} is missing")
    expected = (metadata.get("checkpoint") or {}).get("sha256")
    if verify and expected and sha256(path) != expected:
        raise FactoryError(f"{version.ref}: checkpoint {path} changed since it was registered (sha256 mismatch)")

    from factory.data.datamodule import TabularDataModule
    from factory.data.preprocessing import Preprocessor
    from factory.models import SupervisedModel
    from factory.training.restore import load_factory_checkpoint

    checkpoint = load_factory_checkpoint(path)
    state = checkpoint[TabularDataModule.__qualname__]
    model = SupervisedModel.load_from_checkpoint(path, map_location="cpu").eval()
    return RegisteredModel(version, metadata, model, Preprocessor.from_state_dict(state["preprocessor"]), state)


def read_table(path: str | Path):
    """A CSV or Parquet file of raw rows to score, as an Arrow table.

    Raises:
        DataError: a missing or unreadable file, or another suffix.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"--score: no such file: {path}")
    read = {".csv": _read_csv, ".parquet": _read_parquet}.get(path.suffix.lower())
    if read is None:
        raise DataError(f"--score: {path}: expected a .csv or .parquet file")
    return read(path)


def check_output(output: str | Path | None) -> None:
    """Refuse an output suffix ``write_scored`` cannot write, before any work is done."""
    if output is not None and Path(output).suffix.lower() not in (".csv", ".parquet"):
        raise DataError(f"--output: {output}: expected a .csv or .parquet file")


def write_scored(scored, output: str | Path | None = None) -> str:
    """Write scored rows to ``output`` (.csv or .parquet) and say so; without one, the rows as CSV text."""
    if output is None:
        return scored.to_csv(index=False).rstrip("\n")
    check_output(output)
    if Path(output).suffix.lower() == ".parquet":
        scored.to_parquet(output, index=False)
    else:
        scored.to_csv(output, index=False)
    return f"scored {len(scored)} rows -> {output}"


def _read_csv(path: Path):
    import pyarrow as pa
    from pyarrow import csv

    try:
        return csv.read_csv(path)
    except pa.ArrowInvalid as e:
        raise DataError(f"--score: {path} is not a readable CSV ({str(e).splitlines()[0]})") from None


def _read_parquet(path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path)
    except pa.ArrowInvalid as e:
        raise DataError(f"--score: {path} is not a readable Parquet file ({str(e).splitlines()[0]})") from None
