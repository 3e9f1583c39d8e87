"""``factory.config.callables``: a hook's dotted name is checked without importing its module."""
from __future__ import annotations

import subprocess
import sys

import pytest

from factory.config.callables import problem
from tests.conftest import REPO


@pytest.mark.parametrize("name", ["factory.tracking.loggers.after_run", "factory.reports.after_run",
                                  "json.dumps", "os.path.join"])
def test_functions_that_exist_pass(name):
    assert problem(name) is None


@pytest.mark.parametrize(("name", "expected"), [
    ("factory.nowhere.hook", "'factory.nowhere.hook': no module factory.nowhere"),
    ("factory.errors.nothing", "'factory.errors.nothing': module factory.errors has no function nothing"),
    ("json.dumpz", "'json.dumpz': module json has no function dumpz"),
    ("factory.errors.ConfigError.x", "'factory.errors.ConfigError.x': no module factory.errors.ConfigError"),
    ("hook", "'hook' is not a dotted path to a function (package.module.function)"),
    ("factory..hook", "'factory..hook' is not a dotted path to a function (package.module.function)"),
])
def test_a_bad_name_is_one_line_naming_it(name, expected):
    assert problem(name) == expected


def test_checking_imports_neither_the_hook_nor_torch():
    code = ("import sys; from factory.config.callables import problem; "
            "assert problem('factory.tracking.loggers.after_run') is None; "
            "assert problem('factory.reports.after_run') is None; "
            "print(sorted(m for m in ('torch', 'factory.tracking', 'factory.reports') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]"
