"""What every lab's checks share: the error a check raises, the lookup of the student's function,
the notebook-structure check, and the comparison against the reference on random inputs.

A check never ends in a bare `assert`: it raises `LabCheckError` with a sentence that says what
is wrong and what to try, because the same message reaches the student twice — in the notebook
while they work, and in the feedback an instructor hands back after autograding.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable, NoReturn

import torch

#: Lab name → {grade id: cell type} of the cells a submission must keep (filled by each lab module).
REQUIRED_CELLS: dict[str, dict[str, str]] = {}
_ACTIVE: dict[str, str | None] = {"lab": None, "notebook": None}


class LabCheckError(Exception):
    """A check failed; the message is the feedback (what is wrong, and a hint)."""


def passed(message: str) -> None:
    """Print a ✓ line and return True (a check's success)."""
    print(f"✓ {message}")
    return True


def start(lab: str, notebook: str | Path | None = None) -> None:
    """Set up a lab: remember which one this kernel runs, and check that the notebook still has
    every cell the grader needs (none deleted, none changed from Code to Markdown)."""
    if lab not in REQUIRED_CELLS:
        raise LabCheckError(f"unknown lab {lab!r}; the labs are {sorted(REQUIRED_CELLS)}")
    _ACTIVE["lab"] = lab
    _ACTIVE["notebook"] = str(notebook or f"{lab}.ipynb")
    problems = structure_problems(_ACTIVE["notebook"], lab)
    if problems:
        raise LabCheckError("Cells the grader needs are missing or changed in this notebook (as last saved):"
                            "\n  - " + "\n  - ".join(problems)
                            + "\nRestore them (Edit → Undo Delete Cells, or copy them from a fresh copy of "
                              "the lab) before you submit.")
    print(f"{lab}: ready ({len(REQUIRED_CELLS[lab])} graded cells in place)")


def structure_problems(notebook: str | Path, lab: str) -> list[str]:
    """Problems with a lab notebook's graded cells, one sentence each; [] when all are in place
    or when the file cannot be found (e.g. the notebook was renamed: nothing to compare)."""
    path = Path(notebook)
    if not path.exists():
        return []
    try:
        cells = json.loads(path.read_text())["cells"]
    except (ValueError, KeyError) as err:
        return [f"{path.name} could not be read as a notebook ({err})"]
    found = {c.get("metadata", {}).get("nbgrader", {}).get("grade_id"): c["cell_type"] for c in cells}
    problems = []
    for grade_id, cell_type in REQUIRED_CELLS[lab].items():
        if grade_id not in found:
            problems.append(f"the cell '{grade_id}' has been deleted")
        elif found[grade_id] != cell_type:
            problems.append(f"the cell '{grade_id}' was changed to a {found[grade_id]} cell; "
                            f"select it and make it a {cell_type} cell again (Esc, then Y for Code)")
    return problems


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
        problems = [p for p in structure_problems(_ACTIVE["notebook"], _ACTIVE["lab"]) if f"'{name}'" in p]
        if problems:
            hint = problems[0]
    raise LabCheckError(f"`{name}` is not defined: {hint}.")


def call(name: str, fn: Callable, *args, **kwargs) -> Any:
    """Call the student's function, turning "not written yet" and crashes into feedback."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise LabCheckError(f"`{name}` still raises NotImplementedError: replace that line with your code.") from None
    except LabCheckError:
        raise
    except Exception as err:  # the student's bug, reported with the inputs' shapes
        shapes = ", ".join(str(tuple(a.shape)) if torch.is_tensor(a) else type(a).__name__ for a in args)
        raise LabCheckError(f"`{name}` raised {type(err).__name__}: {err} (called with {shapes}).") from err


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
