"""The quiz as ipywidgets: one block per question (prompt, labelled input, Check button,
feedback), a running score, and progress saved on every check.

Keyboard use: radio buttons, checkboxes, text boxes and buttons are native form controls (Tab to
move, Space/arrows to choose, Enter on the button); every input has a visible label, and the
feedback line is an ARIA live region so screen readers announce it.
"""
from __future__ import annotations

import html
import re

import ipywidgets as widgets

from alignlab.quiz import store
from alignlab.quiz.bank import Bank, QuizError
from alignlab.quiz.check import Verdict, check

_STYLE = {"description_width": "initial"}
_TEXT_HINT = {"numeric": "a number, e.g. 0.73 or 3/4", "string": "a word or short phrase"}


def markup(text: str) -> str:
    """Question text → HTML: escaped, with `code` and **bold**; $…$ is left for MathJax."""
    text = html.escape(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)


def _line(kind: str, body: str) -> str:
    colour = {"ok": "#1a7f37", "wrong": "#b35900", "error": "#b00020", "info": "#555"}[kind]
    return (f'<div class="alignlab-quiz-feedback alignlab-quiz-{kind}" role="status" '
            f'aria-live="polite" style="color:{colour}">{body}</div>')


class QuestionView:
    """One question's widgets. `input`, `button` and `feedback` are public so tests (and
    instructors' scripts) can set an answer, click Check and read what the student would see."""

    def __init__(self, bank: Bank, q: dict, number: int, on_score=None):
        self.bank, self.q, self.qid, self._on_score = bank, q, q["id"], on_score
        self.prompt = widgets.HTMLMath(f"<b>{number}.</b> {markup(q['question'])}")
        self.input = self._make_input()
        self.button = widgets.Button(description="Check", tooltip=f"Check your answer to question {number}",
                                     button_style="primary", icon="check")
        self.feedback = widgets.HTML("")
        self.button.on_click(lambda _: self.submit())
        controls = self.input if isinstance(self.input, widgets.Widget) else widgets.VBox(self.input)
        self.box = widgets.VBox([self.prompt, controls, self.button, self.feedback],
                                layout=widgets.Layout(margin="0 0 14px 0"))

    def _make_input(self):
        kind = self.q["type"]
        options = [a["answer"] for a in self.q["answers"]] if kind in ("multiple_choice", "many_choice") else []
        if kind == "multiple_choice":
            return widgets.RadioButtons(options=options, value=None, description="Your answer:",
                                        style=_STYLE, layout=widgets.Layout(width="max-content"))
        if kind == "many_choice":
            return [widgets.Checkbox(value=False, description=o, indent=False,
                                     layout=widgets.Layout(width="max-content")) for o in options]
        return widgets.Text(value="", placeholder=_TEXT_HINT[kind], description="Your answer:",
                            style=_STYLE)

    @property
    def answer(self):
        """The answer as the widgets hold it now."""
        if isinstance(self.input, list):
            return [c.description for c in self.input if c.value]
        return self.input.value

    def set_answer(self, value) -> None:
        if isinstance(self.input, list):
            chosen = set([value] if isinstance(value, str) else value or [])
            for c in self.input:
                c.value = c.description in chosen
        else:
            self.input.value = value

    def show(self, verdict: Verdict) -> None:
        extra = "".join(f"<br>{markup(f)}" for f in verdict.feedback)
        if verdict.correct:
            why = self.bank.reveal(self.q, "explanation")
            self.feedback.value = _line("ok", f"✔ Correct.{extra}" + (f"<br>{markup(why)}" if why else ""))
        else:
            hint = self.bank.reveal(self.q, "hint")
            hint = f"<br>Hint: {markup(hint)}" if hint else ""
            self.feedback.value = _line("wrong", f"✘ Not quite.{extra}{hint}")

    def submit(self) -> Verdict | None:
        """Check the current answer, save the attempt, show feedback; never raises."""
        try:
            verdict = check(self.bank, self.qid, self.answer)
        except QuizError as e:
            self.feedback.value = _line("error", markup(str(e)))
            return None
        except Exception as e:  # a bug of ours must not show the student a traceback
            self.feedback.value = _line("error", f"The quiz could not check this answer ({type(e).__name__}: "
                                                 f"{markup(str(e))}). Please report it.")
            return None
        self.show(verdict)
        notices: list[str] = []
        try:
            store.record(self.bank.chapter, self.qid, len(self.bank.questions), verdict.answer,
                            verdict.correct, notices)
        except store.ProgressTooNew as e:  # a newer alignlab's file: say so, save nothing
            notices.append(str(e))
        except OSError as e:
            notices.append(f"Your answer was checked but could not be saved: {e}.")
        for n in notices:
            self.feedback.value += _line("info", markup(n))
        if self._on_score:
            self._on_score()
        return verdict

    def restore(self, entry: dict) -> None:
        """Show a saved entry: the last answer back in the input, and how it went."""
        attempts = entry.get("attempts") or []
        right = [a for a in attempts if a.get("correct")]
        last = (right or attempts or [None])[-1]
        if last is None:
            return
        try:
            self.set_answer(str(last["answer"]) if self.q["type"] == "numeric" else last["answer"])
        except Exception:  # an option text that changed since: leave the input empty
            pass
        n = len(entry["attempts"])
        state = "answered correctly" if entry.get("correct") else "not yet answered correctly"
        self.feedback.value = _line("info", f"Saved: {state} ({n} attempt{'s' if n > 1 else ''}).")


