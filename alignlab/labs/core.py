"""What every lab's checks share: the error a check raises, the lookup of the student's function,
the notebook-structure check, and the comparison against the reference on random inputs.

A check never ends in a bare `assert`: it raises `LabCheckError` with a sentence that says what
is wrong and what to try, because the same message reaches the student twice — in the notebook
while they work, and in the feedback an instructor hands back after autograding.
"""
from __future__ import annotations

import functools
import json
import os
import signal
import sys
import threading
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, NoReturn

import torch

#: Lab name → {grade id: cell type} of the cells a submission must keep (filled by each lab module).
REQUIRED_CELLS: dict[str, dict[str, str]] = {}
_ACTIVE: dict[str, str | None] = {"lab": None, "notebook": None}
#: The student's functions that failed in this kernel: name → (the function, what went wrong).
_FAILED: dict[str, tuple[Callable, str]] = {}
CALL_TIMEOUT_ENV = "ALIGNLAB_LAB_CALL_TIMEOUT"
DEFAULT_CALL_TIMEOUT_S = 10.0
"""Seconds one call of a student's function may take: the checks' examples and one training
batch take milliseconds, so a call this long is a loop that never ends."""


class LabCheckError(Exception):
    """A check failed; the message is the feedback (what is wrong, and a hint)."""

    def _render_traceback_(self) -> list[str]:
        """What IPython (and so nbgrader's feedback) shows: the message, and where in the
        student's own code it went wrong, never the grader's frames or paths."""
        lines = [f"LabCheckError: {self}"]
        cause = self.__cause__
        if cause is not None and cause.__traceback__ is not None:
            package = str(Path(__file__).resolve().parents[1])
            mine = [f for f in traceback.extract_tb(cause.__traceback__)
                    if not f.filename.startswith((package, sys.prefix, sys.base_prefix))]
            lines += [f"  in your `{f.name}`, line {f.lineno}: {f.line}" for f in mine if f.name != "<module>"]
        return lines


class _TimedOut(BaseException):
    """Raised inside a student's function at its time limit (not an Exception: a student's
    `except Exception` must not swallow it)."""


def passed(message: str) -> None:
    """Print a ✓ line (a check's success). Returns None, so a test cell leaves no value behind
    (nbgrader would try to read a value as partial credit)."""
    print(f"✓ {message}")


def start(lab: str, notebook: str | Path | None = None) -> None:
    """Set up a lab: remember which one this kernel runs, explain later cells that stop on a name
    an earlier failure left undefined, and check the graded cells. Only a deleted *test* cell
    costs points (nbgrader cannot put it back), so only that stops here; a deleted or retyped
    solution cell, or a cell changed to Markdown, gets a notice — the grade does not change."""
    if lab not in REQUIRED_CELLS:
        raise LabCheckError(f"unknown lab {lab!r}; the labs are {sorted(REQUIRED_CELLS)}")
    _ACTIVE["lab"] = lab
    _ACTIVE["notebook"] = str(notebook or f"{lab}.ipynb")
    _explain_name_errors()
    problems = cell_problems(_ACTIVE["notebook"], lab)
    costly = [message for message, costs in problems if costs]
    for message, costs in problems:
        if not costs:
            print(f"⚠ {message}")
    if costly:
        raise LabCheckError("Graded cells are missing from this notebook (as last saved), and their points are "
                            "lost unless you restore them:\n  - " + "\n  - ".join(costly)
                            + "\nRestore them (Edit → Undo Delete Cells, or copy them from a fresh copy of the lab).")
    print(f"{lab}: ready ({len(REQUIRED_CELLS[lab])} graded cells in place)" if not problems else
          f"{lab}: ready (the notices above do not change your grade)")


def cell_problems(notebook: str | Path, lab: str) -> list[tuple[str, bool]]:
    """Problems with a lab notebook's graded cells: (sentence, whether it costs points), [] when
    all are in place or the file cannot be found (e.g. renamed: nothing to compare). Measured
    with nbgrader: it turns a test or solution cell changed to Markdown back into code, but
    cannot restore a deleted test cell; a deleted solution cell costs nothing if the function is
    defined in another cell, and otherwise its checks say so."""
    path = Path(notebook)
    if not path.exists():
        return []
    try:
        cells = json.loads(path.read_text())["cells"]
    except (ValueError, KeyError) as err:
        return [(f"{path.name} could not be read as a notebook ({err})", True)]
    found = {c.get("metadata", {}).get("nbgrader", {}).get("grade_id"): c["cell_type"] for c in cells}
    problems = []
    for grade_id, cell_type in REQUIRED_CELLS[lab].items():
        test = grade_id.startswith("test_")
        if grade_id not in found and test:
            problems.append((f"the graded check '{grade_id}' has been deleted", True))
        elif grade_id not in found:
            problems.append((f"the cell '{grade_id}' has been deleted: if you wrote `{grade_id}` in another cell "
                             "it is graded all the same; if not, its checks will say it is missing", False))
        elif found[grade_id] != cell_type:
            problems.append((f"the cell '{grade_id}' was changed to a {found[grade_id]} cell: the grader runs it as "
                             f"{cell_type} all the same; to run it yourself, select it and press Esc, then Y", False))
    return problems


