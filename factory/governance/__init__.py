"""Governance: who may read a dataset (``access``), a tamper-evident log of what happened
(``audit``), encryption at rest for restricted files (``encryption``) and lineage events.

Layer 2: imports only the basics (errors, console, files, redact, formatting), ``rundir`` and
third-party libraries, so ``factory.data`` and every stage above it may call it. docs/data.md
("Access and audit", "Encryption at rest") is the user's guide.
"""
