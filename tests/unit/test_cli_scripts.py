"""The ``factory-<name>`` console scripts run the checkout's ``scripts/<name>.py``; without a
checkout (a non-editable ``pip install .``) they say so in one line and exit 2."""
from __future__ import annotations

from pathlib import Path

import pytest

from factory import cli


def test_without_the_checkouts_scripts_one_line_and_exit_2(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "SCRIPTS_DIR", tmp_path / "site-packages" / "scripts")  # as after `pip install .`
    with pytest.raises(SystemExit) as exited:
        cli.train()
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (f"error: factory-train runs scripts/train.py of a source checkout: install with "
                   f"`pip install -e .` from the repository (no {tmp_path}/site-packages/scripts/train.py)\n")


def test_runs_the_script_as_main(tmp_path: Path, monkeypatch, capsys):
    (tmp_path / "report.py").write_text("print(__name__, __file__)\n")
    monkeypatch.setattr(cli, "SCRIPTS_DIR", tmp_path)
    cli.report()
    assert capsys.readouterr().out == f"__main__ {tmp_path / 'report.py'}\n"
