"""Quizzes in the kernel: banks in step with their sources and hiding their answers, every
source answer checked as its author meant, widgets clicked with right, wrong and malformed
answers, progress saved, reopened and recovered from corruption."""
from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import nbformat
import pytest
import yaml

from alignlab.quiz import QuizError, author, check, load_bank, quiz, store
from alignlab.quiz.bank import Bank, decode, encode, normalise
from alignlab.quiz.check import parse_number
from alignlab.quiz.widgets import Message, Quiz

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "quizzes").glob("*.yaml"))


def source(chapter: str) -> dict:
    return yaml.safe_load(next(p for p in SOURCES if p.name.startswith(chapter)).read_text())


@pytest.fixture
def home(alignlab_home):
    return alignlab_home


# --- banks ----------------------------------------------------------------------------------


def test_banks_in_step_with_sources():
    assert SOURCES, "no quiz sources in quizzes/"
    assert author.build_all(check=True) == [], "run `alignlab quiz build` and commit the banks"


def test_check_reports_a_stale_bank(tmp_path):
    banks = tmp_path / "banks"
    banks.mkdir()
    assert len(author.build_all(bank_dir=banks)) == len(SOURCES)
    assert author.build_all(bank_dir=banks, check=True) == []
    (banks / "02.json").write_text((banks / "02.json").read_text().replace("Bradley", "Bradly"))
    assert author.build_all(bank_dir=banks, check=True) == ["02_bradley_terry.yaml → 02.json"]


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_bank_hides_answers_and_feedback(src):
    data = yaml.safe_load(src.read_text())
    text = (author.BANK_DIR / f"{data['chapter']}.json").read_text()
    for q in data["questions"]:
        for key in ("hint", "explanation"):
            assert not q.get(key) or q[key] not in text
        for a in q["answers"]:
            assert not a.get("feedback") or a["feedback"] not in text
            if q["type"] == "string":
                assert f'"{a["answer"]}"' not in text
    assert '"correct"' not in text and '"value"' not in text


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_every_source_answer_checks_as_authored(src):
    data = yaml.safe_load(src.read_text())
    bank = load_bank(data["chapter"])
    for q in data["questions"]:
        for a in q["answers"]:
            if q["type"] == "numeric":
                given = a["value"] if "value" in a else sum(a["range"]) / 2
            elif q["type"] == "many_choice":
                given = [a["answer"]]
            else:
                given = a["answer"]
            verdict = check(bank, q["id"], given)
            single_right = q["type"] != "many_choice" or sum(b.get("correct", False) for b in q["answers"]) == 1
            assert verdict.correct == (bool(a.get("correct")) and single_right), (q["id"], a)
            if a.get("feedback") and q["type"] != "many_choice":
                assert a["feedback"] in verdict.feedback
        if q["type"] == "many_choice":
            right = [a["answer"] for a in q["answers"] if a.get("correct")]
            assert check(bank, q["id"], right).correct
            assert not check(bank, q["id"], [a["answer"] for a in q["answers"]]).correct


def test_content_requirements():
    banks = {c: load_bank(c) for c in ["00", "01", "02", "03", "04"]}
    ids = [q["id"] for q in banks["00"].questions]
    assert ids[:3] == ["rlhf-pipeline", "cai-difference", "rl-technique"]  # the seed course opens with these
    for c in ["01", "02", "03", "04"]:
        types = {q["type"] for q in banks[c].questions}
        assert len(banks[c].questions) >= 6 and "numeric" in types and len(types) >= 3, c


def test_encoding_round_trip_and_normalise():
    for value in [0.7311, [{"value": 1, "tolerance": 0.1}], "π* ∝ π_ref·e^{r/β}"]:
        assert decode("salt", "ctx", encode("salt", "ctx", value)) == value
    assert encode("salt", "a", "x") != encode("salt", "b", "x")
    assert normalise("  Condorcet   CYCLE. ") == normalise("condorcet cycle")


