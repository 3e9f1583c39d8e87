"""Text sources: files, globs and folders of .txt/.jsonl; bad input in one line; the embedded corpus."""
from __future__ import annotations

import json

import pytest

from factory.data.text.corpus import file_corpus, resolve
from factory.data.text.embedded import embedded_corpus, named_documents
from factory.errors import DataError


def test_folder_glob_and_file_resolve_in_sorted_order(corpus_dir):
    files = resolve(str(corpus_dir))
    assert len(files) == 40 and files == sorted(files)
    assert resolve(str(corpus_dir / "doc0*.txt")) == files[:10]
    assert resolve(str(files[3])) == [files[3]]
    (corpus_dir / ".hidden.txt").write_text("secret")
    (corpus_dir / "notes.csv").write_text("a,b")
    assert resolve(str(corpus_dir)) == files


def test_no_match_and_wrong_type_are_one_line(tmp_path):
    with pytest.raises(DataError, match=r"data.source.path: no .txt or .jsonl files match .*\*.txt"):
        resolve(str(tmp_path / "*.txt"))
    with pytest.raises(DataError, match=r"data.source.path: .*missing does not exist"):
        resolve(str(tmp_path / "missing"))
    (tmp_path / "t.csv").write_text("a,b\n")
    with pytest.raises(DataError, match=r"t.csv is not a .txt or .jsonl file"):
        resolve(str(tmp_path / "t.csv"))


def test_jsonl_documents_and_bad_lines(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(json.dumps({"body": t, "id": i}) for i, t in enumerate(["one", "two", " "])) + "\n\n")
    assert file_corpus(str(good), text_field="body").read() == ["one", "two"]  # blank lines and documents skipped
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"text": oops}\n')
    with pytest.raises(DataError, match=r"data.source.path: .*bad.jsonl line 2 is not JSON"):
        file_corpus(str(bad)).read()
    with pytest.raises(DataError, match=r"data.source.text_field: .*good.jsonl line 1 has no 'text' field "
                                        r"\(fields: body, id\)"):
        file_corpus(str(good)).read()
    (tmp_path / "list.jsonl").write_text('["text"]\n')
    with pytest.raises(DataError, match=r"list.jsonl line 1 has no 'text' field \(a JSON list, not an object\)"):
        file_corpus(str(tmp_path / "list.jsonl")).read()
    number = tmp_path / "number.jsonl"
    number.write_text('{"text": 3}\n')
    with pytest.raises(DataError, match=r"number.jsonl line 1: 'text' is a int, not a string"):
        file_corpus(str(number)).read()


def test_not_utf8_names_the_file(tmp_path):
    (tmp_path / "latin.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin.txt is not UTF-8 text \(byte 3\)"):
        file_corpus(str(tmp_path / "latin.txt")).read()


def test_separator_and_cap(tmp_path):
    (tmp_path / "book.txt").write_text("chapter one\n\n\nchapter two\n\n\n\n\nchapter three")
    assert len(file_corpus(str(tmp_path / "book.txt")).read()) == 1
    parts = file_corpus(str(tmp_path / "book.txt"), document_separator=r"\n{3,}").read()
    assert [p.strip() for p in parts] == ["chapter one", "chapter two", "chapter three"]
    assert file_corpus(str(tmp_path / "book.txt"), document_separator=r"\n{3,}", max_bytes=25).read() == parts[:2]
    with pytest.raises(DataError, match=r"data.source.document_separator: .* is not a regular expression"):
        file_corpus(str(tmp_path / "book.txt"), document_separator="(")


def test_fingerprint_follows_content_and_settings(corpus_dir):
    first = file_corpus(str(corpus_dir)).fingerprint
    assert file_corpus(str(corpus_dir)).fingerprint == first
    assert file_corpus(str(corpus_dir), max_bytes=1000).fingerprint != first
    (corpus_dir / "doc00.txt").write_text("changed")
    assert file_corpus(str(corpus_dir)).fingerprint != first


def test_embedded_corpus_is_the_stdlib_without_tests():
    names = [name for name, _ in named_documents()]
    assert "json/decoder.py" in names and any(n.startswith("topics/") for n in names)
    assert not any(part in ("test", "tests", "site-packages") for n in names for part in n.split("/")[:-1])
    small = embedded_corpus(max_bytes=50_000)
    texts = small.read()
    assert 0 < sum(len(t.encode()) for t in texts) <= 50_000
    assert embedded_corpus(max_bytes=50_000).fingerprint == small.fingerprint
    assert embedded_corpus(max_bytes=100_000).fingerprint != small.fingerprint
    assert small.name.startswith("python-stdlib-")
