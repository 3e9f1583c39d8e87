"""The hash-chained audit log: each kind of tampering is detected and its first line named."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from factory.errors import DataError, FactoryError
from factory.governance import audit
from factory.registry.store import AUDIT, Registry, check_name


def _log(tmp_path: Path, n: int = 4) -> Path:
    path = tmp_path / "audit.jsonl"
    for i in range(n):
        audit.append(path, {"who": "alice", "action": "read", "dataset": f"d{i}"})
    return path


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def _rewrite(path: Path, lines: list[str]) -> None:
    path.write_text("".join(lines))


def test_an_intact_chain_verifies_and_links_each_line_to_the_previous(tmp_path):
    path = _log(tmp_path)
    lines = [json.loads(line) for line in _lines(path)]
    assert lines[0]["prev"] == audit.GENESIS
    assert [b["prev"] for b in lines[1:]] == [a["hash"] for a in lines[:-1]]
    assert all(line["hash"] == audit.line_hash(line) for line in lines)
    found = audit.check(path)
    assert (found.problem, found.lines, found.head, found.anchored) == (None, 4, lines[-1]["hash"], True)
    assert audit.read(path)[2] == {"who": "alice", "action": "read", "dataset": "d2"}
    head = json.loads(audit.head_path(path).read_text())
    assert (head["lines"], head["hash"], head["bytes"]) == (4, lines[-1]["hash"], path.stat().st_size)


def test_an_edited_line_is_named_by_its_hash(tmp_path):
    path = _log(tmp_path)
    lines = _lines(path)
    lines[1] = lines[1].replace('"d1"', '"d9"')
    _rewrite(path, lines)
    assert audit.verify(path) == f"{path} line 2: hash mismatch: the line was edited"


def test_an_edited_line_with_a_recomputed_hash_breaks_the_next_prev(tmp_path):
    path = _log(tmp_path)
    lines = _lines(path)
    forged = json.loads(lines[1])
    forged["dataset"] = "d9"
    forged["hash"] = audit.line_hash(forged)
    lines[1] = json.dumps(forged) + "\n"
    _rewrite(path, lines)
    assert audit.verify(path).startswith(f"{path} line 3: prev does not match line 2's hash")


@pytest.mark.parametrize("tamper, bad_line", [
    (lambda lines: lines[:1] + lines[2:], 2),                       # deleted
    (lambda lines: lines[:2] + [lines[1]] + lines[2:], 3),          # inserted (a copy of a valid line)
    (lambda lines: lines[:1] + [lines[2], lines[1]] + lines[3:], 2),  # reordered
    (lambda lines: lines[1:], 1),                                   # the first line deleted
])
def test_deleted_inserted_and_reordered_lines_are_named_by_prev(tmp_path, tamper, bad_line):
    path = _log(tmp_path)
    _rewrite(path, tamper(_lines(path)))
    problem = audit.verify(path)
    assert problem.startswith(f"{path} line {bad_line}: prev does not match"), problem


def test_an_unchained_inserted_line_and_a_non_json_line_are_named(tmp_path):
    path = _log(tmp_path)
    lines = _lines(path)
    _rewrite(path, lines[:2] + ['{"who": "mallory"}\n'] + lines[2:])
    assert audit.verify(path) == f"{path} line 3: no prev/hash: an unchained line inside the chain (inserted?)"
    _rewrite(path, lines[:3] + ["not json\n"] + lines[3:])
    assert audit.verify(path) == f"{path} line 4: not JSON"


def test_lines_cut_from_the_end_are_caught_by_the_anchor(tmp_path):
    path = _log(tmp_path)
    lines = _lines(path)
    _rewrite(path, lines[:-1])  # a valid chain of three: only the anchor knows there were four
    assert audit.verify(path) == (f"{path} line 4: missing: the log has 3 lines, audit.head recorded 4 "
                                  "(lines were cut from its end)")
    with pytest.raises(DataError, match="lines were cut from its end"):  # and nothing is appended to it
        audit.append(path, {"who": "mallory"})
    _rewrite(path, lines[:-1] + [lines[-1][:20]])  # cut mid-line
    assert audit.verify(path) == f"{path} line 4: incomplete, no newline at its end (a writer died mid-line, or the line was cut)"


def test_a_replaced_last_line_is_caught_by_the_anchor(tmp_path):
    path = _log(tmp_path)
    lines = _lines(path)
    last = json.loads(lines[-1])
    last["dataset"] = "other"
    last["hash"] = audit.line_hash(last)
    _rewrite(path, lines[:-1] + [json.dumps(last) + "\n"])
    assert audit.verify(path) == f"{path} line 4: not the line audit.head recorded as the last (hash differs)"


def test_without_the_anchor_the_chain_still_verifies(tmp_path):
    path = _log(tmp_path)
    audit.head_path(path).unlink()  # documented: the chain alone cannot see a cut tail
    assert audit.check(path).problem is None and not audit.check(path).anchored
    audit.append(path, {"who": "bob"})
    assert audit.verify(path) is None and audit.check(path).anchored


def test_a_torn_last_line_is_cut_by_the_next_append(tmp_path):
    path = _log(tmp_path, 2)
    with open(path, "a") as f:
        f.write('{"who": "killed mid-li')  # a writer died before its newline (the anchor never moved)
    assert "line 3: incomplete" in audit.verify(path)
    audit.append(path, {"who": "carol"})
    assert audit.verify(path) is None
    assert [e["who"] for e in audit.read(path)] == ["alice", "alice", "carol"]


def test_entries_are_strict_json_and_may_not_use_the_chain_keys(tmp_path):
    path = tmp_path / "audit.jsonl"
    line = audit.append(path, {"score": float("nan"), "n": 3})
    assert line["score"] is None and "NaN" not in path.read_text()
    with pytest.raises(DataError, match="'hash' is the chain's own key"):
        audit.append(path, {"hash": "x"})


def test_a_legacy_prefix_is_accepted_and_covered_by_the_first_chained_line(tmp_path):
    path = tmp_path / "audit.jsonl"
    path.write_text('{"action": "register", "version": 1}\n{"action": "promote", "version": 1}\n')
    assert audit.verify(path) is None  # unchained throughout: nothing to check yet
    audit.append(path, {"action": "register", "version": 2})
    found = audit.check(path)
    assert (found.problem, found.lines, found.legacy) == (None, 3, 2)
    lines = _lines(path)
    _rewrite(path, [lines[0], lines[1].replace("promote", "archive"), lines[2]])  # an edited legacy line
    assert audit.verify(path) == (f"{path} line 3: prev does not match the 2 unchained lines before it: "
                                  "a line was deleted, inserted or reordered here")


def test_the_registry_log_is_chained_and_reads_without_chain_fields(tmp_path):
    root = tmp_path / "registry"
    root.mkdir()
    (root / AUDIT).write_text('{"action": "register", "version": 1}\n')  # a log from before the chain
    registry = Registry(root)
    staged = root / ".staging" / "a"
    staged.mkdir(parents=True)
    (staged / "model.ckpt").write_text("weights")
    registry.add("fraud", staged, {"run_id": "r1"}, {"name": "val/loss", "mode": "min", "val": 0.5})
    registry.promote("fraud", 1, "staging")
    assert audit.verify(root / AUDIT) is None and audit.check(root / AUDIT).legacy == 1
    assert [e["action"] for e in registry.audit()] == ["register", "register", "promote"]
    assert all("hash" not in e and "prev" not in e for e in registry.audit())
    with pytest.raises(FactoryError, match="reserved"):  # the anchor lives beside the model folders
        check_name("audit.head")


_APPENDER = """
import os, sys, time
from factory.governance import audit
open(f"{sys.argv[1]}.ready-{sys.argv[2]}", "w").close()
while not os.path.exists(sys.argv[1] + ".go"):  # both start together: their appends interleave
    time.sleep(0.01)
