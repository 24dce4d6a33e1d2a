"""Imports follow the layers: the zoo loads no trainer until a recipe is needed, opening a quiz
loads neither torch nor transformers, and no module reaches for another module's private names.
Each import is checked in a fresh interpreter, by what it leaves in `sys.modules`."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import alignlab

HEAVY = {"torch", "transformers", "accelerate", "trl"}
TRAINERS = {"alignlab.train", "alignlab.ppo", "alignlab.dpo", "alignlab.reward", "alignlab.rollout",
            "alignlab.models", "alignlab.evaluate", "alignlab.recipes"}


def modules_after(code: str, home: Path) -> set[str]:
    """The modules a fresh interpreter holds after running `code`."""
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    env = {**os.environ, "ALIGNLAB_HOME": str(home), "ALIGNLAB_PROFILE": "ci"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_importing_the_zoo_loads_no_trainer(tmp_path):
    loaded = modules_after("import alignlab.zoo", tmp_path)
    assert not loaded & (HEAVY | TRAINERS), sorted(loaded & (HEAVY | TRAINERS))


@pytest.mark.slow
def test_the_recipes_load_on_the_first_lookup(tmp_path):
    loaded = modules_after("from alignlab import zoo\nzoo.key('sft', 'ci')", tmp_path)
    assert {"alignlab.recipes", "alignlab.train", "torch"} <= loaded


def test_opening_a_quiz_loads_neither_torch_nor_transformers(tmp_path):
    loaded = modules_after("from alignlab.quiz import quiz, progress\nquiz('02')\nprogress()", tmp_path)
    assert not loaded & HEAVY and "alignlab.zoo" not in loaded, sorted(loaded & (HEAVY | {"alignlab.zoo"}))


def test_the_package_and_its_command_line_import_lightly(tmp_path):
    loaded = modules_after("import alignlab, alignlab.cli, alignlab.cache, alignlab.profiles", tmp_path)
    assert not loaded & (HEAVY | TRAINERS)


def private_imports(path: Path) -> list[str]:
    """`from <alignlab module> import _name` statements in one file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        ours = isinstance(node, ast.ImportFrom) and (node.level > 0 or (node.module or "").startswith("alignlab"))
        if ours:
            found += [f"{path.name}:{node.lineno} imports {a.name}" for a in node.names
                      if a.name.startswith("_") and not a.name.startswith("__")]
    return found


def test_no_module_imports_another_modules_private_names():
    root = Path(alignlab.__file__).parent
    offenders = [hit for p in sorted(root.rglob("*.py")) for hit in private_imports(p)]
    assert offenders == []