class Quiz:
    """A chapter's quiz: a title, a running score and one `QuestionView` per question.

    Displays as the widgets in JupyterLab; its plain-text form is a fixed sentence, so a notebook
    whose last cell is the quiz gives the same text output on every run.
    """

    def __init__(self, bank: Bank, qids: list[str] | None = None):
        self.bank = bank
        chosen = bank.questions if qids is None else [bank.question(i) for i in qids]
        self.header = widgets.HTML(f"<h3>Quiz — chapter {bank.chapter}: {html.escape(bank.title)}</h3>")
        self.score = widgets.HTML("")
        self.questions = [QuestionView(bank, q, i + 1, self._update_score) for i, q in enumerate(chosen)]
        self._notices = widgets.HTML("")
        notices: list[str] = []
        saved = store.chapter(bank.chapter, notices)  # read the progress file once, not per question
        for view in self.questions:
            if saved.get(view.qid):
                view.restore(saved[view.qid])
        self._notices.value = "".join(_line("info", markup(n)) for n in notices)
        self._update_score()
        self.box = widgets.VBox([self.header, self._notices, *[v.box for v in self.questions], self.score])

    def __getitem__(self, qid: str) -> QuestionView:
        for view in self.questions:
            if view.qid == qid:
                return view
        raise QuizError(f"This quiz has no question {qid!r}; it has: "
                        f"{', '.join(v.qid for v in self.questions)}.")

    def _update_score(self) -> None:
        saved = store.chapter(self.bank.chapter)
        right = sum(saved.get(v.qid, {}).get("correct", False) for v in self.questions)
        self.score.value = f"<b>Score: {right}/{len(self.questions)} correct</b> (saved in your AlignLab home)"

    def __repr__(self) -> str:
        return (f"Quiz: chapter {self.bank.chapter}, {len(self.questions)} questions "
                "(open this notebook in JupyterLab to answer them)")

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.box._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = repr(self)
        return bundle


class Message:
    """What `quiz()` shows instead of a traceback when it cannot show a quiz."""

    def __init__(self, text: str):
        self.text = text
        self.box = widgets.HTML(_line("error", markup(text)))

    def __repr__(self) -> str:
        return self.text

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.box._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = self.text
        return bundle
