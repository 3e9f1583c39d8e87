"""``factory.redact``: only credentials are masked, and environment references stay unresolved."""
from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from factory import redact


@pytest.mark.parametrize("given, written", [
    ("postgresql://u:p@h/db", "postgresql://u:***@h/db"),  # a one-letter password: the field, not every p
    ("postgresql+psycopg2://user:s3cr%40t@host:5432/db?sslmode=require",
     "postgresql+psycopg2://user:***@host:5432/db?sslmode=require"),
    ("data.source.url=postgresql://u:hunter2@h/db", "data.source.url=postgresql://u:***@h/db"),
    ("cannot query postgresql://u:***@h/db: No module named 'psycopg2'",
     "cannot query postgresql://u:***@h/db: No module named 'psycopg2'"),
    ("postgresql://u:${oc.env:DB_PASSWORD}@h/db", "postgresql://u:${oc.env:DB_PASSWORD}@h/db"),
    ("postgresql://u@h/db", "postgresql://u@h/db"),            # no password
    ("duckdb:////abs/file.duckdb", "duckdb:////abs/file.duckdb"),
    ("+data.source.password=hunter2", "+data.source.password=***"),
    ("python train.py logger.api_key=abc123 seed=1", "python train.py logger.api_key=*** seed=1"),
    ("data.source.token=${oc.env:TOKEN}", "data.source.token=${oc.env:TOKEN}"),
    ("model.tokenizer=bpe max_tokens=5 password authentication failed for user p",
     "model.tokenizer=bpe max_tokens=5 password authentication failed for user p"),
])
def test_text_masks_only_credentials(given, written):
    assert redact.text(given) == written


def test_container_masks_secret_keys_and_url_passwords():
    plain = {"db": {"password": "hunter2", "DB_TOKEN": 1234, "password_file": "/run/secret.txt", "pwd": None,
                    "url": "mysql://a:b@c/d", "urls": ["mysql://a:b@c/d"], "api_key": "${oc.env:KEY}"},
             "tags": ["p"], "lr": 0.1}
    assert redact.container(plain) == {
        "db": {"password": "***", "DB_TOKEN": "***", "password_file": "/run/secret.txt", "pwd": None,
               "url": "mysql://a:***@c/d", "urls": ["mysql://a:***@c/d"], "api_key": "${oc.env:KEY}"},
        "tags": ["p"], "lr": 0.1}


def test_resolved_keeps_env_credentials_unresolved(monkeypatch):
    monkeypatch.setenv("DB_PASSWORD", "hunter2")
    monkeypatch.setenv("DB_URL", "postgresql://u:hunter2@h/db")
    monkeypatch.setenv("API_TOKEN", "tok-42")
    monkeypatch.setenv("FACTORY_ROOT", "/data/root")
    cfg = OmegaConf.create({
        "paths": {"root_dir": "${oc.env:FACTORY_ROOT,.}", "output_dir": "${paths.root_dir}/outputs"},
        "source": {"url": "postgresql://u:${oc.env:DB_PASSWORD}@h/db", "other": "${oc.env:DB_URL}",
                   "query": "SELECT * FROM t WHERE k = '${oc.env:API_TOKEN}'", "password": "${oc.env:DB_PASSWORD}",
                   "literal": "postgresql://u:hunter2@h/db", "copy": "${source.literal}"},
        "seed": 3})
    written = redact.resolved(cfg)
    assert written == {
        "paths": {"root_dir": "/data/root", "output_dir": "/data/root/outputs"},  # not credentials: resolved
        "source": {"url": "postgresql://u:${oc.env:DB_PASSWORD}@h/db", "other": "${oc.env:DB_URL}",
                   "query": "SELECT * FROM t WHERE k = '${oc.env:API_TOKEN}'", "password": "${oc.env:DB_PASSWORD}",
                   "literal": "postgresql://u:***@h/db", "copy": "${source.literal}"},
        "seed": 3}
    text = redact.config_yaml(cfg)
    assert "hunter2" not in text and "tok-42" not in text
    assert OmegaConf.create(text).source.url == "postgresql://u:hunter2@h/db"  # read back, it resolves again


def test_resume_matches_a_run_whose_config_was_redacted(tmp_path, monkeypatch):
    """resume=auto compares this config with a run's config.yaml: both sides redacted alike."""
    from factory.rundir import resume

    monkeypatch.setenv("DB_PASSWORD", "hunter2")
    cfg = OmegaConf.create({"paths": {"run_dir": str(tmp_path)}, "seed": 1, "resume": "auto",
                            "data": {"url": "postgresql://u:${oc.env:DB_PASSWORD}@h/db",
                                     "backup": "postgresql://u:hunter2@h/db2"}})
    (tmp_path / "config.yaml").write_text(redact.config_yaml(cfg))
    assert resume.differences(cfg, tmp_path) == []


def test_text_masks_hydra_escaped_overrides():
    """In a sweep Hydra writes overrides with escaped colons (``.hydra/``, sweep.json)."""
    assert (redact.text(r"data.source.url=postgresql\://u\:hunter2@127.0.0.1\:9/db,seed=1")
            == r"data.source.url=postgresql\://u\:***@127.0.0.1\:9/db,seed=1")
    assert redact.text(r"postgresql\://u\:${oc.env:P}@h") == r"postgresql\://u\:${oc.env:P}@h"


def test_error_messages_naming_a_secret_key_stay_readable():
    message = "data.source.password: missing required value (set data.source.password=...)"
    assert redact.text(message) == "data.source.password: missing required value (set data.source.password=...)"


def test_a_bad_input_line_masks_the_password_it_quotes(capsys):
    import pytest

    from factory.errors import ConfigError, exit_bad_input

    error = ConfigError("data.source.url: cannot connect to postgresql://etl:hunter2@db.internal/sales")
    with pytest.raises(SystemExit) as exited:
        exit_bad_input(str(error), error)
    assert exited.value.code == 2
    assert capsys.readouterr().err == "error: data.source.url: cannot connect to postgresql://etl:***@db.internal/sales\n"
