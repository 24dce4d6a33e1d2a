"""What a class meets when grading: a function that never returns fails once and fast, later
cells say why they stopped, the start cell's message agrees with the grade, and feedback shows the
student's code, not the grader's paths. (The same cases under real nbgrader: test_labs.py.)"""
from __future__ import annotations

import time

import nbformat
import pytest
from IPython.core.interactiveshell import InteractiveShell

from alignlab import labs
from alignlab.labs import core
from labs_course import cell, source_notebook


def endless_pairs(ranking):
    while True:
        pass


def swallowing_pairs(ranking):
    try:
        while True:
            pass
    except Exception:   # a student's catch-all must not swallow the time limit
        return []


@pytest.fixture
def short_limit(monkeypatch):
    monkeypatch.setenv(core.CALL_TIMEOUT_ENV, "0.5")
    monkeypatch.setattr(core, "_FAILED", {})


@pytest.mark.parametrize("student", [endless_pairs, swallowing_pairs])
def test_an_endless_function_fails_once_and_the_training_cell_at_once(student, short_limit, tok):
    t0 = time.monotonic()
    with pytest.raises(labs.LabCheckError, match=r"`ranking_to_pairs` did not return within 0.5 s .* loop that never ends"):
        labs.check_ranking_to_pairs(student)
    assert time.monotonic() - t0 < 3
    from alignlab.reward import Group
    groups = [Group(prompt="What is 1 + 1?", responses=["2", "3"], ranking=[0, 1])]
    t0 = time.monotonic()
    with pytest.raises(labs.LabCheckError, match="`ranking_to_pairs` was not run: did not return within 0.5 s"):
        labs.rm_batches(tok, groups, 1, pairs_fn=student)(0)
    assert time.monotonic() - t0 < 0.4                       # not a second wait for the same loop
    fixed = lambda ranking: [(ranking[i], ranking[j]) for i in range(len(ranking)) for j in range(i + 1, len(ranking))]
    assert labs.check_ranking_to_pairs(fixed) is None        # redefined: called again, and the failure forgotten
    assert core._FAILED == {}


def test_a_check_without_a_limit_still_runs(monkeypatch):
    monkeypatch.setenv(core.CALL_TIMEOUT_ENV, "0")
    assert core.call("f", lambda: 3) == 3
    monkeypatch.setenv(core.CALL_TIMEOUT_ENV, "soon")
    with pytest.raises(labs.LabCheckError, match="must be a number of seconds"):
        core.call("f", lambda: 3)


def test_feedback_shows_the_students_line_and_no_grader_path(short_limit):
    def masked_nll(logits, labels, mask):
        return logits.sum() / undefined_name  # noqa: F821 (the student's bug)
    with pytest.raises(labs.LabCheckError) as err:
        labs.check_masked_nll(masked_nll)
    shown = "\n".join(err.value._render_traceback_())
    assert shown.startswith("LabCheckError: `masked_nll` raised NameError")
    assert "in your `masked_nll`, line" in shown and "undefined_name" in shown
    assert str(core.Path(core.__file__).parents[1]) not in shown and "core.py" not in shown   # no grader frames


def _lab_without(tmp_path, monkeypatch, grade_id: str, to_markdown: str | None = None):
    nb = nbformat.read(source_notebook("lab2_reward_model"), 4)
    nb.cells = [c for c in nb.cells if c.metadata["nbgrader"]["grade_id"] != grade_id]
    if to_markdown:
        c = cell(nb, to_markdown)
        c.cell_type = "markdown"
        c.pop("outputs"), c.pop("execution_count")
    nbformat.write(nb, tmp_path / "lab2_reward_model.ipynb")
    monkeypatch.chdir(tmp_path)


def test_start_stops_only_where_points_are_lost(tmp_path, monkeypatch, capsys):
    """Measured with nbgrader (test_labs.py): a solution cell deleted and retyped elsewhere, or any
    graded cell turned to Markdown, keeps full marks; a deleted test cell loses its points."""
    _lab_without(tmp_path, monkeypatch, "ranking_to_pairs", to_markdown="test_bradley_terry_loss")
    labs.start("lab2_reward_model")
    out = capsys.readouterr().out
    assert "⚠ the cell 'ranking_to_pairs' has been deleted: if you wrote `ranking_to_pairs` in another cell" in out
    assert "'test_bradley_terry_loss' was changed to a markdown cell: the grader runs it as code" in out
    assert "do not change your grade" in out
    _lab_without(tmp_path, monkeypatch, "test_ranking_to_pairs")
    with pytest.raises(labs.LabCheckError, match="(?s)points are\\s+lost.*'test_ranking_to_pairs' has been deleted"):
        labs.start("lab2_reward_model")


def test_a_name_left_undefined_by_a_failed_function_says_why(short_limit, capsys):
    shell = InteractiveShell.instance()
    try:
        shell.run_cell("from alignlab.labs import core; core._explain_name_errors()")
        plain = shell.run_cell("history_never_defined")               # no failure yet: the usual NameError
        assert isinstance(plain.error_in_exec, NameError)
        assert "this cell was skipped" not in capsys.readouterr().out
        core._FAILED["ranking_to_pairs"] = (endless_pairs, "did not return within 0.5 s")
        res = shell.run_cell("print(seen, history_never_defined)")
        assert res.error_in_exec is not None                          # the cell still fails (no points)
        out = capsys.readouterr().out
        assert "NameError: this cell was skipped: name 'seen' is not defined" in out
        assert "`ranking_to_pairs` did not return within 0.5 s" in out
    finally:
        shell.set_custom_exc((), None)
        InteractiveShell.clear_instance()


def test_lab_check_names_an_edited_locked_cell_and_not_the_checksum_warnings_case(tmp_path, capsys):
    """nbgrader writes each locked cell's checksum into the release; a submission whose locked cell
    no longer matches it was edited. (Autograde's checksum warning fires on every hidden-test cell
    of every submission; this does not.)"""
    from nbgrader.utils import compute_checksum
    from alignlab import cli
    nb = nbformat.read(source_notebook("lab2_reward_model"), 4)
    for c in nb.cells:
        if c.metadata["nbgrader"].get("locked"):
            c.metadata["nbgrader"]["checksum"] = compute_checksum(c)   # as generate_assignment does
    path = tmp_path / "lab2_reward_model.ipynb"
    nbformat.write(nb, path)
    assert labs.edited_locked_cells(path) == [] and cli.main(["lab", "check", str(path)]) == 0
    cell(nb, "code-07").source += "\nhistory = [{'loss': 0.0}]"
    nbformat.write(nb, path)
    assert labs.edited_locked_cells(path) == ["the locked cell 'code-07' was edited (nbgrader restores it for grading)"]
    assert cli.main(["lab", "check", str(path)]) == 1 and "'code-07' was edited" in capsys.readouterr().out
