"""Chapter quizzes: question banks (data under ``banks/``) shown as ipywidgets, progress saved.

    from alignlab.quiz import quiz
    quiz("02")                 # chapter 2's questions; answers are checked and saved
    alignlab.quiz.progress()   # per-chapter summary of what you have answered

Banks are built from the readable sources in the repository's `quizzes/` folder
(`alignlab quiz build`); see `alignlab.quiz.bank` for what is hidden and how (a speed bump,
not security).
"""
from __future__ import annotations

from alignlab import cache
from alignlab.quiz import store as _store
from alignlab.quiz.bank import QuizError, chapters, load_bank
from alignlab.quiz.check import Verdict, check
from alignlab.quiz.widgets import Message, Quiz

__all__ = ["quiz", "progress", "QuizError", "Quiz", "Verdict", "check", "load_bank", "chapters"]


def quiz(chapter: str | int, questions: list[str] | None = None) -> Quiz | Message:
    """Chapter `chapter`'s quiz ('02', 2 or '02_bradley_terry'), or only the questions with the
    given ids. An unknown chapter or question id shows a message, not a traceback."""
    try:
        return Quiz(load_bank(chapter), questions)
    except QuizError as e:
        return Message(str(e))
    except (OSError, ValueError, KeyError) as e:  # a damaged bank file: say so, no traceback
        return Message(f"The quiz for chapter {chapter!r} could not be loaded ({type(e).__name__}: {e}). "
                       "Reinstall alignlab, or rebuild the banks with `alignlab quiz build`.")


def progress(recover: bool = False) -> None:
    """Print each chapter's saved score: questions answered correctly and attempts made.

    Read-only: a damaged progress file is reported (what could not be read, and where the file
    is) but left in place. With `recover=True`, first merge the readable entries of every
    set-aside copy (`quiz_progress.corrupt-*.json`, kept beside it when a damaged file was
    replaced) back into your progress, and say how many came from which file; the copies stay.
    """
    if recover:
        try:
            lines = _store.recover()
        except QuizError as e:  # a newer alignlab's file: never written by this one
            print(e)
            return
        print("Recovering quiz progress:")
        print("\n".join(f"  {line}" for line in lines))
    try:
        reading = _store.read()
    except OSError as e:
        print(f"Your quiz progress ({cache.shown(_store.path())}) could not be opened ({e}).")
        return
    note = _store.describe(reading)
    if reading.newer is None:
        totals = {c: (b.title, len(b.questions)) for c in chapters() for b in [load_bank(c)]}
        print(f"Quiz progress ({cache.shown(_store.path())}):")
        print("\n".join(_store.summary_rows(totals, reading.data)))
    if note:
        print(note)
