"""Curation: a chain of plain functions between a source's table and the model.

Each step takes a table and returns a new one (validate, quarantine, dedupe, PII), so each is
tested on three-row tables; ``chain.curate`` runs them in order.
"""
