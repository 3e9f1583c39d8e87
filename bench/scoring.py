"""Batch scoring for ``bench/serving.py``: generated fraud Parquet files, ``scripts/score.py`` on each
(a child process: its own peak RSS), and the in-process ONNX Runtime loop over the same record batches.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CHUNK_ROWS = 500_000  # rows generated and written at a time: the generator's memory stays flat
BATCH_ROWS = 65_536  # record batch of the in-process loop: conf/score.yaml's batch_rows default


def fraud_parquet(rows: int, data_dir: Path) -> Path:
    """``<data_dir>/fraud-<rows>.parquet``: generated fraud transactions without the label, made once.

    Each chunk is its own seed (``FraudSource``'s generator), so memory is that of one chunk at any size.
    """
    import pyarrow.parquet as pq

    from factory.data.sources.fraud import generate_transactions

    path = data_dir / f"fraud-{rows}.parquet"
    if path.exists() and pq.ParquetFile(path).metadata.num_rows == rows:
        return path
    data_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".parquet.partial")
    writer = None
    try:
        for seed, start in enumerate(range(0, rows, CHUNK_ROWS)):
            chunk = generate_transactions(min(CHUNK_ROWS, rows - start), 0.015, seed).drop_columns(["is_fraud"])
            writer = writer or pq.ParquetWriter(partial, chunk.schema)
            writer.write_table(chunk, row_group_size=128 * 1024)
    finally:
        if writer is not None:
            writer.close()
    partial.replace(path)  # a generation cut short is never taken for a complete file
    return path


def run_score(command: list[str], *, env: dict, cwd: Path, timeout_s: float) -> dict:
    """Run ``command`` (scripts/score.py ...) as a child; wall time, exit code and the child's own peak RSS.

    The peak is the child's ``VmHWM`` (its address space's high-water mark since exec), read every
    50 ms until it exits: ``wait4``'s ``ru_maxrss`` is no less than this process's own RSS at the
    spawn (Linux carries the forked address space's mark over exec), so under a bench process
    holding hundreds of MB it measured the parent. A rise in the child's last 50 ms is missed.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = start + timeout_s
    peak_kib = 0
    while True:
        peak_kib = max(peak_kib, _vm_hwm_kib(proc.pid))
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.05)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    output = proc.stdout.read().decode(errors="replace")
    proc.stdout.close()
    return {"wall_s": wall, "returncode": proc.returncode, "peak_rss_mb": peak_kib / 1024,
            "tail": " | ".join(output.strip().splitlines()[-3:])}


def _vm_hwm_kib(pid: int) -> int:
    """A live process's own peak RSS in KiB (``/proc/<pid>/status`` ``VmHWM``); 0 once it has exited."""
    try:
        with open(f"/proc/{pid}/status") as status:
            return next((int(line.split()[1]) for line in status if line.startswith("VmHWM:")), 0)
    except OSError:
        return 0


def batch_columns(batch, predictor) -> dict[str, np.ndarray]:
    """A record batch's feature columns as ``predict_columns`` takes them: float64 with NaN, strings with ''."""
    columns = {}
    for name in predictor.features:
        column = batch.column(name)
        if predictor.kinds[name] == "categorical":
            columns[name] = np.asarray(column.fill_null("").to_numpy(zero_copy_only=False), dtype=object)
        else:
            columns[name] = column.cast("float64").to_numpy(zero_copy_only=False)  # nulls become NaN
    return columns


def ort_over_file(path: Path, predictor, batch_rows: int) -> dict:
    """The limit: read ``path`` in record batches of ``batch_rows`` and score each with ONNX Runtime."""
    import pyarrow.parquet as pq

    rows, start = 0, time.perf_counter()
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=predictor.features):
        predictor.predict_columns(batch_columns(batch, predictor))
        rows += batch.num_rows
    wall = time.perf_counter() - start
    return {"rows": rows, "wall_s": wall, "rows_s": rows / wall}


def score_command(ref: str, registry: Path, source: Path, output: Path, overrides: list[str]) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve().parents[1] / "scripts" / "score.py"), f"model={ref}",
            f"registry={registry}", f"input={source}", f"output={output}", *overrides]


def manifest_timing(output: Path) -> dict:
    """Rows and scoring seconds from the output's manifest (start-up excluded), and rows/s from them."""
    found = [output / name for name in ("_score.json", "score.json") if (output / name).exists()]
    try:
        manifest = json.loads(found[0].read_text())
    except (IndexError, OSError, ValueError) as e:
        return {"manifest_error": f"no readable manifest in {output} ({e})"}
    seconds = next((manifest[k] for k in ("duration_s", "seconds", "elapsed_s", "time_s", "wall_s")
                    if isinstance(manifest.get(k), (int, float))), None)
    rows = manifest.get("rows")
    out = {"manifest_rows": rows, "manifest_s": seconds}
    if seconds and rows:
        out["rows_s"] = rows / seconds
    return out
