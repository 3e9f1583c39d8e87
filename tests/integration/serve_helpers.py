"""A real model server for tests: scripts/serve.py on a free loopback port, stopped with SIGTERM."""
from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import REPO, script_env

SERVE = str(REPO / "scripts" / "serve.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    process: subprocess.Popen
    url: str
    log: Path

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM (uvicorn drains in-flight requests, runs the app's shutdown) and the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start(tmp_path: Path, *overrides: str, env: dict | None = None, timeout: float = 180) -> Server:
    """Start ``scripts/serve.py <overrides> port=<free>`` and wait until ``/v2/health/ready`` answers."""
    port = free_port()
    log = tmp_path / f"server-{port}.log"
    environment = {**script_env(tmp_path), "OMP_NUM_THREADS": "1", **(env or {})}
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, SERVE, *overrides, f"port={port}"], cwd=tmp_path,
                                   env=environment, stdout=out, stderr=subprocess.STDOUT)
    server = Server(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited {process.returncode}:\n{server.output()}")
        try:
            if httpx.get(server.url + "/v2/health/ready", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    raise AssertionError(f"server not ready after {timeout} s:\n{server.output()}")


def run_serve(tmp_path: Path, *overrides: str, env: dict | None = None, timeout: float = 120):
    """Run scripts/serve.py to completion (a start-up that must fail)."""
    environment = {**script_env(tmp_path), **(env or {})}
    return subprocess.run([sys.executable, SERVE, *overrides], capture_output=True, text=True, cwd=tmp_path,
                          env=environment, timeout=timeout)


def metric(text: str, name: str, /, **labels: str) -> float | None:
    """The value of one sample in Prometheus text, or None."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        series, _, value = line.rpartition(" ")
        base, _, label_text = series.partition("{")
        if base != name:
            continue
        found = dict(part.split("=", 1) for part in label_text.rstrip("}").split(",") if part) if label_text else {}
        found = {k: v.strip('"') for k, v in found.items()}
        if all(found.get(k) == v for k, v in labels.items()):
            return float(value)
    return None

