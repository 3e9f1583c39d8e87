"""SQL against a warehouse: DuckDB files directly, PostgreSQL through ADBC, others through SQLAlchemy.

The database does the projection and the filtering: ``load`` runs
``SELECT <features and target> FROM (<query>) AS q WHERE <filter>``, which DuckDB and
PostgreSQL plan as one query (columns nobody needs are never read, rows the filter
rejects never leave the database).
"""
from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pyarrow as pa

from factory import redact
from factory.data.sources.base import DataSource, LoadedTable
from factory.data.sources.declared import SchemaDeclaration, check_unique_columns, first_line, listing
from factory.data.sources.fraud import FraudSource
from factory.errors import DataError

#: Seconds to wait for a PostgreSQL server before giving up (a ``connect_timeout`` in the URL wins).
CONNECT_TIMEOUT_S = 10
#: Plain ``postgresql://`` URLs read through ADBC when it is installed: the server's binary COPY
#: straight into Arrow, 4x the rows/s of SQLAlchemy + psycopg + pandas (1M rows: 0.86 s vs 3.5 s).
_POSTGRES_SCHEMES = ("postgresql", "postgres")

Run = Callable[[str], pa.Table]  # one SQL string -> its result


class _QueryFailed(Exception):
    """A driver's error while running SQL, as one masked line; ``load`` says which SQL it was."""


