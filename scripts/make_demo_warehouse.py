"""Build the demo DuckDB warehouse (table ``transactions``) that ``data=warehouse`` queries.

Run: python scripts/make_demo_warehouse.py  (options: --rows 50000 --seed 42 --path FILE;
the default path is data/demo/warehouse.duckdb under the repository root)
"""
import argparse
from pathlib import Path

from factory.data.sources.warehouse import build_demo_warehouse

DEFAULT_PATH = Path(__file__).resolve().parents[1] / "data" / "demo" / "warehouse.duckdb"


def main() -> None:
    parser = argparse.ArgumentParser(description="Build the demo DuckDB warehouse.")
    parser.add_argument("--rows", type=int, default=50000, help="transactions to generate")
    parser.add_argument("--seed", type=int, default=42, help="generator seed")
    parser.add_argument("--path", type=Path, default=DEFAULT_PATH, help="DuckDB file to write")
    args = parser.parse_args()
    path = build_demo_warehouse(args.path, rows=args.rows, seed=args.seed)
    print(f"wrote {path}: {args.rows:,} rows in table transactions")


if __name__ == "__main__":
    main()
