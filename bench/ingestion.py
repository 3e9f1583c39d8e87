"""Streamed ingestion (data=files_stream): rows/s into training batches against a raw scan, and peak memory.

    python bench/ingestion.py --write                    # 1M, 10M, 30M rows x 1, 2 ranks: ~10 min idle (+data once)
    python bench/ingestion.py --sizes 1M --ranks 1 2     # a smoke run, ~1 min; nothing written without --write
    python bench/ingestion.py --sizes 1M --write --doc /tmp/benchmarks.md   # the writing, on a copy

Data: the fraud generator's table (``generate_transactions``: 10 features, one of them 1,000
merchant ids, nulls in two columns) written as a Spark-style directory under ``--data-dir``
(``part-NNNNN.parquet`` of 1M rows each in row groups of 131,072 rows, then ``_SUCCESS``),
generated once per size, vectorized (~2 s per 1M rows) and kept for reruns.

Each measurement runs in fresh child processes, one per rank, started together (2 ranks: two
processes, each reading its shard as a DDP rank does: ``StreamBatches(rank=r, world_size=2)``):

- ``pipeline``: ``StreamingDataModule(...).setup("fit")`` (the statistics pass: every row read
  once; each rank its own, with no ``stats_cache``), then ``--epochs`` passes of the train loader
  (``val_fraction=test_fraction=0``: every row is a training row; batches of 1,024 as the
  model receives them: float32 ``x_num``, int64 ``x_cat`` and ``y`` tensors, through the
  ``StreamLoader`` a run uses, with each of ``--workers`` DataLoader workers: 0, the rank's
  process alone; 2, two processes decoding and encoding their own row groups). rows/s: the
  best pass; for 2 ranks the rows of both over the slower rank's time. A rank reads the same
  row groups whatever its workers.
- ``raw``: the same rank's row groups read with ``pyarrow.parquet.ParquetFile.iter_batches``
  (same columns, 65,536-row batches), nothing else; best of ``--epochs``.
- ``cached`` (``--cache``, with 0 workers): the pipeline with ``data.encoded_cache`` in a fresh
  directory (shared by the ranks, deleted after): epoch 1 reads, encodes and writes each row
  group's encoded rows; epochs 2+ (best of them) map them and shuffle by a gather.
- ``encode``: the same row groups read as the pipeline reads them (text categoricals as Arrow
  dictionaries) and encoded by its ``BatchEncoder`` (``Preprocessor.transform``'s arrays), in the
  rank's process (no split, shuffle, tensors or workers): the floor the encoding sets, to read the gap by.

Ratio = pipeline rows/s / raw rows/s (target >= 0.8). Peak RSS: each child's own ``VmHWM`` at
exit (its peak since exec); target: the largest size within 1.3x of the smallest, per rank count.
Raw results: ``outputs/bench/ingestion.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import tabular
from tabular import _strict, commit, write_section

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "outputs" / "bench" / "ingestion.json"
FILE_ROWS = 1_000_000
ROW_GROUP = 131_072
BATCH = 1024
DEFAULT_SIZES = ["1M", "10M", "30M"]
HEADING = "## Ingestion"
BEGIN = "<!-- ingestion: written by bench/ingestion.py, do not edit by hand -->"
END = "<!-- /ingestion -->"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", nargs="+", default=DEFAULT_SIZES, help="rows per dataset: 200k, 1M, 30M ...")
    p.add_argument("--ranks", nargs="+", type=int, default=[1, 2], help="processes reading together")
    p.add_argument("--epochs", type=int, default=2, help="passes per child; the best is kept")
    p.add_argument("--workers", nargs="+", type=int, default=[0, 2], help="DataLoader workers per rank, each measured")
    p.add_argument("--cache", action=argparse.BooleanOptionalAction, default=True,
                   help="also measure data.encoded_cache: epoch 1 (writes) and epochs 2+ (reads); needs --epochs >= 2")
    p.add_argument("--data-dir", type=Path, default=REPO / "outputs" / "bench" / "ingestion-data",
                   help="generated Parquet directories, kept for reruns")
    p.add_argument("--write", action="store_true", help="rewrite the Ingestion section of --doc")
    p.add_argument("--doc", type=Path, default=tabular.DOC, help="the page --write rewrites")
    p.add_argument("--child", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def rows_of(size: str) -> int:
    scale = {"k": 1_000, "m": 1_000_000}.get(size[-1].lower(), 1)
    return int(float(size[:-1] if scale > 1 else size) * scale)


def dataset(rows: int, data_dir: Path) -> Path:
    """The generated directory of ``rows`` rows (made once: ``_SUCCESS`` marks it complete)."""
    import pyarrow.parquet as pq

    from factory.data.sources.fraud import generate_transactions

    out = data_dir / f"fraud-{rows}"
    if (out / "_SUCCESS").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for i, begin in enumerate(range(0, rows, FILE_ROWS)):
        table = generate_transactions(min(FILE_ROWS, rows - begin), 0.015, seed=1000 + i, world_seed=42)
        pq.write_table(table, out / f"part-{i:05d}.parquet", row_group_size=ROW_GROUP)
    (out / "_SUCCESS").touch()
    print(f"generated {rows:,} rows in {time.perf_counter() - start:.1f} s -> {out}", flush=True)
    return out


def child(spec: dict) -> dict:
    """One rank's measurement (run in its own process); its own peak RSS included."""
    from factory.data.sources import FileSource
    from factory.data.streaming import StreamBatches, StreamingDataModule

    source = FileSource(spec["path"], target="is_fraud")
    rank, world = spec["rank"], spec["world"]
    out: dict = {"rank": rank}
    start = time.perf_counter()
    dm = StreamingDataModule(source, batch_size=BATCH, val_fraction=0.0, test_fraction=0.0)
    dm.setup("test")  # "fit"'s pass, without "fit"'s demand for validation rows (every row is train here)
    out["setup_s"] = time.perf_counter() - start
    passes = []
    if spec["kind"] in ("pipeline", "cached"):
        from factory.data.encoded_cache import EncodedCache
        from factory.data.streaming import StreamLoader

        cache = None
        if spec["kind"] == "cached":
            cache = EncodedCache.for_stream(spec["cache_dir"], dm.fingerprint, dm.preprocessor.state_dict(),
                                            dm.split_seed, 0.0, 0.0, dm.batch_rows, dm.stream.columns)
        for epoch in range(spec["epochs"]):
            data = StreamBatches(dm.stream, dm.preprocessor, dm._unit_rows, "train", BATCH, dm.split_seed, 0.0, 0.0,
                                 rank=rank, world_size=world, workers=spec["workers"], shuffle=True, drop_last=True,
                                 cache=cache)
            start, rows = time.perf_counter(), 0
            for x_num, x_cat, y in StreamLoader(data, num_workers=spec["workers"], start_epoch=epoch):
                rows += len(y)
            passes.append((rows, time.perf_counter() - start))
    else:
        import pyarrow.parquet as pq

        data = StreamBatches(dm.stream, dm.preprocessor, dm._unit_rows, "train", BATCH, dm.split_seed, 0.0, 0.0,
                             rank=rank, world_size=world, workers=spec["workers"])
        shares = data.shares(0)  # this rank's readers: w * world + rank (one reader per worker)
        units = [dm.stream.units[i] for g in range(rank, len(shares), world) for i in shares[g]]
        import pyarrow as pa

        from factory.data.batch_encoder import BatchEncoder

        encode = BatchEncoder(dm.preprocessor).encode if spec["kind"] == "encode" else None
        dictionaries = dm.stream.dictionary_columns if encode is not None else None
        for _ in range(spec["epochs"]):
            start, rows = time.perf_counter(), 0
            for unit in units:
                for batch in pq.ParquetFile(unit.path, read_dictionary=dictionaries).iter_batches(
                        65_536, [unit.row_group], dm.stream.columns):
                    if encode is not None:
                        encode(pa.Table.from_batches([batch]))
                    rows += batch.num_rows
            passes.append((rows, time.perf_counter() - start))
    if spec["kind"] == "cached":  # epoch 1 writes the cache; the best of the later ones reads it
        out["first_rows"], out["first_s"] = passes[0]
        passes = passes[1:]
    out["rows"], out["s"] = min(passes, key=lambda p: p[1])
    import resource

    # This process's peak, and its largest DataLoader worker's (a forked worker's count starts from the
    # pages it shares with this process: an upper bound of what it holds itself).
    out["peak_rss_mb"] = max(_vm_hwm_kib(), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    return out


def _vm_hwm_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


def measure(kind: str, path: Path, world: int, epochs: int, workers: int) -> dict:
    """``world`` children started together, each a rank; their figures combined."""
    if kind == "cached":  # a fresh cache directory beside the data, shared by the ranks, deleted after
        import shutil
        import tempfile

        cache_dir = tempfile.mkdtemp(prefix="encoded-", dir=path.parent)
        try:
            return _measure(kind, path, world, epochs, workers, cache_dir)
        finally:
            shutil.rmtree(cache_dir, ignore_errors=True)
    return _measure(kind, path, world, epochs, workers, None)


def _measure(kind: str, path: Path, world: int, epochs: int, workers: int, cache_dir: str | None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, __file__, "--child", json.dumps(
        {"kind": kind, "path": str(path), "rank": r, "world": world, "epochs": epochs, "workers": workers,
         "cache_dir": cache_dir})],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO) for r in range(world)]
    ranks = []
    for proc in procs:
        stdout, stderr = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"{kind} child failed: {stderr.strip().splitlines()[-1:]}")
        ranks.append(json.loads(stdout.strip().splitlines()[-1]))
    rows, slowest = sum(r["rows"] for r in ranks), max(r["s"] for r in ranks)
    out = {"kind": kind, "world": world, "rows": rows, "s": slowest, "rows_per_s": rows / slowest,
           "setup_s": max(r["setup_s"] for r in ranks), "peak_rss_mb": max(r["peak_rss_mb"] for r in ranks),
           "ranks": ranks}
    if kind == "cached":
        out["first_rows_per_s"] = sum(r["first_rows"] for r in ranks) / max(r["first_s"] for r in ranks)
    return out