@pytest.mark.parametrize("typed", ["Condorcet's paradox", "condorcet paradox", "Condorcet-paradox",
                                   " CONDORCET PARADOX. ", "Condorcet’s  paradox", "the Condorcet paradox"])
def test_short_text_accepts_what_a_reader_types(typed):
    assert check(load_bank("02"), "cycle-name", typed).correct


@pytest.mark.parametrize("a,b", [("Bradley–Terry", "bradley terry"), ("players' choice", "players choice"),
                                 ("ignore_index", "ignore index"), ("−0.5", "-0.5"), ("~0", "0")])
def test_normalise_joins_spellings(a, b):
    assert normalise(a) == normalise(b)


@pytest.mark.parametrize("a,b", [("-0.5", "0.5"), ("0.5", "05"), ("KL(q ‖ p)", "KL(p ‖ q)")])
def test_normalise_keeps_what_changes_the_meaning(a, b):
    assert normalise(a) != normalise(b)


def test_short_text_still_rejects_wrong_answers():
    bank = load_bank("02")
    for typed in ("Condorcet winner", "paradox", "Arrow's paradox", "Simpson's paradox"):
        assert not check(bank, "cycle-name", typed).correct, typed
    assert "older name" in check(bank, "cycle-name", "Arrow’s Paradox").feedback[0]
    assert check(load_bank("04"), "gradient-weight", "  Nearly-zero.").correct
    assert not check(load_bank("04"), "gradient-weight", "0.5").correct


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_text_answers_stay_distinct_after_normalising(src):
    for q in yaml.safe_load(src.read_text())["questions"]:
        if q["type"] == "string":
            keys = [normalise(a["answer"]) for a in q["answers"]]
            assert len(set(keys)) == len(keys) and all(keys), (q["id"], keys)


def numeric_bank(rules: list[dict]) -> Bank:
    q = {"id": "sigma-one", "type": "numeric", "question": "σ(1)?", "answers": rules}
    return Bank(chapter="99", title="test", salt="s", questions=[author.encode_question(q, "s")])


@pytest.mark.parametrize("typed,close", [("3/4", True), ("0.70", True), ("0.5", False), ("0.9", False)])
def test_numeric_near_miss_says_close_without_the_answer(typed, close):
    bank = numeric_bank([{"value": 0.731, "tolerance": 0.01, "correct": True}])
    verdict = check(bank, "sigma-one", typed)
    assert not verdict.correct
    if close:
        assert verdict.feedback == ["Close — within 0.05 of the answer, outside its tolerance of 0.01."]
    else:
        assert verdict.feedback == []
    assert not any("0.731" in f for f in verdict.feedback)


def test_numeric_exact_answers_and_authors_feedback_win_over_close():
    bank = numeric_bank([{"value": 0.731, "tolerance": 0.01, "correct": True},
                         {"value": 0.75, "tolerance": 0.001, "correct": False, "feedback": "That is 3/4, not σ(1)."}])
    assert check(bank, "sigma-one", "0.731").correct and check(bank, "sigma-one", "0.74").feedback == []
    assert check(bank, "sigma-one", "3/4").feedback == ["That is 3/4, not σ(1)."]
    count = numeric_bank([{"value": 15, "correct": True}])  # exact: close means within 10%
    assert check(count, "sigma-one", "14").feedback == ["Close — within 1.5 of the answer, but it must be exact."]
    assert check(count, "sigma-one", "12").feedback == []


def test_numeric_near_miss_in_the_widget(home):
    view = quiz("02")["labeler-agreement"]  # 0.82 ± 0.005
    view.input.value = "0.83"
    view.button.click()
    assert "Not quite" in view.feedback.value and "Close — within 0.025 of the answer" in view.feedback.value
    assert "0.82" not in view.feedback.value


@pytest.mark.parametrize("text,value", [("0.73", 0.73), (" 3/4 ", 0.75), ("73%", 0.73), ("1e-2", 0.01),
                                         ("−0.5", -0.5), (15, 15.0)])
def test_parse_number(text, value):
    assert parse_number(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["", "  ", "abc", "1/0", "nan", True, "0.5.1", "0,73", "1,000"])
