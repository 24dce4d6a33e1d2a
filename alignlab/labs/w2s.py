"""Lab 8 (weak-to-strong generalization): performance gap recovered and the auxiliary confidence
loss, plugged into `w2s.fit`.

The student writes `pgr` — (weak-to-strong − weak) / (ceiling − weak), elementwise on arrays, a
ValueError where there is no gap (Burns et al., 2023, §3) — and `confidence_loss` — (1 − α)·CE(f,
f_w) + α·CE(f, hard(f)), the student's predictions hardened at the threshold that gives them the
weak labels' positive rate (§4.3.2), returning just the loss — with `alignlab.losses`' signatures
(the references of the hidden tests). `w2s_objective` hands the loss to `w2s.fit`;
`check_w2s_run` replays the student's run with the library's loss and compares.
"""
from __future__ import annotations

import math
import random
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .. import losses, w2s
from .core import (REQUIRED_CELLS, LabCheckError, as_tensor, call, close, compare_random, guarded, passed,
                   student_error, student_function, wrong)

REQUIRED_CELLS["lab8_w2s"] = {"pgr": "code", "test_pgr": "code", "confidence_loss": "code",
                              "test_confidence_loss": "code", "test_w2s_run": "code"}


# --- pgr ----------------------------------------------------------------------------------------

PGR_CASES = ((0.6, 0.75, 0.8), (0.7, 0.65, 0.9))
"""The worked example, (weak, weak-to-strong, ceiling): a student that recovers ¾ of the gap, and
one that does worse than its supervisor (PGR −¼)."""
SEEDS = (np.array([0.6, 0.7, 0.55]), np.array([0.75, 0.65, 0.7]), np.array([0.8, 0.9, 0.8]))
"""The same three accuracies over three seeds, as arrays: PGR [0.75, −0.25, 0.6]."""
NO_GAP = (
    ("ceiling = weak = 0.7", (0.7, 0.75, 0.7)),
    ("the ceiling below the weak model (0.6 < 0.7)", (0.7, 0.65, 0.6)),
    ("a NaN ceiling (a run that failed: `gap <= 0` is False for NaN, so test `not gap > 0`)",
     (0.6, 0.7, float("nan"))),
    ("arrays in which one seed of three has no gap (raise if any seed has none)",
     (np.array([0.6, 0.7, 0.55]), np.array([0.75, 0.72, 0.7]), np.array([0.8, 0.7, 0.8]))),
)
"""Where `pgr` must raise ValueError: what the case is, and its arguments."""


def _pgr_values(formula: Callable[[float, float, float], float]) -> torch.Tensor:
    return torch.tensor([formula(*case) for case in PGR_CASES], dtype=torch.float64)


def _pgr_mistakes() -> dict[str, torch.Tensor]:
    """What each common mistake returns on PGR_CASES, with its feedback."""
    return {
        "you swapped numerator and denominator: PGR = (weak-to-strong − weak) / (ceiling − weak), the share "
        "of the gap the student recovered.": _pgr_values(lambda w, s, c: (c - w) / (s - w)),
        "you computed 1 − PGR, the share of the gap still missing: the numerator is weak-to-strong − weak "
        "(how far the student got above its supervisor), not ceiling − weak-to-strong.":
            _pgr_values(lambda w, s, c: (c - s) / (c - w)),
        "you returned a percentage: PGR is a fraction (1 = the whole gap recovered); do not multiply by 100.":
            _pgr_values(lambda w, s, c: 100 * (s - w) / (c - w)),
        "you clipped PGR at 0: a student worse than its supervisor has a negative PGR, and that is worth "
        "seeing.": _pgr_values(lambda w, s, c: min(1.0, max(0.0, (s - w) / (c - w)))),
        "you divided by 1 − weak (the gap to a perfect score): the gap to recover is the one to the strong "
        "ceiling, ceiling − weak.": _pgr_values(lambda w, s, c: (s - w) / (1 - w)),
    }


def _as_float(out) -> float | None:
    """The student's PGR as a float, None when it is not one number."""
    try:
        return float(out) if np.ndim(out) == 0 else None
    except (TypeError, ValueError, RuntimeError):
        return None


