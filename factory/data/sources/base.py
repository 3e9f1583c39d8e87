"""The one interface every data source implements."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import pyarrow as pa

from factory.data.spec import TableSchema


@dataclass(frozen=True)
class LoadedTable:
    """A source's table together with the schema it declares for it."""

    table: pa.Table
    schema: TableSchema


class DataSource(ABC):
    """Loads one Arrow table and declares its schema.

    Constructors only store parameters (configs instantiate sources cheaply, e.g. to
    validate them); all I/O happens in ``load``. Errors the user can fix (missing file,
    unknown column, unreachable database) raise ``factory.errors.DataError`` naming the
    file, URL or column.
    """

    #: Short name recorded in run manifests (``fraud``, ``files``, ...).
    name: str = "source"

    @abstractmethod
    def load(self) -> LoadedTable:
        """Read (or generate) the table and return it with its schema."""
