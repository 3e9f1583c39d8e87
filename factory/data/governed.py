"""One governed read of a ``data=`` config's source, for every command that reads one outside training.

Training reads through ``TabularDataModule`` (curation, snapshots); scoring, monitoring and
label export read a data config's table straight from its source. Each goes through
``load_governed`` so that the same rules hold: the access policy is checked before a byte is
read, PII columns are hashed or dropped before the table leaves this module, and the read is
appended to the audit log.

Example:
    >>> from factory.data.governed import load_governed
    >>> loaded = load_governed(cfg.data, purpose="score")  # doctest: +SKIP
"""
from __future__ import annotations

import os
from typing import Any

from factory.data.sources.base import LoadedTable


def load_governed(data_cfg: Any, run_id: str | None = None, purpose: str = "read",
                  pii_columns: dict[str, str] | None = None, source: Any = None) -> LoadedTable:
    """The table of ``data_cfg.source``, read as ``data_cfg.curation`` governs it.

    The classification is the stricter of ``curation.classification`` and the policy file's
    entry for the dataset (``factory.governance.access.effective``); a non-public read is
    authorized first (nothing is read when refused) and recorded after (who, dataset, run,
    ``purpose``).

    Args:
        data_cfg: a data config (DictConfig or mapping) with ``source`` and optionally ``curation``.
        run_id: the run or job the read is for (default ``$FACTORY_RUN_ID``).
        purpose: why it is read (``score``, ``monitor``, ``label-export``): in the audit entry.
        pii_columns: column -> ``hash`` | ``drop`` to apply; None: the config's own
            ``curation.columns.*.pii`` tags; ``{}``: none (the caller applies a model's tags itself).
        source: ``data_cfg.source`` already built (a caller that names it); None: built here.

    Raises:
        AccessError: the identity may not read the dataset.
        DataError: the source's own errors, a PII key missing, a malformed policy.
    """
    from factory.config.instantiate import build
    from factory.data.curation import pii
    from factory.governance import access

    source = source if source is not None else build(data_cfg["source"], "data.source")
    curation = _get(data_cfg, "curation") or {}
    dataset = _get(curation, "dataset") or source.name
    classification = access.authorize(dataset, _get(curation, "classification") or "public")
    loaded = source.load()
    tags = pii.tagged(data_cfg) if pii_columns is None else pii.check_columns(pii_columns)
    table = loaded.table
    if tags:  # strict=False: a source may lack a column the model's config drops
        table = pii.apply(table, tags, pii.load_key() if "hash" in tags.values() else None, strict=False)
    if classification != "public":
        access.record_read(dataset, classification, None, run_id or os.environ.get("FACTORY_RUN_ID"),
                           purpose=purpose)
    return LoadedTable(table, loaded.schema)


def _get(node: Any, key: str) -> Any:
    try:
        return node.get(key)
    except AttributeError:
        return None
