"""Data for ``bench/monitoring.py``: the reference profile, generated windows with a fixed score,
request logs in the server's format, and the child process that monitors one (peak RSS).

The score is a **fixed logistic function of the features** (``score``), not a trained model: the
generator's main risk terms with fixed weights, so the bench needs no training run and every row
of a 10M-row log is scored in numpy. Like any model's score it is a function of the features
only, so it moves when they move (prediction drift) and never when only the labels do.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

WORLD = 42  # the reference's world (and table seed): every window is traffic from it
FLUSH_ROWS = 2048  # conf/serve.yaml log.flush_rows: a served log's row groups are its flushes
PERIOD_ROWS = 1_000_000  # rows per closed period file (about what log.rotate_mb=64 holds)
CHUNK_ROWS = 500_000  # rows generated at a time: the writer's memory stays flat
REQUEST_ROWS = 16  # rows per logged request
LOG_VERSION = 1  # in a cached log's folder name: bump when ``score`` or the log's making changes
_CATEGORY_RISK = {"electronics": 0.8, "travel": 0.6, "airlines": 0.7, "online_gaming": 1.2, "digital_goods": 0.9,
                  "gift_cards": 1.4, "jewelry": 1.1, "grocery": -0.8, "restaurants": -0.6, "utilities": -1.0}
_CHANNEL_RISK = {"online": 0.8, "chip": -0.4, "contactless": -0.2, "swipe": 0.4}


def kinds() -> dict[str, str]:
    from factory.data.sources.fraud import FraudSource

    return dict(FraudSource().schema.features)


def score(table) -> np.ndarray:
    """The fixed score: sigmoid of a weighted sum of the features (missing distance: 8 km; unknown levels: 0)."""
    def col(name):
        return np.asarray(table.column(name).to_numpy(zero_copy_only=False))

    amount, hour = col("amount").astype(float), col("hour").astype(float)
    distance = np.nan_to_num(table.column("distance_from_home_km").to_numpy(zero_copy_only=False).astype(float), nan=8.0)
    logit = (-5.5 + 0.5 * (np.log(np.maximum(amount, 0.01)) - 4.0) + 1.1 * ((hour < 5) | (hour == 23))
             + 0.35 * np.log1p(np.maximum(distance, 0.0)) + 0.9 * col("is_foreign")
             + 0.8 * (col("card_age_days") < 30) + 0.1 * col("tx_velocity_24h")
             + _weights(table.column("merchant_category"), _CATEGORY_RISK)
             + _weights(table.column("channel"), _CHANNEL_RISK))
    return 1.0 / (1.0 + np.exp(-logit))


def _weights(column, weights: dict) -> np.ndarray:
    """Each row's weight for its level (0 for a missing or unlisted one)."""
    encoded = column.fill_null("").combine_chunks().dictionary_encode()
    table = np.array([weights.get(level, 0.0) for level in encoded.dictionary.to_pylist()] + [0.0])
    return table[encoded.indices.to_numpy()]


def window(rows: int, seed: int, **knobs):
    """``rows`` transactions of the reference's world from ``seed`` (drift knobs as ``FraudSource``'s), with ``score``."""
    import pyarrow as pa

    from factory.data.sources import FraudSource

    table = FraudSource(rows=rows, seed=seed, world_seed=WORLD, **knobs).load().table
    return table.append_column("score", pa.array(score(table)))


def reference(rows: int):
    """The reference profile: the seed-42 table (the default world) and its fixed scores."""
    from factory.monitoring.profile import build_profile

    table = window(rows, WORLD)
    return build_profile(table.drop_columns(["score"]), kinds(), table.column("score").to_numpy(),
                         meta={"task": "binary", "source": f"fraud seed {WORLD}, {rows} rows", "score": "fixed"})