def edited_locked_cells(notebook: str | Path) -> list[str]:
    """Locked cells (text, locked code, test cells) whose content no longer matches the checksum
    nbgrader wrote into them at release, one sentence each: a real edit, unlike autograde's
    "Attribute 'checksum' … has changed!" warning, which every hidden-test cell of every
    submission triggers (nbgrader compares with the source's checksum, taken before the hidden
    tests were removed). nbgrader restores these cells before grading either way."""
    from nbgrader.utils import compute_checksum
    import nbformat
    try:
        nb = nbformat.read(str(notebook), as_version=4)
    except Exception as err:  # noqa: BLE001 (any unreadable file is one sentence, not a traceback)
        return [f"{Path(notebook).name} could not be read as a notebook ({err})"]
    edited = []
    for c in nb.cells:
        meta = c.metadata.get("nbgrader", {})
        if meta.get("locked") and "checksum" in meta and compute_checksum(c) != meta["checksum"]:
            edited.append(f"the locked cell '{meta.get('grade_id')}' was edited (nbgrader restores it for grading)")
    return edited


def structure_problems(notebook: str | Path, lab: str) -> list[str]:
    """Every `cell_problems` sentence (what `alignlab lab check` lists for an instructor)."""
    return [message for message, _ in cell_problems(notebook, lab)]


def _explain_name_errors() -> None:
    """In IPython, a NameError after a student's function failed says why the name is missing —
    the cell that defines it stopped early — instead of a bare traceback. The cell still fails."""
    try:
        shell = get_ipython()  # noqa: F821 (defined only inside IPython)
    except NameError:
        return

    def explain(self, etype, value, tb, tb_offset=None):
        if not _FAILED:
            return self.showtraceback((etype, value, tb), tb_offset=tb_offset)
        why = "; ".join(f"`{name}` {what}" for name, (_, what) in _FAILED.items())
        err = _SkippedCell(f"this cell was skipped: {value}, because a cell above stopped early ({why}). "
                           "Fix that function, run its cell again, then the cells below it.")
        self.showtraceback((NameError, err, None))  # still a NameError: nbgrader matches it to the reply's
    shell.set_custom_exc((NameError,), explain)


class _SkippedCell(NameError):
    """The NameError of a cell that needs what an earlier, failed cell did not define."""

    def _render_traceback_(self) -> list[str]:
        return [f"NameError: {self}"]


def student_function(name: str, fn: Callable | None = None) -> Callable:
    """`fn` if given, else the function called `name` in the notebook's namespace; when it is
    missing, say why (its cell deleted, changed type, or not run) instead of a NameError."""
    if fn is not None:
        return fn
    fn = getattr(sys.modules.get("__main__"), name, None)
    if callable(fn):
        return fn
    hint = f"run the cell where you write `{name}` (and the cells above it), then this one again"
    if _ACTIVE["lab"] is not None:
        problems = [p for p, _ in cell_problems(_ACTIVE["notebook"], _ACTIVE["lab"]) if f"'{name}'" in p]
        if problems:
            hint = problems[0].split(":")[0] + f"; restore it, or write `{name}` again in a cell above this one"
    raise LabCheckError(f"`{name}` is not defined: {hint}.")


def call_timeout() -> float:
    """The time limit of one call of a student's function (`ALIGNLAB_LAB_CALL_TIMEOUT`, seconds;
    0 turns it off)."""
    try:
        return float(os.environ.get(CALL_TIMEOUT_ENV, DEFAULT_CALL_TIMEOUT_S))
    except ValueError:
        raise LabCheckError(f"{CALL_TIMEOUT_ENV} must be a number of seconds, not "
                            f"{os.environ[CALL_TIMEOUT_ENV]!r}.") from None


@contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Raise `_TimedOut` in the block after `seconds` (SIGALRM). Where no alarm can be set — not
    the main thread, no SIGALRM (Windows), or an outer limit already running — there is no limit,
    and nbgrader's per-cell timeout remains the backstop."""
    usable = (seconds > 0 and hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
              and signal.getitimer(signal.ITIMER_REAL)[0] == 0)
    if not usable:
        yield
        return

    def on_alarm(signum, frame):
        raise _TimedOut()
    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _fail(name: str, fn: Callable, why: str, message: str) -> NoReturn:
    _FAILED[name] = (fn, why)
    raise LabCheckError(message)


