"""SQL against a warehouse: DuckDB files directly, every other database through SQLAlchemy."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa

from factory import redact
from factory.data.sources.base import DataSource, LoadedTable
from factory.data.sources.declared import SchemaDeclaration, first_line
from factory.data.sources.fraud import FraudSource
from factory.errors import DataError


class WarehouseSource(DataSource):
    """Runs one query and declares the schema of its result from config.

    ``duckdb:///relative/file.duckdb``, ``duckdb:////absolute/file.duckdb`` (SQLAlchemy's
    slash convention) or ``duckdb:///:memory:`` run through the DuckDB Python API, read
    only, straight to Arrow. Any other URL (``postgresql://user:pw@host/db``,
    ``sqlite:///file.db``...) goes through a SQLAlchemy engine and ``pandas.read_sql``; its
    driver (psycopg2, ...) must be installed. DECIMAL columns become float64. An empty
    result is returned as is.

    Args:
        url: ``duckdb:///path`` or any SQLAlchemy URL.
        query: the SQL to run.
        target, features, categorical, task, positive_label: see
            ``factory.data.sources.declared.declare_schema``.

    Raises:
        DataError: from ``load``: a missing DuckDB file, an unreachable server, a missing
            driver, bad SQL. The message shows the URL with its password masked.
    """

    name = "warehouse"

    def __init__(
        self,
        url: str,
        query: str,
        target: str,
        features: Sequence[str] | None = None,
        categorical: Sequence[str] | None = None,
        task: str | None = None,
        positive_label: str | int | None = None,
    ):
        self.url = str(url)
        self.query = query
        self.declaration = SchemaDeclaration(target, features, categorical, task, positive_label)

    def load(self) -> LoadedTable:
        table = self._duckdb() if self.url.startswith("duckdb://") else self._sqlalchemy()
        return self.declaration.apply(table, origin="the result of data.source.query")

    def _duckdb(self) -> pa.Table:
        import duckdb

        rest = self.url[len("duckdb://") :].split("?", 1)[0]
        database = (rest[1:] if rest.startswith("/") else rest) or ":memory:"
        in_memory = database == ":memory:"
        if not in_memory and not Path(database).is_file():
            raise DataError(
                f"DuckDB file not found: {database}; to build the demo database run"
                f" `python scripts/make_demo_warehouse.py --path {database}`"
            )
        try:
            con = duckdb.connect(database, read_only=not in_memory)
            try:
                relation = con.sql(self.query)
                if relation is None:  # a statement, not a query
                    raise DataError(f"data.source.query returns no rows on {self.url}")
                # DuckDB 2.0 deprecates arrow()/fetch_arrow_table() for to_arrow_table().
                if hasattr(relation, "to_arrow_table"):
                    return relation.to_arrow_table()
                return relation.arrow()
            finally:
                con.close()
        except duckdb.Error as err:
            raise DataError(f"query failed on {self.url}: {first_line(err)}") from err

    def _sqlalchemy(self) -> pa.Table:
        import pandas as pd
        import sqlalchemy as sa

        shown = redact.url(self.url)
        try:
            engine = sa.create_engine(self.url)
            try:
                with engine.connect() as conn:
                    # A str runs as-is (exec_driver_sql): no ":name" bind-parameter parsing.
                    frame = pd.read_sql(self.query, conn)
            finally:
                engine.dispose()
        except (sa.exc.SQLAlchemyError, pd.errors.DatabaseError, ImportError) as err:
            # Only a URL's password field is masked: a one-letter password left every such
            # letter of the message masked ("No module named '***syco***g'").
            reason = redact.text(first_line(err))
            if isinstance(err, ImportError):
                reason += " (install the database driver for this URL)"
            raise DataError(f"cannot query {shown}: {reason}") from err
        return pa.Table.from_pandas(frame, preserve_index=False)


def build_demo_warehouse(path: str | os.PathLike, rows: int = 50000, seed: int = 42) -> Path:
    """Write ``FraudSource(rows, seed=seed)`` to a DuckDB file as table ``transactions``.

    The file is written beside ``path`` under a temporary name and renamed, so a reader
    never sees a half-built database.

    Args:
        path: the DuckDB file to (re)create; parent directories are created.
        rows: transactions to generate.
        seed: generator seed.

    Returns:
        ``path`` as a ``Path``.

    Example:
        >>> url = f"duckdb:///{build_demo_warehouse(tmp_path / 'w.duckdb', rows=1000)}"
    """
    import duckdb

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = FraudSource(rows=rows, seed=seed).load().table
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    wal = Path(f"{path}.wal")
    tmp_wal = Path(f"{tmp}.wal")
    tmp.unlink(missing_ok=True)  # left by a crashed run with the same pid: DuckDB would reuse it
    try:
        con = duckdb.connect(str(tmp))
        try:
            con.register("generated", table)
            con.execute("CREATE TABLE transactions AS SELECT * FROM generated")
        finally:
            con.close()
        # A write-ahead log beside an older file would be replayed into the new one.
        wal.unlink(missing_ok=True)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        tmp_wal.unlink(missing_ok=True)
    return path