for i in range(int(sys.argv[3])):
    audit.append(sys.argv[1], {"writer": sys.argv[2], "i": i})
    time.sleep(0.002)  # let the other writer in between (usual, not asserted: a loaded machine may not)
"""


def test_concurrent_appends_from_two_processes_stay_one_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    writers = [subprocess.Popen([sys.executable, "-c", _APPENDER, str(path), name, "40"]) for name in "ab"]
    deadline = time.monotonic() + 60
    while not all(Path(f"{path}.ready-{name}").exists() for name in "ab") and time.monotonic() < deadline:
        time.sleep(0.01)
    Path(f"{path}.go").touch()
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    assert audit.verify(path) is None
    entries = audit.read(path)
    assert len(entries) == 80
    for name in "ab":  # each writer's lines in its own order
        assert [e["i"] for e in entries if e["writer"] == name] == list(range(40))


def test_verify_while_another_process_appends_sees_no_cut_end(tmp_path):
    path = _log(tmp_path, 1)
    writer = subprocess.Popen([sys.executable, "-c", _APPENDER, str(path), "a", "150"])
    Path(f"{path}.go").touch()
    try:
        checks = 0
        while writer.poll() is None or checks == 0:  # each check reads the log and its anchor while lines arrive
            found = audit.check(path)
            assert found.problem is None, found.problem
            checks += 1
    finally:
        assert writer.wait(timeout=120) == 0
    assert audit.check(path).lines == 151


def test_a_log_longer_than_its_anchor_is_accepted_when_its_chain_holds(tmp_path):
    path = _log(tmp_path, 2)
    anchor = audit.head_path(path).read_text()
    audit.append(path, {"who": "bob"})
    audit.head_path(path).write_text(anchor)  # as a lock-free reader sees it: the anchor read before the append
    assert audit.check(path).problem is None


def test_torn_lines_in_the_legacy_prefix_are_a_note_not_an_error(tmp_path):
    path = tmp_path / "audit.jsonl"  # the old writer appended after a line torn mid-write
    path.write_text('{"action": "register", "version": 1}\n{"action": "prom{"action": "register", "version": 2}\n')
    found = audit.check(path)
    assert (found.problem, found.lines, found.legacy, found.torn) == (None, 2, 2, 1)
    audit.append(path, {"action": "promote", "version": 2})
    found = audit.check(path)
    assert (found.problem, found.lines, found.legacy, found.torn) == (None, 3, 2, 1)
    with open(path, "a") as f:  # after the chain started, still an error
        f.write("not json\n")
    assert audit.verify(path) == f"{path} line 4: not JSON"


def test_a_refusal_says_how_to_recover(tmp_path):
    path = _log(tmp_path)
    _rewrite(path, _lines(path)[:-1])
    with pytest.raises(DataError, match=r"run scripts/audit.py verify .*, then delete audit.head to accept"):
        audit.append(path, {"who": "mallory"})
    audit.head_path(path).unlink()  # the documented way out, once the cut is explained
    audit.append(path, {"who": "bob"})
    assert audit.verify(path) is None