def request_log(rows: int, data_dir: Path) -> Path:
    """``<data_dir>/log-<rows>-v<LOG_VERSION>/requests``: ``rows`` logged rows in the server's format, made once.

    Tables by ``factory.serving.request_log_files.rows_table`` (requests of ``REQUEST_ROWS``
    rows, as ``RequestLog`` builds them), written with its ``write_options`` as closed periods of
    ``PERIOD_ROWS`` rows whose row groups are flushes of ``FLUSH_ROWS`` (what compaction makes).
    Chunks of ``CHUNK_ROWS`` generated rows, each its own seed of the reference's world.
    """
    import pyarrow.parquet as pq

    from factory.serving.request_log_files import rows_table, write_options

    directory = data_dir / f"log-{rows}-v{LOG_VERSION}" / "requests"
    done = directory / ".complete"
    if done.exists():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.parquet"):
        old.unlink()
    features = list(kinds())
    start_us, written, writer, period = 1_796_083_200_000_000, 0, None, 0  # 2026-12-01T00:00Z, 10 ms a row
    try:
        for chunk_no, first in enumerate(range(0, rows, CHUNK_ROWS)):
            chunk = window(min(CHUNK_ROWS, rows - first), 1_000 + chunk_no)
            columns = {f: _logged(chunk.column(f)) for f in features}
            scores = chunk.column("score").to_numpy()
            for flush in range(0, chunk.num_rows, FLUSH_ROWS):
                entries = [{"request_id": f"r{written + i:09d}", "model": "fraud_detection", "version": 1,
                            "time": start_us + (written + i) * 10_000,
                            "features": {f: columns[f][flush + i:flush + i + REQUEST_ROWS] for f in features},
                            "prediction": np.where(scores[flush + i:flush + i + REQUEST_ROWS] >= 0.5, "1", "0"),
                            "score": scores[flush + i:flush + i + REQUEST_ROWS], "probabilities": {}}
                           for i in range(0, min(FLUSH_ROWS, chunk.num_rows - flush), REQUEST_ROWS)]
                table = rows_table(entries)
                if writer is None:
                    period += 1
                    writer = pq.ParquetWriter(directory / f"20261201T000000000000Z-pid0-{period:04d}.parquet",
                                              table.schema, **write_options(table.schema))
                writer.write_table(table)  # one row group per flush
                written += table.num_rows
                if written % PERIOD_ROWS == 0:
                    writer.close()
                    writer = None
    finally:
        if writer is not None:
            writer.close()
    done.write_text(str(written))
    return directory


def _logged(column) -> np.ndarray:
    """A generated column as the server hands it to the log: float64 with NaN, or object strings with None."""
    import pyarrow as pa

    if pa.types.is_string(column.type):
        return np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)
    return column.cast(pa.float64()).to_numpy(zero_copy_only=False)


def scan(source: Path, columns: list[str], *, monitor_profile=None, files: bool = False) -> dict:
    """One pass over the log: the drift monitor over ``iter_batches``, or (no profile) a raw pyarrow scan.

    The raw scan: ``pyarrow.dataset`` ``to_batches`` over the same files and columns (its default
    readahead), each batch touched (rows and bytes summed); no monitoring. ``files``: instead,
    each file in turn through ``pyarrow.parquet.ParquetFile.iter_batches`` (no dataset, no readahead).
    """
    start = time.perf_counter()
    rows = 0
    if monitor_profile is None:
        import pyarrow.dataset as ds
        import pyarrow.parquet as pq

        from factory.monitoring.window import source_files

        nbytes = 0
        paths = [str(p) for p in source_files(source)]
        batches = (b for p in paths for b in pq.ParquetFile(p).iter_batches(batch_size=65_536, columns=columns)) \
            if files else ds.dataset(paths, format="parquet").to_batches(columns=columns, batch_size=65_536)
        for batch in batches:
            rows += batch.num_rows
            nbytes += batch.nbytes
        drifted = None
    else:
        from factory.monitoring.drift import DriftMonitor
        from factory.monitoring.window import iter_batches

        monitor = DriftMonitor(monitor_profile)
        for batch in iter_batches(source, columns=columns):
            monitor.update(batch)
        result = monitor.result()
        rows, drifted = result["rows"], result["drifted"] + (["score"] if result["score"]["drifted"] else [])
    seconds = time.perf_counter() - start
    return {"rows": rows, "seconds": seconds, "rows_s": rows / seconds, "drifted": drifted}


def child(argv: list[str]) -> None:
    """``python bench/monitoring_data.py monitor|raw|files LOG PROFILE_DIR``: one pass, its figures and peak RSS as JSON."""
    mode, log, profile_dir = argv
    from factory.monitoring.profile import load_profile

    profile = load_profile(profile_dir)
    import pyarrow.dataset  # noqa: F401 - imports outside the timed pass
    import scipy.spatial.distance  # noqa: F401
    import scipy.stats  # noqa: F401

    columns = [*profile.features, "score"]
    figures = scan(Path(log), columns, monitor_profile=profile if mode == "monitor" else None, files=mode == "files")
    print(json.dumps({**figures, "vmhwm_mb": peak_rss_mb()}))


def peak_rss_mb() -> float | None:
    """This process's own peak RSS since exec (``VmHWM``). ``wait4``'s ``ru_maxrss`` of a child is no less
    than the parent's peak at the spawn (Linux carries the old address space's high-water mark over exec)."""
    try:
        line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return None
    return int(line.split()[1]) / 1024


if __name__ == "__main__":
    child(sys.argv[1:])