class WarehouseSource(DataSource):
    """Runs one query, projected and filtered by the database, and declares its result's schema.

    ``duckdb:///relative/file.duckdb``, ``duckdb:////absolute/file.duckdb`` (SQLAlchemy's
    slash convention) or ``duckdb:///:memory:`` run through the DuckDB Python API, read
    only, straight to Arrow. ``postgresql://user:pw@host:5432/db`` reads through ADBC
    (``pip install 'factory[postgres]'``) when it is installed, else through SQLAlchemy
    and psycopg; a URL naming its driver (``postgresql+psycopg://``) and any other URL
    (``sqlite:///file.db``, ``mysql+pymysql://``...) goes through a SQLAlchemy engine and
    ``pandas.read_sql``, with that driver installed. NUMERIC/DECIMAL columns become
    float64. An empty result is returned as is.

    Only the declared ``features`` and ``target`` are selected (all columns when
    ``features`` is null), and ``filter`` is applied by the database.

    Example config (``conf/data/warehouse.yaml``)::

        source:
          _target_: factory.data.sources.WarehouseSource
          url: postgresql://reader:${oc.env:DB_PASSWORD}@db.internal:5432/payments
          query: SELECT * FROM transactions
          filter: channel = 'online'  # a SQL predicate, run by the database
          target: is_fraud
          features: [amount, hour, merchant_category]

    Args:
        url: ``duckdb:///path`` or any SQLAlchemy URL.
        query: the SQL to run: a ``SELECT`` (or anything the database accepts in a subquery).
        target, features, categorical, task, positive_label: see
            ``factory.data.sources.declared.declare_schema``.
        filter: a SQL predicate over the query's columns (``amount < 5000 AND channel =
            'online'``); ``None``: every row.

    Raises:
        DataError: from ``load``, one line starting ``cannot query <url>:`` with the URL's
            password as ``***``: a missing DuckDB file, an unreachable server, a wrong
            password, a missing driver, bad SQL (``data.source.query failed``), a bad filter
            (``data.source.filter ... failed``), a declared column the query does not return.
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
        filter: str | None = None,  # noqa: A002 - the config key's name
    ):
        self.url = str(url)
        self.query = query
        self.filter = filter
        self.declaration = SchemaDeclaration(target, features, categorical, task, positive_label)

    def load(self) -> LoadedTable:
        shown = redact.url(self.url)
        with self._connect() as (run, quote):
            try:  # the query's columns, no rows: a bad query is told apart from a bad filter
                columns = run(f"SELECT * FROM (\n{self._query()}\n) AS q LIMIT 0").column_names
            except _QueryFailed as err:
                raise DataError(f"cannot query {shown}: data.source.query failed: {err}") from None
            needed = self.columns(columns)
            try:
                table = run(self.select([quote(c) for c in needed] if needed else None))
            except _QueryFailed as err:
                what = f"data.source.filter {self.filter!r}" if self.filter else "data.source.query"
                raise DataError(f"cannot query {shown}: {what} failed: {err}") from None
        return self.declaration.apply(_plain_types(table), origin="the result of data.source.query")

    def select(self, columns: Sequence[str] | None = None) -> str:
        """The SQL ``load`` runs: ``columns`` (quoted identifiers; ``None``: all) of the query, filtered.

        Example:
            >>> WarehouseSource("duckdb:///w.duckdb", "SELECT * FROM t", "y", filter="x > 1").select(['"x"', '"y"'])
            'SELECT "x", "y" FROM (\\nSELECT * FROM t\\n) AS q\\nWHERE x > 1'
        """
        # Line breaks: a query ending in a -- comment does not swallow what follows.
        sql = f"SELECT {', '.join(columns) if columns else '*'} FROM (\n{self._query()}\n) AS q"
        return f"{sql}\nWHERE {self.filter}" if self.filter else sql

    def _query(self) -> str:
        return self.query.strip().rstrip(";").rstrip()  # a trailing ";" ends no subquery

    def columns(self, available: Sequence[str]) -> list[str] | None:
        """The columns to fetch, of ``available`` (the query's): features and target; ``None``: all."""
        check_unique_columns(list(available), "the result of data.source.query")
        declared = self.declaration
        if declared.features is None:
            return None
        features = [declared.features] if isinstance(declared.features, str) else list(declared.features)
        needed = list(dict.fromkeys([*map(str, features), str(declared.target)]))
        unknown = [c for c in needed if c not in available]
        if unknown:
            raise DataError(f"cannot query {redact.url(self.url)}: unknown column {listing(map(repr, unknown))}"
                            f" in data.source.features/target; data.source.query returns: {listing(available)}")
        return needed

    def _connect(self) -> contextlib.AbstractContextManager[tuple[Run, Callable[[str], str]]]:
        """An open connection as ``(run, quote)``: SQL -> Arrow table, column name -> identifier."""
        scheme = self.url.split("://", 1)[0].lower()
        if scheme == "duckdb":
            return self._duckdb()
        if scheme in _POSTGRES_SCHEMES and _has_module("adbc_driver_postgresql"):
            return self._adbc()
        return self._sqlalchemy()

    @contextlib.contextmanager
    def _duckdb(self) -> Iterator[tuple[Run, Callable[[str], str]]]:
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
        except duckdb.Error as err:
            raise DataError(f"cannot query {redact.url(self.url)}: {redact.text(first_line(err))}") from err

        def run(sql: str) -> pa.Table:
            try:
                relation = con.sql(sql)
                # DuckDB 2.0 deprecates arrow()/fetch_arrow_table() for to_arrow_table().
                return relation.to_arrow_table() if hasattr(relation, "to_arrow_table") else relation.arrow()
            except duckdb.Error as err:
                raise _QueryFailed(redact.text(first_line(err))) from err

        try:
            yield run, _quote
        finally:
            con.close()

    @contextlib.contextmanager
    def _adbc(self) -> Iterator[tuple[Run, Callable[[str], str]]]:
        import adbc_driver_manager
        import adbc_driver_postgresql.dbapi as adbc

        try:
            con = adbc.connect(_libpq_uri(self.url))
        except adbc_driver_manager.Error as err:
            raise DataError(f"cannot query {redact.url(self.url)}: {_adbc_reason(err)}") from err

        def run(sql: str) -> pa.Table:
            try:
                with con.cursor() as cursor:
                    cursor.execute(sql)
                    return cursor.fetch_arrow_table()
            except adbc_driver_manager.Error as err:
                raise _QueryFailed(_adbc_reason(err)) from err

        try:
            yield run, _quote
        finally:
            con.close()

    @contextlib.contextmanager
    def _sqlalchemy(self) -> Iterator[tuple[Run, Callable[[str], str]]]:
        import pandas as pd
        import sqlalchemy as sa

        shown = redact.url(self.url)
        try:
            url = sa.make_url(self.url)
            # A server that does not answer fails in seconds, not in the OS's minutes.
            connect_args = ({"connect_timeout": CONNECT_TIMEOUT_S} if url.get_backend_name() == "postgresql"
                            and "connect_timeout" not in url.query else {})
            engine = sa.create_engine(url, connect_args=connect_args)
            conn = engine.connect()
        except (sa.exc.SQLAlchemyError, ImportError, ValueError) as err:
            # Only a URL's password field is masked: a one-letter password left every such
            # letter of the message masked ("No module named '***syco***g'").
            reason = redact.text(first_line(err))
            if isinstance(err, ImportError):
                reason += " (install the database driver for this URL)"
            raise DataError(f"cannot query {shown}: {reason}") from err

        def run(sql: str) -> pa.Table:
            try:  # a str runs as-is (exec_driver_sql): no ":name" bind-parameter parsing
                return pa.Table.from_pandas(pd.read_sql(sql, conn), preserve_index=False)
            except (sa.exc.SQLAlchemyError, pd.errors.DatabaseError) as err:
                with contextlib.suppress(sa.exc.SQLAlchemyError):  # a lost connection cannot roll back
                    conn.rollback()  # a failed statement aborts a PostgreSQL transaction
                # pandas quotes the (multi-line) SQL before the reason: the driver's error says it.
                raise _QueryFailed(redact.text(first_line(err.__cause__ or err))) from err

        try:
            yield run, engine.dialect.identifier_preparer.quote
        finally:
            conn.close()
            engine.dispose()


def _quote(name: str) -> str:
    """A column name as an SQL identifier (DuckDB, PostgreSQL): double quotes, inner ones doubled."""
    return '"' + name.replace('"', '""') + '"'


def _adbc_reason(err: Exception) -> str:
    """ADBC's first line without its status code and driver tag: ``IO: [libpq] Failed to connect: ...``."""
    reason = re.sub(r"^[A-Z_]+: (?:\[libpq\] )?", "", first_line(err))
    return redact.text(re.sub(r"\s+", " ", reason))


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _libpq_uri(url: str) -> str:
    """A SQLAlchemy ``postgresql://`` URL as libpq takes it, with a short ``connect_timeout``."""
    parts = urlsplit(url)
    query = parts.query
    if "connect_timeout" not in dict(parse_qsl(query)):
        query = f"{query}&connect_timeout={CONNECT_TIMEOUT_S}" if query else f"connect_timeout={CONNECT_TIMEOUT_S}"
    return parts._replace(scheme="postgresql", query=query).geturl()


def _plain_types(table: pa.Table) -> pa.Table:
    """Driver-specific column types as plain Arrow: ADBC's PostgreSQL NUMERIC (an opaque
    extension over strings) as float64, other opaque types as their storage."""
    for i, field in enumerate(table.schema):
        if isinstance(field.type, pa.BaseExtensionType):
            column = pa.chunked_array([chunk.storage for chunk in table.column(i).chunks], field.type.storage_type)
            if getattr(field.type, "type_name", None) == "numeric":
                column = column.cast(pa.float64())
            table = table.set_column(i, field.name, column)
    return table


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