def call(name: str, fn: Callable, *args, **kwargs) -> Any:
    """Call the student's function under a time limit (`call_timeout`), turning "not written
    yet", crashes and endless loops into feedback. A function that timed out is not called again
    (every later call fails at once, naming the first failure) until the student redefines it."""
    limit = call_timeout()
    if name in _FAILED and _FAILED[name][0] is fn and "did not return" in _FAILED[name][1]:
        raise LabCheckError(f"`{name}` was not run: {_FAILED[name][1]} in an earlier cell. Fix it, run its cell "
                            "again, then the cells below it.")
    try:
        with _time_limit(limit):
            out = fn(*args, **kwargs)
    except _TimedOut:
        _fail(name, fn, f"did not return within {limit:g} s",
              f"`{name}` did not return within {limit:g} s (the limit for one call; this check's inputs take "
              "milliseconds) — look for a loop that never ends.")
    except NotImplementedError:
        _fail(name, fn, "still raises NotImplementedError",
              f"`{name}` still raises NotImplementedError: replace that line with your code.")
    except LabCheckError:
        raise
    except Exception as err:  # the student's bug, reported with the inputs' shapes
        shapes = ", ".join(str(tuple(a.shape)) if torch.is_tensor(a) else type(a).__name__ for a in args)
        _FAILED[name] = (fn, f"raised {type(err).__name__}")
        raise LabCheckError(f"`{name}` raised {type(err).__name__}: {err} (called with {shapes}).") from err
    _FAILED.pop(name, None)
    return out


def student_error(err: LabCheckError) -> str:
    """What the student's own function raised ("ValueError: …"), from the error `call` chained it
    to; re-raises `err` when the check failed for another reason (not written yet, too slow, …)."""
    cause = err.__cause__
    if cause is None:
        raise err
    return f"{type(cause).__name__}: {cause}"


def guarded(name: str, fn: Callable) -> Callable:
    """`fn` called through `call`: what a lab hands to a trainer, so the training cell gets the
    same time limit and feedback as the checks."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return call(name, fn, *args, **kwargs)
    return wrapper


def as_tensor(name: str, out: Any, shape: tuple[int, ...] | None = None) -> torch.Tensor:
    """The student's output as a float64 tensor of the expected shape, or feedback saying why not."""
    if not torch.is_tensor(out):
        raise LabCheckError(f"`{name}` returned a {type(out).__name__}; return a torch.Tensor.")
    if shape is not None and tuple(out.shape) != shape:
        what = "a scalar (0-dim tensor, e.g. `.mean()` or `.sum() / n`)" if shape == () else f"shape {shape}"
        raise LabCheckError(f"`{name}` returned shape {tuple(out.shape)}; it should return {what}.")
    return out.detach().double()


def close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-5) -> None:
    """Equal to a tolerance relative to b's size (float32 students against float64 references)."""
    a, b = a.detach().double(), b.detach().double()
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=tol, atol=tol))


def diagnose(out: torch.Tensor, candidates: dict[str, torch.Tensor], tol: float = 1e-4) -> str | None:
    """The message of the first known mistake whose output `out` matches, else None."""
    for message, value in candidates.items():
        if close(out, value, tol):
            return message
    return None


def wrong(name: str, got: torch.Tensor, mistakes: dict[str, torch.Tensor], otherwise: str,
          tol: float = 1e-4) -> NoReturn:
    """Raise a wrong answer's feedback: the first known mistake `got` reproduces, else `otherwise`."""
    raise LabCheckError(f"{name}: {diagnose(got, mistakes, tol) or otherwise}")


def expected(got: torch.Tensor, want: torch.Tensor, where: str) -> str:
    """"expected 0.6931 <where>, got 0.5000." and, when it applies, how many times off it is."""
    return f"expected {float(want):.4f} {where}, got {float(got):.4f}." + ratio_hint(got, want)


def ratio_hint(out: torch.Tensor, ref: torch.Tensor) -> str:
    """"off by a factor of k" when out is a constant multiple of the reference."""
    if ref.numel() == 1 and abs(float(ref)) > 1e-8:
        k = float(out) / float(ref)
        if abs(k - 1) > 1e-3 and abs(k) > 1e-3:
            return f" Your value is {k:.4g} × the expected one."
    return ""


def compare_random(name: str, fn: Callable, reference: Callable, make_inputs: Callable[[torch.Generator], tuple],
                   seed: int, trials: int = 5, tol: float = 1e-5) -> None:
    """The hidden tests' core: `fn` and `reference` agree on `trials` random inputs drawn with
    `seed`. `reference(*inputs)` returns what `fn` should (a tensor, or a tuple of tensors)."""
    g = torch.Generator().manual_seed(seed)
    for t in range(trials):
        inputs = make_inputs(g)
        want = reference(*inputs)
        got = call(name, fn, *inputs)
        want_t, got_t = (want, got) if isinstance(want, tuple) else ((want,), (got,))
        if not isinstance(got_t, tuple) or len(got_t) != len(want_t):
            raise LabCheckError(f"`{name}` should return {len(want_t)} value(s) on random input #{t + 1}.")
        for w, o in zip(want_t, got_t):
            o = as_tensor(name, o, tuple(w.shape))
            if not close(o, w, tol):
                raise LabCheckError(f"`{name}` differs from the reference on random input #{t + 1} "
                                    f"(max |difference| {(o - w.double()).abs().max():.3g}); "
                                    "it passes the worked example but not every case — check shapes other than "
                                    "the example's, padding, and rows of different lengths.")
    return passed(f"`{name}` matches the reference on {trials} random inputs")
