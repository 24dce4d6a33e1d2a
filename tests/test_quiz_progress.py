"""The quiz progress file when it is not what this alignlab wrote: every malformed shape is read
without a traceback, keeps its valid entries and says what it left out; reading never moves the
file, writing sets the original aside first; set-aside copies merge back with `recover`; a file
from a newer alignlab is refused, never called corrupt and never overwritten."""
from __future__ import annotations

import json

import pytest

from alignlab import cli
from alignlab.quiz import load_bank, progress, quiz, store

RIGHT = {"attempts": [{"answer": 0.731, "correct": True, "time": 100.0}], "correct": True}
WRONG = {"attempts": [{"answer": 30, "correct": False, "time": 200.0}], "correct": False}


def progress_file(chapters) -> dict:
    return {"version": 1, "chapters": chapters}


def with_02(**questions) -> dict:
    """A progress file whose chapter 02 holds `questions` beside a valid pairs-from-ranking entry."""
    return progress_file({"02": {"questions": {"pairs-from-ranking": RIGHT, **questions}, "score": 1, "total": 9}})


# Each malformed shape: (file contents, what the message must name, entries that must survive).
MALFORMED = {
    "entry a string": (with_02(**{"bt-probability": "oops"}),
                       "chapter 02 question bt-probability (not a record of attempts)", {("02", "pairs-from-ranking")}),
    "entry a list": (with_02(**{"bt-probability": [1, 2]}),
                     "chapter 02 question bt-probability (not a record of attempts)", {("02", "pairs-from-ranking")}),
    "missing attempts": (with_02(**{"bt-probability": {"correct": True}}),
                         "chapter 02 question bt-probability (no attempts)", {("02", "pairs-from-ranking")}),
    "attempts not a list": (with_02(**{"bt-probability": {"attempts": "many", "correct": True}}),
                            "bt-probability (its attempts are not a list)", {("02", "pairs-from-ranking")}),
    "attempt missing correct": (with_02(**{"bt-probability": {"attempts": [{"answer": 1, "time": 5.0}],
                                                              "correct": False}}),
                                "bt-probability: 1 of its 1 attempts", {("02", "pairs-from-ranking")}),
    "attempt with a text time": (with_02(**{"bt-probability": {"attempts": [{"answer": 1, "correct": True,
                                                                             "time": "noon"}], "correct": True}}),
                                 "bt-probability: 1 of its 1 attempts", {("02", "pairs-from-ranking")}),
    "entry correct not a bool": (with_02(**{"bt-probability": {**RIGHT, "correct": "yes"}}),
                                 "bt-probability: its right/wrong mark",
                                 {("02", "pairs-from-ranking"), ("02", "bt-probability")}),
    "chapter not a dict": (progress_file({"02": "done", "03": {"questions": {"bon-kl": RIGHT}}}),
                           "chapter 02 (not a record of questions)", {("03", "bon-kl")}),
    "questions missing": (progress_file({"02": {"score": 3}, "03": {"questions": {"bon-kl": RIGHT}}}),
                          "chapter 02 (no questions)", {("03", "bon-kl")}),
    "score not a number": (progress_file({"02": {"questions": {"pairs-from-ranking": RIGHT}, "score": "1"}}),
                           'chapter 02: its score ("1"', {("02", "pairs-from-ranking")}),
    "version missing": ({"chapters": {"02": {"questions": {"pairs-from-ranking": RIGHT}}}},
                        "its version number (missing", {("02", "pairs-from-ranking")}),
    "chapters a list": ({"version": 1, "chapters": [{"questions": {}}]}, "its chapters (a JSON list", set()),
    "top level a list": ([1, 2, 3], "it holds a JSON list", set()),
    "not JSON": ('{"version": 1, "chapters": {"02": ', "it is not valid JSON", set()),
    "not text": (b"\xff\xfe\x00\x81 binary", "it is not text", set()),
}


def write_raw(contents) -> bytes:
    raw = contents if isinstance(contents, bytes) else (
        contents.encode() if isinstance(contents, str) else json.dumps(contents).encode())
    store.path().parent.mkdir(parents=True, exist_ok=True)
    store.path().write_bytes(raw)
    return raw


def kept(data: dict) -> set[tuple[str, str]]:
    return {(c, q) for c, ch in data["chapters"].items() for q in ch["questions"]}


def asides(home) -> list:
    return sorted(home.glob("quiz_progress.corrupt-*.json"))


