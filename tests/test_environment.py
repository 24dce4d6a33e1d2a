"""The set-up files agree with each other: pyproject ↔ environment.yml, README ↔ CI."""
from __future__ import annotations

import difflib
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["test"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    got = [p for p in pip if p != "-e ."]
    diff = "\n".join(difflib.unified_diff(wanted, got, "pyproject.toml", "environment.yml", lineterm=""))
    assert got == wanted, f"environment.yml's pip list is out of step with pyproject.toml:\n{diff}"
    assert "-e ." in pip, "environment.yml should install the package itself (`-e .`)"
    assert "python>=3.11" in env["dependencies"]
    for name in ("jupyterlab", "torch", "transformers", "trl", "matplotlib", "ipywidgets", "nbval"):
        assert any(re.match(rf"{name}\b", w) for w in wanted), name


def test_readme_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    first_block = text.split("```")[1]
    assert "make lab" in first_block and "make test" in first_block


def test_ci_calls_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_license_and_citation():
    assert "MIT" in (ROOT / "LICENSE").read_text()
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert {"cff-version", "title", "authors"} <= set(cff)
