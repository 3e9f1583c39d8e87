"""The labeling loop against a real Label Studio server: label.py export's tasks and config go in
through label-studio-sdk, an annotator's labels come out as Label Studio's own JSON export, and
label.py import turns them into a snapshot.

Label Studio pins its own Django stack, so it lives in its own venv (``.cache/label-studio/venv``,
gitignored; ~1 GB), never in .venv. Installing it took 65 s and 321 s on this 2-core machine (the
second under other people's load), more than CI's 30-minute budget can spare, so the test runs
only where that venv is already installed, or with ``FACTORY_LABEL_STUDIO=1``, which installs it
first (once per clone); otherwise it skips, saying so. ``FACTORY_LABEL_STUDIO=0`` always skips.
The server (``label-studio start`` on a free loopback port, a temporary data directory, a user
and API token from its environment variables; telemetry, Sentry and the version check off)
takes 55-75 s to answer: its first start creates the SQLite database.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from factory import registry
from factory.data import snapshots
from factory.files import locked, write_json
from tests.conftest import REPO, script_env
from tests.integration.helpers import TINY_DIAGNOSIS, trained_run

pytestmark = pytest.mark.slow

HOME = REPO / ".cache" / "label-studio"
VENV = HOME / "venv"
# sentry-sdk 3 dropped an option Label Studio 1.23 passes at start (TypeError: send_default_pii)
PACKAGES = ["label-studio>=1.20", "label-studio-sdk>=1.0", "sentry-sdk>=2.16,<3"]
TOKEN = "factory-label-studio-test-token"  # a throwaway server's legacy API token, never a real one
CLIENT = Path(__file__).with_name("label_studio_client.py")


@pytest.fixture(scope="session")
def label_studio_python() -> Path:
    """Label Studio's venv's python, installed on first use (a lock keeps xdist workers to one install)."""
    wanted = os.environ.get("FACTORY_LABEL_STUDIO")
    if wanted == "0":
        pytest.skip("FACTORY_LABEL_STUDIO=0: the real Label Studio server test is off")
    python, stamp = VENV / "bin" / "python", HOME / "installed.json"
    installed = python.is_file() and stamp.is_file() and json.loads(stamp.read_text()).get("packages") == PACKAGES
    if not installed and wanted != "1":
        pytest.skip(f"Label Studio is not installed in {VENV} (1-5 min, ~1 GB, too long for every CI run): "
                    "FACTORY_LABEL_STUDIO=1 installs it and runs this test")
    HOME.mkdir(parents=True, exist_ok=True)
    with locked(HOME / ".install.lock"):
        done = json.loads(stamp.read_text()) if stamp.is_file() else {}
        if done.get("packages") != PACKAGES or not python.is_file():
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
            pip = subprocess.run([str(python), "-m", "pip", "install", "-q", *PACKAGES], capture_output=True, text=True)
            assert pip.returncode == 0, f"pip install {' '.join(PACKAGES)} failed: {pip.stderr[-3000:]}"
            write_json(stamp, {"packages": PACKAGES, "install_seconds": round(time.perf_counter() - started, 1)})
    return python


@pytest.fixture(scope="session")
def server(label_studio_python, tmp_path_factory):
    """``(url, token)`` of a Label Studio server on 127.0.0.1, its data in a temp directory."""
    data = tmp_path_factory.mktemp("label-studio")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "HOME": str(data),  # its default data folder is ~/.local/share/label-studio
           "LABEL_STUDIO_BASE_DATA_DIR": str(data / "base"), "LABEL_STUDIO_USERNAME": "annotator@example.com",
           "LABEL_STUDIO_PASSWORD": "factory-test-password", "LABEL_STUDIO_USER_TOKEN": TOKEN,
           "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true", "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": "",
           "COLLECT_ANALYTICS": "false", "LATEST_VERSION_CHECK": "false"}
    log = (data / "server.log").open("w")
    started = time.perf_counter()
    process = subprocess.Popen([str(VENV / "bin" / "label-studio"), "start", "--no-browser", "--internal-host",
                                "127.0.0.1", "-p", str(port), "--host", url, "--data-dir", str(data / "base"),
                                "--enable-legacy-api-token"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=data)
    try:
        _wait_healthy(url, process, data / "server.log", timeout=300)
        (HOME / "last_start_seconds").write_text(f"{time.perf_counter() - started:.1f}\n")
        yield url, TOKEN
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_healthy(url: str, process: subprocess.Popen, log: Path, timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"label-studio exited {process.returncode}: {log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    pytest.fail(f"label-studio not healthy after {timeout} s: {log.read_text()[-3000:]}")


def test_tasks_through_a_real_label_studio_and_back_as_a_snapshot(server, tmp_path, monkeypatch):
    url, token = server
    root = tmp_path / "root"
    run_dir = trained_run(root, TINY_DIAGNOSIS)
    monkeypatch.setenv("FACTORY_ROOT", str(root))
    version = registry.register(run_dir, registry=root / "registry")
    registry.promote(version.name, version.version, "production", registry=root / "registry")
    base = snapshots.list_snapshots(root / "data")[0]["id"]
    out, export = tmp_path / "batch", tmp_path / "project-export.json"

    def label(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(REPO / "scripts" / "label.py"), *args], capture_output=True,
                              text=True, env=script_env(root), cwd=tmp_path, timeout=300)

    exported = label("export", "model=diagnosis@production", "data=breast_cancer", "n=4", f"out={out}")
    assert exported.returncode == 0, exported.stderr[-2000:]
    session = subprocess.run([str(VENV / "bin" / "python"), str(CLIENT), url, token, str(out), str(export)],
                             capture_output=True, text=True, timeout=300)
    assert session.returncode == 0, session.stderr[-3000:]
    summary = json.loads(session.stdout.strip().splitlines()[-1])
    assert summary["tasks"] == 4 and summary["predictions"] == 4 and len(summary["labels"]) == 3
    tasks = json.loads(export.read_text())
    assert {t["data"]["row_id"] for t in tasks} == set(json.loads((out / "labeling.json").read_text())["row_ids"])
    assert all(t["predictions"] for t in tasks)  # the pre-annotations went in and came back

    refused = label("import", str(export), f"tasks={out}", f"base={base}")
    assert refused.returncode == 2
    (line,) = refused.stderr.strip().splitlines()
    assert f"(row_id {summary['unlabeled']}): no label" in line and "1 problem(s)" in line

    imported = label("import", str(export), f"tasks={out}", f"base={base}", "unlabeled=skip")
    assert imported.returncode == 0, imported.stderr[-2000:]
    sid = imported.stdout.split()[1].rstrip(":")
    assert f"3 labeled row(s) appended to {base} (572 rows, 1 unlabeled task(s) skipped)" in imported.stdout
    snap = snapshots.read(sid, root / "data")
    assert snap.record["parent"] == base
    rows = json.loads((out / "labeling.json").read_text())["row_ids"]
    expected = [summary["labels"][r] for r in rows if r in summary["labels"]]
    assert sorted(snap.table.slice(569).column("target").to_pylist()) == sorted(expected)
