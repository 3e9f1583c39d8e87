"""scripts/audit.py on a real registry's audit log and the read log: intact, then tampered with."""
from __future__ import annotations

import json
import subprocess
import sys

from factory.governance import access
from factory.registry.store import AUDIT, Registry
from tests.conftest import REPO, script_env


def _audit(tmp_path, *args):
    env = script_env(tmp_path)
    for name in ("FACTORY_REGISTRY", access.AUDIT_ENV, access.USER_ENV):
        env.pop(name, None)
    return subprocess.run([sys.executable, str(REPO / "scripts" / "audit.py"), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def _registry_with_history(tmp_path) -> Registry:
    registry = Registry(tmp_path / "registry")  # the default under FACTORY_ROOT
    for version, content in enumerate("ab", 1):
        staged = registry.root / ".staging" / content
        staged.mkdir(parents=True)
        (staged / "model.ckpt").write_text(content)  # the store never reads a checkpoint
        registry.add("fraud", staged, {"run_id": f"run-{content}"}, {"name": "val/loss", "mode": "min", "val": 0.5})
    registry.promote("fraud", 1, "production")
    registry.promote("fraud", 2, "production")  # archives v1: four lines in all
    return registry


def test_verify_passes_then_names_the_tampered_line(tmp_path, monkeypatch):
    registry = _registry_with_history(tmp_path)
    monkeypatch.setenv("FACTORY_USER", "alice")
    access.record_read("fraud", "restricted", "ab12", "run-a")  # the read log under FACTORY_ROOT/governance
    out = _audit(tmp_path, "verify")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"OK   {tmp_path}/governance/audit.jsonl: 1 line, head ")
    assert lines[1].startswith(f"OK   {tmp_path}/registry/audit.jsonl: 5 lines, head ")
    assert lines[1].endswith("anchored by audit.head")

    log = registry.root / AUDIT
    entries = log.read_text().splitlines(keepends=True)
    promoted = json.loads(entries[2])
    promoted["details"]["to"] = "staging"  # someone rewrites history
    entries[2] = json.dumps(promoted) + "\n"
    log.write_text("".join(entries))
    out = _audit(tmp_path, "verify")
    assert out.returncode == 1
    assert f"BAD  {log} line 3: hash mismatch: the line was edited" in out.stdout.splitlines()

    out = _audit(tmp_path, "verify", str(tmp_path / "governance" / "audit.jsonl"))  # one log named
    assert out.returncode == 0 and len(out.stdout.splitlines()) == 1


def test_verify_names_a_deleted_line_and_show_filters(tmp_path, monkeypatch):
    registry = _registry_with_history(tmp_path)
    log = registry.root / AUDIT
    entries = log.read_text().splitlines(keepends=True)
    log.write_text("".join(entries[:1] + entries[2:]))
    out = _audit(tmp_path, "verify", str(log))
    assert out.returncode == 1
    assert out.stdout.startswith(f"BAD  {log} line 2: prev does not match line 1's hash")

    monkeypatch.setenv("FACTORY_USER", "alice")
    access.record_read("fraud", "restricted", "ab12", "run-a")
    access.record_read("churn", "internal", "cd34", "run-b")
    out = _audit(tmp_path, "show", "--dataset", "churn")
    assert out.returncode == 0 and len(out.stdout.splitlines()) == 1
    assert "  alice  read  " in out.stdout and "dataset=churn" in out.stdout and "snapshot=cd34" in out.stdout
    out = _audit(tmp_path, "show", str(log), "--action", "archive", "--json")
    assert [json.loads(line)["version"] for line in out.stdout.splitlines()] == [1]


def test_a_deleted_log_is_caught_by_its_anchor(tmp_path):
    access.record_read("fraud", "restricted", "ab12", "run-a", identity="alice")
    (tmp_path / "governance" / "audit.jsonl").unlink()
    out = _audit(tmp_path, "verify")
    assert out.returncode == 1
    assert out.stdout.splitlines() == [f"BAD  {tmp_path}/governance/audit.jsonl: cannot read it (No such file or directory)",
                                       f"--   {tmp_path}/registry/audit.jsonl: no log yet"]


def test_show_of_a_missing_log_is_one_line_and_exit_2(tmp_path):
    out = _audit(tmp_path, "show", str(tmp_path / "nope.jsonl"))
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == f"error: audit log {tmp_path}/nope.jsonl: no such file (see audit.py verify)\n"


def test_verify_notes_torn_legacy_lines_and_show_stops_quietly_when_its_reader_does(tmp_path):
    log = tmp_path / "old.jsonl"  # a registry log of before the chain: the old writer appended after a torn line
    log.write_text('{"action": "register", "version": 1}\n{"action": "prom{"action": "register", "version": 2}\n')
    out = _audit(tmp_path, "verify", str(log))
    assert out.returncode == 0, out.stdout
    assert out.stdout.startswith(f"OK   {log}: 2 lines (2 unchained legacy lines first, 1 of them torn, not JSON")

    for i in range(3):  # the reader is gone before the first line: a few are enough
        access.record_read("fraud", "restricted", f"s{i}", "run-a", identity="alice")
    env = script_env(tmp_path)
    env.pop(access.AUDIT_ENV, None)
    shown = subprocess.Popen([sys.executable, str(REPO / "scripts" / "audit.py"), "show"], cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    shown.stdout.close()  # `| head` that has read enough
    assert shown.wait(timeout=120) == 141
    assert shown.stderr.read() == b""
