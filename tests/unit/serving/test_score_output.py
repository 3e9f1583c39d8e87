"""Batch scoring's output side (factory.serving.score_output): parts written by a thread into a temp
directory that becomes the output only when complete; any failure leaves no output and no temp."""
from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from factory.errors import DataError
from factory.serving.score_output import Parts, check_output, progress_bar


def batch(start: int, n: int) -> pa.RecordBatch:
    return pa.record_batch({"x": pa.array(range(start, start + n)), "s": pa.array([str(i) for i in range(n)])})


def test_parts_roll_by_size_and_schema_and_publish_whole(tmp_path):
    out = tmp_path / "scored"
    with Parts(out, part_rows=5) as parts:
        for i in (0, 3, 6):
            parts.write(batch(i, 3))
        parts.write(batch(9, 3).cast(pa.schema({"x": pa.float64(), "s": pa.string()})))  # another input file's types
        parts.close()
        assert not out.exists() and parts.tmp.is_dir() and parts.tmp.name.startswith(".scored.partial-")
        parts.publish()
    assert parts.files == [{"name": "part-00000.parquet", "rows": 6}, {"name": "part-00001.parquet", "rows": 3},
                           {"name": "part-00002.parquet", "rows": 3}]
    assert pq.read_table(out).column("x").to_pylist() == list(range(12))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scored"]


def test_an_error_while_writing_leaves_nothing(tmp_path):
    out = tmp_path / "scored"
    with pytest.raises(RuntimeError, match="boom"):
        with Parts(out) as parts:
            parts.write(batch(0, 3))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_the_writer_threads_error_reaches_the_caller(tmp_path):
    out = tmp_path / "scored"
    unwritable = pa.record_batch({"x": pa.array([(1, 2, 3)], pa.month_day_nano_interval())})  # no Parquet type
    with pytest.raises(pa.ArrowNotImplementedError):
        with Parts(out) as parts:
            parts.write(batch(0, 3))
            parts.write(unwritable)
            for _ in range(5):
                parts.write(batch(0, 3))
            parts.write(batch(0, 3))
            parts.close()
    assert list(tmp_path.iterdir()) == []


def test_check_output_refuses_a_file_or_a_nonempty_directory(tmp_path):
    (tmp_path / "empty").mkdir()
    assert check_output(tmp_path / "empty") == tmp_path / "empty"
    assert check_output(tmp_path / "new") == tmp_path / "new"
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "part-00000.parquet").write_text("x")
    (tmp_path / "file").write_text("x")
    for name in ("full", "file"):
        with pytest.raises(DataError, match=rf"^output=\S+/{name}: exists and is not empty; a completed scoring "
                                            r"is never overwritten \(choose a new directory\)$"):
            check_output(tmp_path / name)


def test_publish_replaces_an_empty_directory_but_not_one_filled_meanwhile(tmp_path):
    out = tmp_path / "scored"
    out.mkdir()
    with Parts(out) as parts:
        parts.write(batch(0, 2))
        parts.close()
        parts.publish()
    assert pq.read_table(out).num_rows == 2
    late = tmp_path / "late"
    with pytest.raises(DataError, match=r"^output=\S+/late: appeared while scoring .*nothing was overwritten$"):
        with Parts(late) as parts:
            parts.write(batch(0, 2))
            parts.close()
            late.mkdir()
            (late / "theirs.txt").write_text("x")
            parts.publish()
    assert [p.name for p in late.iterdir()] == ["theirs.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["late", "scored"]


def test_progress_bar_only_when_asked_or_on_a_terminal(monkeypatch):
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert progress_bar(10, None) is None and progress_bar(10, False) is None
    bar = progress_bar(100, True)
    task = bar.add_task("scoring m@1", total=100)
    with bar:
        bar.update(task, completed=100)
    text = bar.console.file.getvalue()
    assert "scoring m@1" in text and "100 rows" in text and "rows/s" in text
    assert progress_bar(None, True) is not None  # rows unknown (CSV): no bar, still rows and rows/s
