"""environment.yml (conda users) and pyproject.toml must list the same dependencies."""
import tomllib

import yaml

from tests.conftest import REPO


def _pyproject_requirements() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])


def _environment_requirements() -> set[str]:
    environment = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    return {r for r in pip_section if not r.startswith("-e")}


def test_environment_yml_matches_pyproject():
    in_pyproject, in_environment = _pyproject_requirements(), _environment_requirements()
    assert in_pyproject - in_environment == set(), "in pyproject.toml only"
    assert in_environment - in_pyproject == set(), "in environment.yml only"


def test_torch_is_pinned_exactly():
    assert "torch==2.13.0" in _pyproject_requirements()