def test_parse_number_rejects_with_a_message(text):
    with pytest.raises(QuizError, match="number|True/False|commas"):
        parse_number(text)


def test_bad_answers_raise_quiz_errors():
    bank = load_bank("02")
    with pytest.raises(QuizError, match="no question 'nope'.*pairs-from-ranking"):
        check(bank, "nope", "15")
    with pytest.raises(QuizError, match="Choose an option"):
        check(bank, "shift-invariance", None)
    with pytest.raises(QuizError, match="not one of this question's options"):
        check(bank, "shift-invariance", "made up")
    with pytest.raises(QuizError, match="Type an answer"):
        check(bank, "cycle-name", "   ")
    with pytest.raises(QuizError, match="no quiz for chapter 99"):
        load_bank(99)


# --- widgets and progress ---------------------------------------------------------------------


def saved(chapter: str) -> dict:
    return json.loads(store.path().read_text())["chapters"][chapter]


def test_widgets_right_wrong_and_malformed(home):
    q, n_questions = quiz("02"), len(load_bank("02").questions)
    assert isinstance(q, Quiz) and len(q.questions) == n_questions >= 6
    n = q["pairs-from-ranking"]
    n.input.value = "fifteen"
    n.button.click()
    assert "is not a number" in n.feedback.value and not store.path().exists()  # nothing recorded
    n.input.value = "30"
    n.button.click()
    assert "Not quite" in n.feedback.value and "ordered pairs" in n.feedback.value
    assert "Hint: C(K, 2)" in n.feedback.value
    n.input.value = "15"
    n.button.click()
    assert "Correct" in n.feedback.value and "InstructGPT kept all" in n.feedback.value
    entry = saved("02")["questions"]["pairs-from-ranking"]
    assert [a["correct"] for a in entry["attempts"]] == [False, True] and entry["correct"]

    s = q["shift-invariance"]
    s.button.click()
    assert "Choose an option first" in s.feedback.value
    s.input.value = s.input.options[1]
    s.button.click()
    assert "Not quite" in s.feedback.value
    m = q["gumbel"]
    m.input[0].value = True
    m.button.click()
    assert "1 correct option not selected" in m.feedback.value
    m.input[1].value = True
    m.button.click()
    assert "Correct" in m.feedback.value
    t = q["cycle-name"]
    t.input.value = "Condorcet Paradox!"
    t.button.click()
    assert "Correct" in t.feedback.value
    assert saved("02")["score"] == 3 and saved("02")["total"] == n_questions
    assert f"Score: 3/{n_questions}" in q.score.value


def test_reopening_restores_answers_and_score(home, capsys):
    q = quiz("03")
    q["bon-kl"].input.value = "0.636"
    q["bon-kl"].button.click()
    q["bon-kl"].input.value = "9"
    q["bon-kl"].button.click()
    again = quiz(3)
    view = again["bon-kl"]
    assert view.input.value == "0.636" and "answered correctly (2 attempts)" in view.feedback.value
    assert f"Score: 1/{len(load_bank('03').questions)}" in again.score.value
    from alignlab.quiz import progress
    progress()
    assert "03" in capsys.readouterr().out.split("KL-regularised")[0].splitlines()[-1]


def test_corrupt_progress_is_kept_aside(home):
    home.mkdir(parents=True)
    store.path().write_text('{"version": 1, "chapters": {"02": ')  # a write cut short
    q = quiz("02")  # opening a quiz only reads: the file is reported, not moved
    assert "could not be read" in q._notices.value and "quiz_progress.json" in q._notices.value
    assert not list(home.glob("quiz_progress.corrupt-*.json"))
    q["bt-probability"].input.value = "0.731"
    q["bt-probability"].button.click()  # writing sets it aside first
    aside = list(home.glob("quiz_progress.corrupt-*.json"))
    assert len(aside) == 1 and aside[0].read_text().startswith('{"version": 1')
    assert aside[0].name in q["bt-probability"].feedback.value
    assert saved("02")["score"] == 1


