"""Shell completion through the installed console scripts (``factory-train``, ...): the README's
``eval "$(factory-train -sc install=bash)"`` binds to the command, and its completion function,
run by bash as on a Tab from another directory, offers the config's groups and options."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import script_env

BIN = Path(sys.executable).parent
COMMANDS = ["factory-train", "factory-evaluate", "factory-report", "factory-schedule"]


def test_console_scripts_are_installed():
    missing = [c for c in COMMANDS if not (BIN / c).exists()]
    assert not missing, f"{missing} not in {BIN}: reinstall (make install, or pip install -e .)"


def _complete(tmp_path: Path, line: str) -> list[str]:
    """What bash offers for ``line`` once the README's eval line has run (Tab at the end of the line)."""
    script = f'''
eval "$(factory-train -sc install=bash)"
COMP_LINE='{line}'
COMP_POINT=${{#COMP_LINE}}
words=($COMP_LINE)
COMP_CWORD=$(( ${{#words[@]}} - 1 ))
[[ "$COMP_LINE" == *" " ]] && COMP_CWORD=${{#words[@]}}
hydra_bash_completion
printf '%s\\n' "${{COMPREPLY[@]}}"
'''
    env = {**script_env(tmp_path), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "NameError" not in done.stderr, done.stderr
    return done.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completion_offers_groups_and_options(tmp_path: Path):
    done = subprocess.run([str(BIN / "factory-train"), "-sc", "install=bash"], capture_output=True, text=True,
                          env=script_env(tmp_path), cwd=tmp_path, timeout=60)
    assert done.stdout.rstrip().endswith("-F hydra_bash_completion factory-train"), done.stdout[-300:]
    assert "experiment=" in _complete(tmp_path, "factory-train exp")
    options = _complete(tmp_path, "factory-train experiment=")
    assert {"experiment=digits", "experiment=fraud_detection"} <= set(options), options