def check_pgr(fn: Callable | None = None) -> None:
    """Check PGR on two cases of floats, on the same as arrays over three seeds, then that it raises
    ValueError wherever the ceiling does not exceed the weak model."""
    fn = student_function("pgr", fn)
    outs = [call("pgr", fn, *case) for case in PGR_CASES]
    got = [_as_float(o) for o in outs]
    if None in got:
        bad = outs[got.index(None)]
        raise LabCheckError(f"pgr: on three floats return one number (a float); yours returned {bad!r}"
                            + (" — is the `return` missing?" if bad is None else "."))
    got_t, want = torch.tensor(got, dtype=torch.float64), _pgr_values(losses.pgr)
    if not close(got_t, want):
        wrong("pgr", got_t, _pgr_mistakes(),
              f"on (weak, weak-to-strong, ceiling) = {PGR_CASES} expected {want.tolist()}, got {got}.")
    try:
        out = call("pgr", fn, *(a.copy() for a in SEEDS))
    except LabCheckError as err:
        raise LabCheckError(f"pgr: right on floats, but it raised on arrays (one accuracy per seed, every gap "
                            f"positive), {student_error(err)}; compute with numpy on the whole arrays "
                            "(np.asarray, −, /, np.any for the test): float(), max() and `if gap <= 0` need one "
                            "number.") from err.__cause__
    per_seed, want_seeds = np.asarray(out, dtype=float) if np.ndim(out) else None, losses.pgr(*SEEDS)
    if per_seed is None or per_seed.shape != want_seeds.shape:
        raise LabCheckError(f"pgr: on arrays of three seeds' accuracies return an array of three PGRs (one per "
                            f"seed, elementwise), not {out!r}.")
    if not np.allclose(per_seed, want_seeds, rtol=1e-6, atol=1e-9):
        raise LabCheckError(f"pgr: right on floats, but not elementwise on arrays: expected {want_seeds}, got "
                            f"{per_seed}; each seed's PGR uses that seed's own three accuracies.")
    for what, args in NO_GAP:
        try:
            with np.errstate(divide="ignore", invalid="ignore"):  # this check's message says it, not a warning
                out = call("pgr", fn, *args)
        except LabCheckError as err:
            if isinstance(err.__cause__, ValueError):
                continue
            raise LabCheckError(f"pgr: where there is no gap raise ValueError, not {student_error(err)} (with "
                                f"{what}).") from err.__cause__
        raise LabCheckError(f"pgr: no error where there is no gap to recover: with {what} you returned {out!r}; "
                            "raise ValueError — the ratio would be infinite, NaN or meaningless.")
    return passed(f"pgr = {got[0]:.2f} and {got[1]:+.2f}; elementwise on arrays; ValueError where the ceiling "
                  "does not exceed the weak model")


def _pgr_inputs(rng: random.Random) -> tuple:
    """Floats, or arrays of 1–5 seeds; a positive gap everywhere, or (a quarter of the time) not."""
    n = rng.choice([None, None, 1, 2, 3, 5])
    size = 1 if n is None else n
    weak = [rng.uniform(0.5, 0.8) for _ in range(size)]
    gap = [rng.uniform(0.01, 0.2) for _ in range(size)]
    if rng.random() < 0.25:
        gap[rng.randrange(size)] = rng.choice([0.0, -0.05, float("nan")])
    w2s_acc = [w + rng.uniform(-0.1, 0.25) for w in weak]
    ceiling = [w + g for w, g in zip(weak, gap)]
    return tuple(x[0] if n is None else np.array(x) for x in (weak, w2s_acc, ceiling))


def hidden_pgr(fn: Callable | None = None, seed: int = 0, trials: int = 12) -> None:
    """pgr against `losses.pgr` on random floats and arrays, with and without a gap."""
    fn = student_function("pgr", fn)
    rng = random.Random(seed)
    for t in range(trials):
        args = _pgr_inputs(rng)
        try:
            want = losses.pgr(*args)
        except ValueError:
            want = None
        try:
            got = call("pgr", fn, *(np.copy(a) if isinstance(a, np.ndarray) else a for a in args))
        except LabCheckError as err:
            if want is None and isinstance(err.__cause__, ValueError):
                continue
            raise
        shape = np.shape(want)
        if want is None or np.shape(got) != shape or not np.allclose(np.asarray(got, dtype=float), want,
                                                                      rtol=1e-6, atol=1e-9):
            raise LabCheckError(f"pgr differs from the reference on random case #{t + 1} ("
                                f"{'floats' if not shape else f'{shape[0]} seeds'}): it passes the worked example "
                                "but not every case — check one seed, a negative PGR, and a gap that is 0 or NaN "
                                "in one seed only.")
    return passed(f"pgr matches the reference on {trials} random cases")


