"""``curate``: a source's table through validate -> quarantine -> dedupe -> PII, with its report.

Each step is a plain function (table in, new table out) in its own module; this one only
runs them in order and counts. The DataModule writes the quarantine file and the snapshot,
then splits what ``curate`` kept.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pyarrow as pa

from factory.data.curation import columns as rules
from factory.data.curation import dedupe, quarantine
from factory.data.sources.base import LoadedTable
from factory.data.spec import TableSchema
from factory.errors import ConfigError

#: ``data.curation`` as the code reads it when a key is left out (conf/_datamodule.yaml sets the same).
DEFAULTS = {"dataset": None, "classification": "public", "columns": {}, "unique": [], "max_quarantine": 0.05,
            "dedupe": True, "scan_text": True, "store": None}
CLASSIFICATIONS = ("public", "internal", "restricted")


@dataclass(frozen=True)
class Curated:
    """What curation kept, what it set aside, and the counts ``run.json`` records.

    Attributes:
        table: the rows to split and train on (pii columns hashed or dropped).
        schema: the source's schema less dropped pii columns (a hashed feature is categorical).
        quarantine: ``factory.data.curation.quarantine``'s table (no rows when none failed).
        report: ``{"rows_in", "rows_out", "quarantined", "by_rule", "duplicates", "pii",
            "pii_findings"}``, strict-JSON-able.
    """

    table: pa.Table
    schema: TableSchema
    quarantine: pa.Table
    report: dict


def settings(cfg: dict | None) -> dict:
    """``cfg`` over ``DEFAULTS``; an unknown key or classification raises ``ConfigError`` naming it."""
    cfg = dict(cfg or {})
    unknown = [k for k in cfg if k not in DEFAULTS]
    if unknown:
        raise ConfigError(f"data.curation.{unknown[0]}: unknown key; expected one of {', '.join(DEFAULTS)}")
    merged = {**DEFAULTS, **{k: v for k, v in cfg.items()}}
    merged["columns"] = {str(c): dict(r or {}) for c, r in (merged["columns"] or {}).items()}
    merged["unique"] = list(merged["unique"] or [])
    if merged["classification"] not in CLASSIFICATIONS:
        raise ConfigError(f"data.curation.classification: expected one of {', '.join(CLASSIFICATIONS)}, "
                          f"got {merged['classification']!r}")
    rules.check_rules(merged["columns"], merged["unique"])
    return merged


def curate(loaded: LoadedTable, cfg: dict | None, run_id: str | None = None, source: str = "source") -> Curated:
    """Validate, quarantine, dedupe and hide PII in ``loaded``'s table.

    Without declared ``columns`` or ``unique`` nothing is validated (the source's inferred
    schema holds, and ``factory.data.validation`` still runs on the result); exact duplicates
    are still dropped when ``dedupe`` and text columns still scanned when ``scan_text``.

    Args:
        loaded: the source's table and schema.
        cfg: ``data.curation`` (``DEFAULTS`` fill what it leaves out).
        run_id: the run curating (``FACTORY_RUN_ID``), or None outside a run; unused by the
            steps themselves, kept so a caller's record can name it.
        source: the source's name, for messages.

    Returns:
        The ``Curated`` table, schema, quarantine and report; the table is ``loaded.table``
        itself when no step changed a row.

    Raises:
        DataError: a declared column the table lacks, or a whole column failing its dtype.
        ConfigError: a rule that is not a column rule, or a pii column that is the target.
    """
    cfg = settings(cfg)
    pii = rules.pii_columns(cfg["columns"])
    schema = _schema_without_pii(loaded.schema, pii)
    key = None
    if "hash" in pii.values():
        from factory.data.curation import pii as pii_step

        key = pii_step.load_key()
    failures = rules.validate(loaded.table, cfg["columns"], cfg["unique"], source)
    kept, bad_rows = quarantine.split(loaded.table, failures)
    held = quarantine.quarantine_table(loaded.table, failures, pii, key)
    duplicates = 0
    if cfg["dedupe"]:
        kept, duplicates = dedupe.drop_duplicates(kept)
    findings: dict[str, dict[str, int]] = {}
    if pii or cfg["scan_text"]:
        from factory.data.curation import pii as pii_step

        if pii:
            kept = pii_step.apply(kept, {c: a for c, a in pii.items() if c in kept.column_names}, key)
        if cfg["scan_text"]:
            text = [f.name for f in kept.schema if f.name not in pii and _is_text(f.type)]
            findings = {c: dict(kinds) for c, kinds in pii_step.scan(kept, text).items() if kinds} if text else {}
    report = {"rows_in": loaded.table.num_rows, "rows_out": kept.num_rows, "quarantined": int(len(bad_rows)),
              "by_rule": quarantine.by_rule(failures), "duplicates": duplicates, "pii": dict(pii),
              "pii_findings": findings}
    return Curated(kept, schema, held, report)


def curation_record(datamodule) -> dict:
    """``run.json``'s ``data.snapshot``, ``data.curation`` (the report) and ``data.quarantine`` (file or null).

    Any set-up DataModule: one without curation (a streaming one) records nulls.
    """
    return {"snapshot": getattr(datamodule, "snapshot_id", None),
            "curation": getattr(datamodule, "curation_report", None),
            "quarantine": getattr(datamodule, "quarantine_path", None)}


def _schema_without_pii(schema: TableSchema, pii: dict[str, str]) -> TableSchema:
    """The schema once pii columns are hashed (text: categorical) or dropped (gone)."""
    if schema.target in pii:
        raise ConfigError(f"data.curation.columns.{schema.target}.pii: the target cannot be hashed or dropped")
    if not pii:
        return schema
    features = {c: ("categorical" if pii.get(c) == "hash" else kind)
                for c, kind in schema.features.items() if pii.get(c) != "drop"}
    return dataclasses.replace(schema, features=features)


def _is_text(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t)