@pytest.mark.parametrize("case", list(MALFORMED))
def test_reading_keeps_valid_entries_and_moves_nothing(alignlab_home, capsys, case):
    contents, named, survive = MALFORMED[case]
    raw = write_raw(contents)
    reading = store.read()
    assert kept(reading.data) == survive and reading.damaged
    progress()  # what `alignlab quiz progress` prints
    out = capsys.readouterr().out
    assert "could not be read" in out and named in out and "$ALIGNLAB_HOME/quiz_progress.json" in out
    q = quiz("02")  # the widget opens, shows what it could keep and names the problem
    assert named in q._notices.value.replace("&#x27;", "'").replace("&quot;", '"')
    assert store.path().read_bytes() == raw and not asides(alignlab_home)  # read-only: untouched


@pytest.mark.parametrize("case", list(MALFORMED))
def test_writing_sets_the_original_aside_and_keeps_valid_entries(alignlab_home, case):
    contents, named, survive = MALFORMED[case]
    raw = write_raw(contents)
    notices: list[str] = []
    store.record("04", "initial-loss", 8, 0.693, True, notices)
    (aside,) = asides(alignlab_home)
    assert aside.read_bytes() == raw  # the student's original, byte for byte
    assert len(notices) == 1 and named in notices[0] and aside.name in notices[0] and "--recover" in notices[0]
    live = store.read()
    assert not live.damaged and kept(live.data) == survive | {("04", "initial-loss")}
    for cid, ch in live.data["chapters"].items():
        assert ch["score"] == sum(q["correct"] for q in ch["questions"].values())


def test_the_reported_crashes_are_gone(alignlab_home, capsys):
    """`alignlab quiz progress` on the two files students reported: a TypeError and `alignlab: attempts`."""
    for entry in ("oops", {"correct": True}):
        write_raw(with_02(**{"bt-probability": entry}))
        assert cli.main(["quiz", "progress"]) == 0
        out = capsys.readouterr().out
        assert "1 part of your saved quiz progress" in out and "bt-probability" in out
        assert "Everything else (1 saved answer) is shown" in out
        assert f"1/{len(load_bank('02').questions)}" in out  # the valid entry still counts
        view = quiz("02")["pairs-from-ranking"]
        assert "answered correctly (1 attempt)" in view.feedback.value


def test_a_mix_keeps_every_valid_entry(alignlab_home):
    good_attempt = {"answer": 15, "correct": True, "time": 3.0}
    write_raw(progress_file({
        "01": {"questions": {"ce-entropy": RIGHT, "which-kl": WRONG}, "score": 5, "total": 7},
        "02": {"questions": {"pairs-from-ranking": {"attempts": [{"answer": 9}, good_attempt], "correct": True},
                             "bt-probability": "oops", "gumbel": WRONG}},
        "03": [],
        "04": {"questions": {"initial-loss": {"attempts": None}}}}))
    reading = store.read()
    assert kept(reading.data) == {("01", "ce-entropy"), ("01", "which-kl"), ("02", "pairs-from-ranking"),
                                  ("02", "gumbel")}
    assert reading.data["chapters"]["01"]["score"] == 1  # recomputed, not the file's 5
    assert reading.data["chapters"]["02"]["questions"]["pairs-from-ranking"]["attempts"] == [good_attempt]
    assert len(reading.lost) == 4, reading.lost
    message = store.describe(reading)
    assert message.startswith("4 parts of your saved quiz progress") and "4 saved answers" in message


def test_a_clean_file_with_a_stale_score_is_not_set_aside(alignlab_home):
    write_raw(progress_file({"02": {"questions": {"pairs-from-ranking": RIGHT}, "score": 7, "total": 9}}))
    store.record("02", "gumbel", 9, ["a"], False)
    assert not asides(alignlab_home)
    assert json.loads(store.path().read_text())["chapters"]["02"]["score"] == 1


# --- recovering set-aside copies ---------------------------------------------------------------


def test_merge_pools_attempts_without_duplicates():
    mine = store.parse(json.dumps(progress_file({"02": {"questions": {"q": WRONG}}}))).data
    theirs = store.parse(json.dumps(progress_file({"02": {"questions": {"q": {
        "attempts": [WRONG["attempts"][0], {"answer": 30, "correct": True, "time": 50.0}],
        "correct": True}}}}))).data
    assert store.merge(mine, theirs) == 1
    entry = mine["chapters"]["02"]["questions"]["q"]
    assert [a["time"] for a in entry["attempts"]] == [50.0, 200.0] and entry["correct"]
    assert mine["chapters"]["02"]["score"] == 1
    assert store.merge(mine, theirs) == 0  # merging again changes nothing