# --- confidence_loss ----------------------------------------------------------------------------

LOGITS = torch.tensor([[0.3, 0.9], [1.1, 0.2], [-0.4, 0.5], [0.2, 0.4], [0.7, 2.0], [-0.2, 1.5],
                       [0.6, 0.3], [0.1, 0.45]])
"""The worked example's student logits (8, 2): f[:, 0] all different, below ½ in six rows."""
WEAK = torch.tensor([0.35, 0.6, 0.3, 0.45, 0.4, 0.55, 0.15, 0.2])
"""The weak labels' positive probabilities, f_w[:, 1]: mean 0.375, so three of the eight rows harden
to positive (the quantile of f[:, 0] at 0.375), not four (the median), five (at 0.625) or six (by
argmax); two of the weak labels' argmaxes are positive."""
ALPHAS = (0.25, 0.75)
"""The check's two calls: α ≠ ½, so α on the wrong term shows."""


def _weak_probs() -> torch.Tensor:
    return torch.stack([1 - WEAK, WEAK], -1)  # (B, 2)


def reference_loss(student_logits, weak_probs, alpha) -> torch.Tensor:
    """`losses.confidence_loss`'s loss in float64 (the hidden tests' reference)."""
    return losses.confidence_loss(student_logits.double(), weak_probs.double(), alpha)[0]


def _threshold(p0: torch.Tensor, share: torch.Tensor | float | None) -> torch.Tensor | float:
    return 0.5 if share is None else torch.quantile(p0, share)


def _confidence_values(share: Callable = lambda w: w[:, 1].mean(), columns: Callable = lambda p0, t: (p0 >= t, p0 < t),
                       self_target: Callable | None = None, mix: Callable = lambda a, w, h: (1 - a) * w + a * h,
                       weak_labels: Callable = lambda w: w, ce: Callable = lambda z, t: -(t * z.log_softmax(-1)),
                       reduce: Callable = torch.mean) -> torch.Tensor:
    """The ALPHAS' losses (float64) of a student with one piece changed: the quantile `share(f_w)`
    (None: a threshold of ½), the one-hot `columns(f[:, 0], threshold)`, a `self_target(f)` instead
    of hard(f), the target `mix(α, f_w, hard)`, the weak labels `weak_labels(f_w)`, the per-class
    cross-entropy `ce(logits, target)` and its `reduce` over the batch."""
    logits, weak = LOGITS.double(), weak_labels(_weak_probs().double())
    probs = logits.softmax(-1)  # (B, 2)
    threshold = _threshold(probs[:, 0], share(weak))
    hard = torch.stack(columns(probs[:, 0], threshold), -1).double() if self_target is None else self_target(probs)
    return torch.stack([reduce(ce(logits, mix(a, weak, hard)).sum(-1)) for a in ALPHAS])


