"""One schema for a set of files: decided from all of them, or one line saying where they disagree.

A glob or a directory is one table. Its column types must come from every file, not
from whichever file sorts first (``pyarrow.dataset`` takes the first file's schema and
casts the others to it, so a string column there turns a numeric column into text).
"""
from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa
import pyarrow.types as pat

from factory.data.sources.declared import listing
from factory.errors import DataError


def check_text(table: pa.Table, where: str, encoding: str) -> None:
    """A CSV column read as bytes is text in another encoding than ``encoding``: say so.

    Arrow keeps cells that are not valid UTF-8 as ``binary``; the type alone would send
    the user to ``data.source.categorical``, which cannot help.
    """
    for field in table.schema:
        if pat.is_binary(field.type) or pat.is_large_binary(field.type):
            values = table.column(field.name).drop_null()
            sample = values[0].as_py() if len(values) else b""
            raise DataError(
                f"{where} is not valid {encoding} text (column {field.name!r} holds bytes such as "
                f"{sample[:30]!r}); set data.source.encoding to the file's encoding, e.g. latin-1 or cp1252"
            )


def unify(schemas: Mapping[str, pa.Schema], where: str, inferred: bool) -> pa.Schema:
    """The schema of the table the files ``schemas`` (file name -> schema) make together.

    Every file must hold the same columns. Types that widen without loss of meaning
    (int to float, int32 to int64, an all-empty column to anything) are promoted. Where a
    column is text in one file and numbers in another: for CSV (``inferred`` types) the
    column becomes text, and the table's checks then decide from all its values (numbers
    with a few stray words are reported); for Parquet the files' own types disagree,
    which is reported.

    Args:
        schemas: each file's schema, in read order; the first gives the column order.
            Keys name the files in messages (paths relative to ``where`` read best).
        where: the path, glob or directory, for messages.
        inferred: the types were guessed from the values (CSV), not stored (Parquet).

    Raises:
        DataError: columns missing from some files, or types that do not fit together,
            in one line naming the columns and files.
    """
    files = list(schemas)
    if len(files) < 2:
        return schemas[files[0]]
    columns = list(dict.fromkeys(name for schema in schemas.values() for name in schema.names))
    absent = {c: [f for f in files if c not in schemas[f].names] for c in columns}
    partial = {c: fs for c, fs in absent.items() if fs}
    if partial:
        parts = [f"{c!r} missing from {_files(fs)}" for c, fs in partial.items()]
        raise DataError(
            f"files matching {where} hold different columns: {'; '.join(parts[:3])}"
            f"{f' (and {len(parts) - 3} more)' if len(parts) > 3 else ''}; make every file hold the same columns"
        )
    fields = []
    for name in schemas[files[0]].names:
        types = {f: _plain(schemas[f].field(name).type) for f in files}
        fields.append(pa.field(name, _common(name, types, where, inferred)))
    return pa.schema(fields)


def _common(name: str, types: dict[str, pa.DataType], where: str, inferred: bool) -> pa.DataType:
    known = {f: t for f, t in types.items() if not pat.is_null(t)}  # an all-empty column fits any type
    distinct = list(dict.fromkeys(known.values()))
    if not distinct:
        return pa.null()
    if len(distinct) == 1:
        return distinct[0]
    try:
        merged = pa.unify_schemas([pa.schema([(name, t)]) for t in distinct], promote_options="permissive")
        return merged.field(name).type
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        pass
    if inferred and any(pat.is_string(t) for t in distinct):
        return pa.string()
    by_type = {t: [f for f, k in known.items() if k == t] for t in distinct}
    shown = ", ".join(f"{t} in {_files(fs)}" for t, fs in by_type.items())
    raise DataError(f"column {name!r} has different types in the files matching {where}: {shown}")


def _plain(kind: pa.DataType) -> pa.DataType:
    # A dictionary-encoded string column (pandas categoricals in Parquet) is a string column.
    return kind.value_type if pat.is_dictionary(kind) else kind


def _files(files: list[str]) -> str:
    return listing(files, 3)
