"""The set-up files agree with each other: pyproject ↔ environment.yml, README ↔ CI."""
from __future__ import annotations

import difflib
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
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


@pytest.mark.parametrize("user_id, allow_root", [("0", True), ("1000", False)])
def test_make_lab_starts_the_book_as_root_too(tmp_path, user_id, allow_root):
    """`make lab` as root (Docker's default user) passes --allow-root, which JupyterLab needs
    there, and says so; as anyone else it does not. A stand-in `jupyter` records its arguments."""
    fake = tmp_path / "jupyter"
    fake.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path / 'args'}\n")
    fake.chmod(0o755)
    out = subprocess.run(["make", "-s", "-o", ".venv/.installed", "lab", f"BIN={tmp_path}", f"USER_ID={user_id}"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    args = (tmp_path / "args").read_text().split()
    assert args[0] == "lab" and args[-1] == "chapters/00_how_to_use.ipynb"
    assert ("--allow-root" in args) == allow_root and ("running as root" in out) == allow_root


def test_the_book_finds_a_course_config_at_its_root():
    """JupyterLab's nbgrader extensions look for nbgrader_config.py where the book starts; without
    one they warn twice ("No nbgrader_config.py file found"), which students read as an error."""
    from traitlets.config import PyFileConfigLoader
    config = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
    assert config.CourseDirectory.root == str(ROOT / "labs")
    assert config.CourseDirectory.course_id == "alignlab" and config.Execute.timeout > 0   # labs/' settings