def _confidence_mistakes() -> dict[str, torch.Tensor]:
    """The losses (ALPHAS) each common mistake gives on the worked example, with its feedback."""
    return {
        "you hardened by argmax (a fixed threshold of ½ on f[:, 0]): threshold at the quantile of f[:, 0] at "
        "the weak labels' positive share, weak_probs[:, 1].mean(), so the hardened predictions have the weak "
        "labels' positive rate and the student cannot collapse onto one class.":
            _confidence_values(share=lambda w: None),
        "you thresholded at the median of f[:, 0] (the quantile at ½): take the quantile at the weak labels' "
        "positive share, weak_probs[:, 1].mean().": _confidence_values(share=lambda w: 0.5),
        "your hardened positive rate is the weak labels' negative share: rows whose f[:, 0] is below the "
        "threshold become positives, so take the quantile at the positive share, weak_probs[:, 1].mean(), "
        "not weak_probs[:, 0].mean().": _confidence_values(share=lambda w: w[:, 0].mean()),
        "your one-hot columns are the wrong way round: a row whose f[:, 0] is at or above the threshold is "
        "class 0, [1, 0]; below it, class 1, [0, 1].": _confidence_values(columns=lambda p0, t: (p0 < t, p0 >= t)),
        "α weights the wrong term: L = (1 − α)·CE(f, f_w) + α·CE(f, hard(f)) — α is the weight of the student's "
        "own hardened predictions.": _confidence_values(mix=lambda a, w, h: a * w + (1 - a) * h),
        "your self-target is the student's soft probabilities f: harden them to one-hot at the threshold, and "
        "detach them (a target is a constant).": _confidence_values(self_target=lambda p: p),
        "you hardened the weak labels (their argmax): the first term is the cross-entropy to the weak model's "
        "soft probabilities f_w, as they are.":
            _confidence_values(weak_labels=lambda w: F.one_hot(w.argmax(-1), 2).double()),
        "you summed over the batch: average the examples' losses (F.cross_entropy's default).":
            _confidence_values(reduce=torch.sum),
        "the sign is flipped: the cross-entropy is −Σ target · log f, a loss to minimise.":
            -_confidence_values(),
        "you passed probabilities to F.cross_entropy: it takes logits (it applies log_softmax itself).":
            _confidence_values(ce=lambda z, t: -(t * z.softmax(-1).log_softmax(-1))),
    }


def check_confidence_loss(fn: Callable | None = None) -> None:
    """Check the loss of eight examples with α = 0.25 and 0.75, then its gradient: that of a
    cross-entropy to a constant target, (softmax(logits) − target) / B."""
    fn = student_function("confidence_loss", fn)
    logits = [LOGITS.clone().requires_grad_(True) for _ in ALPHAS]
    outs = [call("confidence_loss", fn, z, _weak_probs(), a) for z, a in zip(logits, ALPHAS)]
    got = torch.stack([as_tensor("confidence_loss", out, ()) for out in outs])
    want = torch.stack([reference_loss(LOGITS, _weak_probs(), a) for a in ALPHAS])
    if not close(got, want):
        wrong("confidence_loss", got, _confidence_mistakes(),
              f"with α = {ALPHAS} expected {want.numpy().round(4)}, got {got.numpy().round(4)}.")
    if not all(out.requires_grad for out in outs):
        raise LabCheckError("confidence_loss: right values, but no gradient reaches `student_logits` (a "
                            ".detach(), .item() or numpy round trip on the student's side): detach the hardened "
                            "target only, and compute the cross-entropy from the logits.")
    outs[-1].backward()
    want_grad = _constant_target_grad(ALPHAS[-1])
    if logits[-1].grad is None or not close(logits[-1].grad, want_grad):
        raise LabCheckError("confidence_loss: right values, but ∂L/∂logits is not (softmax(logits) − target) / B, "
                            "the gradient of a cross-entropy to a constant target: your hardened target carries "
                            "gradient — build it from detached probabilities (a target, never a path for "
                            "gradients).")
    return passed(f"confidence_loss = {got[0]:.4f} (α = {ALPHAS[0]}), {got[1]:.4f} (α = {ALPHAS[1]}): the weak "
                  "labels' and the hardened predictions' cross-entropies, the target a constant")


def _constant_target_grad(alpha: float) -> torch.Tensor:
    """∂L/∂logits of the reference on the worked example: (softmax − target) / B, target detached."""
    z = LOGITS.double().clone().requires_grad_(True)
    reference_loss(z, _weak_probs(), alpha).backward()
    return z.grad


def _confidence_inputs(g: torch.Generator) -> tuple:
    """B ∈ 2…16 examples: logits of either sign and scale, soft weak labels, α in [0, 1]."""
    B = int(torch.randint(2, 17, (), generator=g))
    logits = torch.randn(B, 2, generator=g) * (0.5 + 2 * float(torch.rand((), generator=g)))
    p, r = torch.rand(B, generator=g), float(torch.rand((), generator=g))
    alpha = 0.0 if r < 0.15 else 1.0 if r < 0.3 else float(torch.rand((), generator=g))
    return logits, torch.stack([1 - p, p], -1), alpha