def test_recover_merges_every_set_aside_copy_and_keeps_them(alignlab_home, capsys):
    write_raw(progress_file({"02": {"questions": {"pairs-from-ranking": {
        "attempts": [WRONG["attempts"][0], {"answer": 15, "correct": True, "time": 300.0}], "correct": True}}}}))
    older = alignlab_home / "quiz_progress.corrupt-20240101T000000-aaaaaa.json"
    older.write_text(json.dumps(progress_file({  # set aside whole by an earlier, stricter alignlab
        "02": {"questions": {"bt-probability": RIGHT, "pairs-from-ranking": WRONG, "gumbel": "oops"}},
        "03": {"questions": {"bon-kl": RIGHT}}})))
    cut = alignlab_home / "quiz_progress.corrupt-20240102T000000-bbbbbb.json"
    cut.write_text('{"version": 1, "chap')
    before = {p: p.read_bytes() for p in (older, cut)}
    progress(recover=True)
    out = capsys.readouterr().out
    assert f"{older.name}: 2 saved answers recovered (1 already in your progress); 1 part(s)" in out
    assert f"{cut.name}: nothing could be read" in out
    data = store.read().data
    assert kept(data) == {("02", "pairs-from-ranking"), ("02", "bt-probability"), ("03", "bon-kl")}
    assert len(data["chapters"]["02"]["questions"]["pairs-from-ranking"]["attempts"]) == 2  # no duplicate
    assert data["chapters"]["02"]["score"] == 2 and data["chapters"]["03"]["score"] == 1
    assert f"2/{len(load_bank('02').questions)}" in out  # the summary after the merge
    assert {p: p.read_bytes() for p in (older, cut)} == before and asides(alignlab_home) == [older, cut]
    progress(recover=True)
    assert f"{older.name}: 0 saved answers recovered (3 already in your progress)" in capsys.readouterr().out


def test_recover_after_a_damaged_file_was_set_aside_restores_the_score(alignlab_home, capsys):
    write_raw(with_02(**{"bt-probability": RIGHT, "gumbel": "oops"}))
    quiz("02")["shift-invariance"].submit()  # nothing chosen: checked, not saved
    store.record("02", "shift-invariance", 9, "Nothing", True)  # this write sets the file aside
    (aside,) = asides(alignlab_home)
    store.path().unlink()  # say the fresh file was lost too: the score would read 0
    progress(recover=True)
    out = capsys.readouterr().out
    assert f"{aside.name}: 2 saved answers recovered" in out
    assert f"2/{len(load_bank('02').questions)}" in out and aside.exists()


def test_recover_with_nothing_set_aside_says_so(alignlab_home, capsys):
    progress(recover=True)
    assert "No set-aside progress files to recover from" in capsys.readouterr().out
    assert not store.path().exists()


# --- a file from a newer alignlab ------------------------------------------------------------


def test_a_newer_file_is_refused_never_set_aside_or_overwritten(alignlab_home, capsys):
    raw = write_raw({"version": store.VERSION + 1, "chapters": {"02": {"questions": {"x": {"new": 1}}}}})
    progress()
    out = capsys.readouterr().out
    assert "newer version of alignlab" in out and "pip install -U alignlab" in out and "git pull" in out
    assert "could not be read" not in out and "corrupt" not in out
    with pytest.raises(store.ProgressTooNew, match="pip install -U alignlab"):
        store.record("02", "pairs-from-ranking", 9, 15, True)
    progress(recover=True)
    assert "newer version of alignlab" in capsys.readouterr().out
    q = quiz("02")
    assert "newer version of alignlab" in q._notices.value
    view = q["pairs-from-ranking"]
    view.input.value = "15"
    view.button.click()  # still checked; the message instead of a traceback
    assert "Correct" in view.feedback.value and "newer version of alignlab" in view.feedback.value
    assert "could not" not in view.feedback.value
    assert store.path().read_bytes() == raw and not asides(alignlab_home)


def test_recover_skips_a_newer_set_aside_copy(alignlab_home, capsys):
    newer = alignlab_home / "quiz_progress.corrupt-20240101T000000-cccccc.json"
    newer.parent.mkdir(parents=True)
    newer.write_text(json.dumps({"version": store.VERSION + 1, "chapters": {}}))
    progress(recover=True)
    assert f"{newer.name}: saved by a newer alignlab" in capsys.readouterr().out