def test_unknown_chapter_or_question_shows_a_message(home):
    for shown in (quiz("99"), quiz("02", ["nope"]), quiz("chapter two")):
        assert isinstance(shown, Message)
        assert "alignlab-quiz-error" in shown.box.value
        assert shown._repr_mimebundle_()["text/plain"] == shown.text


def test_chapter_by_number_or_name(home):
    for given in ("02", 2, "2", "02_bradley_terry", "bradley_terry", "Bradley-Terry"):
        assert quiz(given).bank.chapter == "02"


def test_plain_text_output_is_stable(home):
    first = quiz("01")._repr_mimebundle_()["text/plain"]
    quiz("01")["ce-entropy"].input.value = "1.04"
    assert quiz("01")._repr_mimebundle_()["text/plain"] == first
    assert "application/vnd.jupyter.widget-view+json" in quiz("01")._repr_mimebundle_()


def _record_many(home: str, worker: int) -> None:
    import os
    os.environ["ALIGNLAB_HOME"] = home
    for i in range(15):
        store.record("04", f"q{worker}-{i}", 30, i, i % 2 == 0)


@pytest.mark.slow
def test_two_kernels_recording_at_once_lose_nothing(home):
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_record_many, args=(str(home), w)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    assert len(saved("04")["questions"]) == 30 and saved("04")["score"] == 16


@pytest.mark.parametrize("nb", sorted((ROOT / "chapters").glob("*.ipynb")), ids=lambda p: p.stem)
def test_each_chapter_ends_with_its_quiz(nb):
    last = nbformat.read(nb, as_version=4).cells[-1]
    assert last.cell_type == "code" and f'quiz("{nb.name[:2]}")' in last.source


def test_unreadable_progress_is_never_overwritten(home, monkeypatch):
    home.mkdir(parents=True)
    store.path().write_text("not json")

    def refuse(*a, **k):
        raise PermissionError("read-only home")
    monkeypatch.setattr(store.Path, "replace", refuse)  # cannot be moved aside either
    q = quiz("01")
    assert "could not be read" in q._notices.value
    q["prompt-mask"].input.value = "mask"
    q["prompt-mask"].button.click()
    assert "Correct" in q["prompt-mask"].feedback.value and "could not be saved" in q["prompt-mask"].feedback.value
    assert store.path().read_text() == "not json"


def test_clear_quiz_outputs(tmp_path):
    nb = nbformat.v4.new_notebook(metadata={"widgets": {"state": {}}})
    bar = {"application/vnd.jupyter.widget-view+json": {"model_id": "x"}, "text/plain": "  0%|          | 0/600"}
    nb.cells = [nbformat.v4.new_code_cell("print(1)", outputs=[
                    nbformat.v4.new_output("display_data", bar),
                    nbformat.v4.new_output("stream", name="stderr", text="sft: 40%|####  | 4/10 [00:01<00:01, 3.0it/s]\r"),
                    nbformat.v4.new_output("stream", text="1\n"),
                    nbformat.v4.new_output("stream", name="stderr", text="UserWarning: keep me\n")]),
                nbformat.v4.new_code_cell('from alignlab.quiz import quiz\n\nquiz("02")', execution_count=3,
                                          outputs=[nbformat.v4.new_output("execute_result", {"text/plain": "Quiz"})])]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    assert author.clear_quiz_outputs(path) == 1
    back = nbformat.read(path, as_version=4)
    assert [o.get("text") for o in back.cells[0].outputs] == ["1\n", "UserWarning: keep me\n"]  # bars gone, the rest kept
    assert not back.cells[1].outputs and "widgets" not in back.metadata


def test_damaged_bank_shows_a_message(home, tmp_path, monkeypatch):
    from alignlab.quiz import bank
    broken = tmp_path / "banks"
    broken.mkdir()
    (broken / "02.json").write_text('{"format": "alignlab-quiz/1", "title": ')
    monkeypatch.setattr(bank, "BANK_DIR", broken)
    shown = quiz("02")
    assert isinstance(shown, Message) and "could not be loaded" in shown.text
