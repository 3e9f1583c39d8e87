"""HTTP load on loopback for ``bench/serving.py``: ``wrk`` runs, the bare-endpoint floor, server processes.

``wrk`` (Debian package) keeps a fixed number of connections busy for a fixed time; a Lua
script sends POST bodies taken in turn from a file (one JSON body per line) and prints its
summary as JSON: latency percentiles in microseconds, requests, non-2xx responses and socket
errors. Every run is bounded by ``duration_s`` and ``connections``.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

# Each wrk thread reads the bodies once (init), then cycles through them; `done` runs once, in the main
# thread, after the threads have merged their statistics. wrk counts HTTP status > 399 in errors.status.
WRK_LUA = r"""
local bodies, i = {}, 0
function init(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
  path = args[2]
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
function request()
  i = i % #bodies + 1
  return wrk.format(nil, path, nil, bodies[i])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\nWRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "non2xx": %d, "connect_errors": %d, '
    .. '"read_errors": %d, "write_errors": %d, "timeouts": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, '
    .. '"max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""

# The HTTP floor: FastAPI + uvicorn with the server's settings (httptools, uvloop, one worker, no access
# log), a POST that reads the body and answers a constant. Nothing factory-specific is imported.
FLOOR_APP = r"""
import sys
import uvicorn
from fastapi import FastAPI, Request

app = FastAPI()
ANSWER = {"predictions": [{"prediction": 0, "score": 0.5}], "model_version": 1}

@app.post("/{path:path}")
async def constant(path: str, request: Request):
    await request.body()
    return ANSWER

@app.get("/ready")
async def ready():
    return {}

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools", workers=1,
            access_log=False, log_level="warning")
"""


def find_wrk(install: bool = True) -> str | None:
    """The ``wrk`` executable; installs the Debian package when missing and allowed (root or sudo)."""
    found = shutil.which("wrk")
    if found or not install or not shutil.which("apt-get"):
        return found
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    if prefix and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode != 0:
        return None
    for step in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
        if subprocess.run(prefix + step, capture_output=True, timeout=300).returncode != 0:
            return None
    return shutil.which("wrk")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wrk(url: str, bodies: Path, *, connections: int, duration_s: float, threads: int = 1,
        timeout_s: float = 10.0) -> dict:
    """One bounded ``wrk`` run of POSTs to ``url`` cycling through ``bodies`` (one JSON body per line).

    Returns the summary: ``requests``, ``rps``, ``p50_ms``/``p90_ms``/``p99_ms``, ``non2xx``, ``socket_errors``.
    """
    exe = find_wrk(install=False)
    if exe is None:
        raise RuntimeError("wrk is not installed")
    script = Path(tempfile.gettempdir()) / "factory-bench-wrk.lua"
    script.write_text(WRK_LUA)
    scheme_host, _, path = url.partition("//")[2].partition("/")
    command = [exe, f"-t{min(threads, connections)}", f"-c{connections}", f"-d{max(1, round(duration_s))}s",
               f"--timeout={timeout_s:g}s", "-s", str(script), f"http://{scheme_host}/", "--",
               str(bodies.resolve()), f"/{path}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration_s + timeout_s + 30)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-300:]}")
    raw = json.loads(line.removeprefix("WRK_JSON "))
    seconds = raw["duration_us"] / 1e6
    return {"connections": connections, "threads": min(threads, connections), "duration_s": round(seconds, 3),
            "requests": raw["requests"], "rps": raw["requests"] / seconds,
            "p50_ms": raw["p50_us"] / 1e3, "p90_ms": raw["p90_us"] / 1e3, "p99_ms": raw["p99_us"] / 1e3,
            "max_ms": raw["max_us"] / 1e3, "mean_ms": raw["mean_us"] / 1e3, "non2xx": raw["non2xx"],
            "socket_errors": sum(raw[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts"))}


class Process:
    """A server subprocess: started, waited on until ``ready_url`` answers 200, stopped with SIGTERM."""

    def __init__(self, command: list[str], ready_url: str, *, env: dict | None = None, cwd: Path | None = None,
                 log: Path, ready_timeout_s: float = 120.0):
        self.log = log
        self._log_file = open(log, "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=self._log_file, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"{command[1]} exited ({self.proc.returncode}): {self.tail()}")
            try:
                with urllib.request.urlopen(ready_url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{command[1]} not ready after {ready_timeout_s:.0f} s: {self.tail()}")

    def tail(self) -> str:
        lines = self.log.read_text(errors="replace").strip().splitlines()
        return " | ".join(lines[-3:]) if lines else "(no output)"

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM (the server drains and flushes its log), SIGKILL after ``timeout_s``; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()
        return self.proc.returncode

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def floor_server(workdir: Path) -> tuple[Process, str]:
    """Start the bare FastAPI endpoint; returns it and its base URL."""
    script = workdir / "floor_app.py"
    script.write_text(FLOOR_APP)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    return Process([sys.executable, str(script), str(port)], f"{base}/ready", log=workdir / "floor.log"), base