def hidden_confidence_loss(fn: Callable | None = None, seed: int = 0) -> None:
    """confidence_loss against `losses.confidence_loss` on random batches and α."""
    compare_random("confidence_loss", student_function("confidence_loss", fn), reference_loss, _confidence_inputs,
                   seed, trials=8)


# --- the run ------------------------------------------------------------------------------------


def w2s_objective(confidence_loss: Callable) -> Callable:
    """The student's `confidence_loss` as `w2s.fit`'s `loss_fn`: (logits, targets, α) → (loss,
    metrics). The student gets the logits in float32 at least (bf16 under a GPU's autocast; the
    library upcasts them too) and α as a float; the logged metrics (the hardened positive rate,
    agreement with the weak labels) come from `losses.confidence_loss`, computed beside."""
    loss = guarded("confidence_loss", confidence_loss)

    def loss_and_metrics(student_logits, weak_probs, alpha):
        value = loss(losses.upcast(student_logits), losses.upcast(weak_probs), float(alpha))  # bf16 on a GPU
        with torch.no_grad():
            metrics = losses.confidence_loss(student_logits, weak_probs, alpha)[1]
        return value, metrics
    return loss_and_metrics


def _library_run(lm, tune: str, feats: w2s.Features, targets: torch.Tensor, config: w2s.FitConfig
                 ) -> tuple[list[dict], list[tuple]]:
    """The same fit with `losses.confidence_loss`, from a fresh classifier of `lm`: its history, and
    the arguments of each call of the loss (logits detached)."""
    calls = []

    def recorded(logits, weak_probs, alpha):
        calls.append((losses.upcast(logits.detach()).clone(), weak_probs.clone(), float(alpha)))
        return losses.confidence_loss(logits, weak_probs, alpha)
    history = w2s.fit(w2s.Classifier(lm, tune), feats, targets, config, loss_fn=recorded)
    return history, calls


def check_w2s_run(history: list[dict], objective: Callable, lm, tune: str, feats: w2s.Features,
                  targets: torch.Tensor, config: w2s.FitConfig, tol: float = 1e-4) -> None:
    """A student's fit with the student's `objective` against the same fit with the library's loss
    (same classifier, weights, seed and batches): every logged number finite; on the first batch
    (α = 0 in the warm-up) and the last (α at full weight, the logits trained) the same loss, to
    `tol`; the same logged losses all along, to 10 × `tol` (on a GPU, bf16 and its attention kernels
    do not repeat a run bit for bit; on a CPU it does)."""
    for row in history:
        bad = [k for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            raise LabCheckError(f"step {row['step']}: {', '.join(bad)} not finite; look for the log of a "
                                "probability of 0 (take log_softmax of the logits).")
    library, calls = _library_run(lm, tune, feats, targets, config)
    for where, args in (("first", calls[0]), ("last", calls[-1])):
        theirs = float(losses.confidence_loss(*args)[0])
        mine = float(objective(args[0].clone(), args[1].clone(), args[2])[0])
        if not math.isclose(mine, theirs, rel_tol=tol, abs_tol=tol):
            raise LabCheckError(f"on the run's {where} batch ({len(args[0])} examples, α = {args[2]:.3g}) your "
                                f"loss is {mine:.6f}, the library's {theirs:.6f}; it passes the check above, so "
                                "look at what the trainer passes: batches of another size, α as the warm-up "
                                "sets it, dtypes, in-place edits.")
    if len(history) != len(library):
        raise LabCheckError(f"the run logged {len(history)} steps, the library's {len(library)}: run the cells "
                            "above again, in order, without changing them.")
    differ = [row["step"] for row, lib in zip(history, library)
              if not math.isclose(row["loss"], lib["loss"], rel_tol=10 * tol, abs_tol=10 * tol)]
    if differ:
        raise LabCheckError(f"your loss gives the library's values on the replayed batches, but the run logged "
                            f"other losses from step {differ[0]} on: the classifier moved differently — look at "
                            "the gradient (what you detach, and where) and at in-place edits of the inputs.")
    return passed(f"{len(history)} logged steps with your confidence_loss; on the first and last batches your loss "
                  f"matches the library's, and so does every logged loss (last {history[-1]['loss']:.4f})")
