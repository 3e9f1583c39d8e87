"""table_fingerprint: content only, whatever the chunking, the same in every process."""
from __future__ import annotations

import subprocess
import sys

import pyarrow as pa

from factory.data.fingerprint import table_fingerprint

COLUMNS = {"n": [1, None, 3, 4, 5, 6], "s": ["x", None, "zz", "w", "a", "b"], "f": [0.5, 1.5, None, 2.0, 3.0, 4.0]}


def test_chunking_slicing_and_metadata_do_not_matter():
    table = pa.table(COLUMNS)
    chunked = pa.concat_tables([table.slice(0, 2), table.slice(2, 3), table.slice(5)])
    assert chunked.column("s").num_chunks == 3
    assert table_fingerprint(chunked) == table_fingerprint(table)
    assert table_fingerprint(table.replace_schema_metadata({"pandas": "{}"})) == table_fingerprint(table)
    sliced = table.slice(2, 3)
    assert table_fingerprint(sliced) == table_fingerprint(pa.table(sliced.to_pydict()))


def test_different_content_gives_a_different_digest():
    digest = table_fingerprint(pa.table(COLUMNS))
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert table_fingerprint(pa.table({**COLUMNS, "n": [1, None, 3, 4, 5, 7]})) != digest
    assert table_fingerprint(pa.table({**COLUMNS, "n": [1, 0, 3, 4, 5, 6]})) != digest  # null is not 0
    assert table_fingerprint(pa.table(COLUMNS).rename_columns(["m", "s", "f"])) != digest
    narrower = pa.schema([("n", pa.int32()), ("s", pa.string()), ("f", pa.float64())])
    assert table_fingerprint(pa.table(COLUMNS).cast(narrower)) != digest


def test_digest_is_the_same_in_another_process():
    code = (
        "import pyarrow as pa; from factory.data.fingerprint import table_fingerprint; "
        f"print(table_fingerprint(pa.table({COLUMNS!r})))"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert other == table_fingerprint(pa.table(COLUMNS))