def render(results: list[dict], meta: dict) -> str:
    lines = [f"Commit {meta['commit']}, {meta['machine']}; `python bench/ingestion.py {meta['argv']}`. "
             "Rows/s: training rows (batches of 1,024 as the model receives them) per second of the slower "
             "rank, best of the passes; raw: the same row groups through `ParquetFile.iter_batches`; raw + encode: "
             "those read as the pipeline reads them (text categoricals as dictionaries) and encoded by its "
             "`BatchEncoder`. Setup: the statistics pass (every row once), each rank "
             "its own here (no `stats_cache`: a run's ranks share one). Peak RSS: per process (VmHWM; with workers, "
             "the largest of the rank and its workers). Cached (0 workers): `data.encoded_cache` in a fresh "
             "directory; epoch 1 writes it, epoch 2+ (best) reads it; ratios to the raw scan.",
             "", "| rows | ranks | workers | pipeline rows/s | raw scan rows/s | ratio | raw + encode rows/s "
             "| setup pass s | peak RSS MB (pipeline) | peak RSS MB (raw) | cached epoch 1 rows/s (ratio) "
             "| cached epoch 2+ rows/s (ratio) |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        p, raw = r["pipeline"], r["raw"]
        lines.append(f"| {r['dataset_rows']:,} | {r['world']} | {r['workers']} | {p['rows_per_s']:,.0f} "
                     f"| {raw['rows_per_s']:,.0f} | {p['rows_per_s'] / raw['rows_per_s']:.2f} "
                     f"| {r['encode']['rows_per_s']:,.0f} | {p['setup_s']:.1f} | {p['peak_rss_mb']:.0f} "
                     f"| {raw['peak_rss_mb']:.0f} | {_cached(r, 'first_rows_per_s')} | {_cached(r, 'rows_per_s')} |")
    for world, workers in sorted({(r["world"], r["workers"]) for r in results}):
        rss = [(r["dataset_rows"], r["pipeline"]["peak_rss_mb"]) for r in results
               if (r["world"], r["workers"]) == (world, workers)]
        if len(rss) > 1:
            (small, a), (large, b) = min(rss), max(rss)
            lines.append(f"\n{world} rank(s), {workers} worker(s): peak RSS at {large:,} rows is {b / a:.2f}x that "
                         f"at {small:,} (target <= 1.3x).")
    pending = [size for size in DEFAULT_SIZES if rows_of(size) not in {r["dataset_rows"] for r in results}]
    if pending:
        lines.append(f"\nPending: {', '.join(pending)} rows (not run here); `make bench-ingestion` runs every size "
                     "(~10 min on an idle machine).")
    return "\n".join(lines)


def _cached(result: dict, key: str) -> str:
    if "cached" not in result:
        return "-"
    rate = result["cached"][key]
    return f"{rate:,.0f} ({rate / result['raw']['rows_per_s']:.2f})"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    results = []
    for size in args.sizes:
        rows = rows_of(size)
        path = dataset(rows, args.data_dir)
        for world in args.ranks:
            raw = measure("raw", path, world, args.epochs, 0)
            encode = measure("encode", path, world, args.epochs, 0)
            for workers in args.workers:
                pipeline = measure("pipeline", path, world, args.epochs, workers)
                results.append({"dataset_rows": rows, "world": world, "workers": workers, "pipeline": pipeline,
                                "raw": raw, "encode": encode})
                if args.cache and workers == 0 and args.epochs >= 2:
                    cached = results[-1]["cached"] = measure("cached", path, world, args.epochs, 0)
                    print(f"{rows:>11,} rows, {world} rank(s), encoded cache: epoch 1 "
                          f"{cached['first_rows_per_s']:,.0f} rows/s (ratio "
                          f"{cached['first_rows_per_s'] / raw['rows_per_s']:.2f}), epoch 2+ "
                          f"{cached['rows_per_s']:,.0f} rows/s (ratio {cached['rows_per_s'] / raw['rows_per_s']:.2f})",
                          flush=True)
                print(f"{rows:>11,} rows, {world} rank(s), {workers} worker(s): pipeline "
                      f"{pipeline['rows_per_s']:,.0f} rows/s, raw {raw['rows_per_s']:,.0f} rows/s (ratio "
                      f"{pipeline['rows_per_s'] / raw['rows_per_s']:.2f}), raw + encode {encode['rows_per_s']:,.0f} "
                      f"rows/s, setup {pipeline['setup_s']:.1f} s, peak RSS {pipeline['peak_rss_mb']:.0f} MB "
                      f"(raw {raw['peak_rss_mb']:.0f} MB)", flush=True)
    argv = argv if argv is not None else sys.argv[1:]
    meta = {"commit": commit(), "machine": tabular.machine(), "argv": " ".join(argv)}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(_strict({"meta": meta, "results": results}), indent=1))
    text = render(results, meta)
    print(text)
    if args.write:
        tabular.DOC = args.doc  # write_section writes tabular.DOC
        write_section(text, HEADING, BEGIN, END)


if __name__ == "__main__":
    main()
