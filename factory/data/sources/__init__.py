"""Data sources: each loads one Arrow table and declares its schema (see ``base.DataSource``).

Heavy libraries (scikit-learn, pandas, SQLAlchemy, DuckDB, fsspec) are imported inside
``load``, so importing this package and instantiating sources from configs stays cheap.
"""
from factory.data.sources.base import DataSource, LoadedTable
from factory.data.sources.files import FileSource
from factory.data.sources.fraud import FraudSource
from factory.data.sources.sklearn_bundled import SklearnSource
from factory.data.sources.warehouse import WarehouseSource, build_demo_warehouse

__all__ = [
    "DataSource",
    "FileSource",
    "FraudSource",
    "LoadedTable",
    "SklearnSource",
    "WarehouseSource",
    "build_demo_warehouse",
]
