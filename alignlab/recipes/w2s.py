"""Chapter 8's entry: the weak-to-strong grid on the size ladder's base models.

    base@small ─┐
    base ───────┼─► w2s_grid     every rung on ground truth (weak supervisors, ceilings), every larger
    base@large ─┘                rung on every smaller one's labels (students: xent, confidence loss),
                                 per task of `w2s.tasks` and seed; the ceilings of `w2s.screen`'s tasks

One entry, a JSON record (`load_grid`): the runs are seconds each on cached features, so the chapter
reads them all from one build rather than a checkpoint per classifier.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from .. import models, w2s, w2s_eval
from ..zoo import Job, Recipe

CHAPTER = "08_weak_to_strong"
GRID_FILE = "grid.json"


def _examples(name: str, profile, fits) -> tuple[list, list]:
    cfg = profile.w2s
    return (w2s.task_examples(name, cfg.train_examples, False, cfg.per_prompt, fits),
            w2s.task_examples(name, cfg.test_examples, True, cfg.per_prompt, fits))


def grid(job: Job) -> dict:
    cfg = job.profile.w2s
    lms = {rung: w2s.load_base(job.deps[w2s_eval.entry_name(rung)]) for rung in w2s_eval.RUNGS}
    tok, context = lms["policy"][1], lms["policy"][0].config.max_position_embeddings
    fits = lambda text: len(tok(text).input_ids) <= context  # noqa: E731
    fit = w2s.FitConfig(lr=cfg.lr, epochs=cfg.epochs, batch=cfg.batch, warmup_frac=cfg.warmup_frac, evals=cfg.evals)
    out = {"n_params": {rung: models.n_params(lm) for rung, (lm, _) in lms.items()}, "tasks": {}, "screen": {}}
    for name in cfg.tasks:
        t0 = time.time()
        examples, test = _examples(name, job.profile, fits)
        out["tasks"][name] = w2s_eval.run_task(name, lms, examples, test, fit, cfg.tune, cfg.alpha, range(cfg.seeds))
        out["tasks"][name]["seconds"] = round(time.time() - t0, 1)
    for name in cfg.screen:
        examples, test = _examples(name, job.profile, fits)
        out["screen"][name] = w2s_eval.screen_task(name, lms, examples, test, fit, cfg.tune)
    (job.out / GRID_FILE).write_text(json.dumps(out))
    return {"tasks": {n: {"n_train": r["n_train"], "n_test": r["n_test"], "seconds": r["seconds"]}
                      for n, r in out["tasks"].items()}}


def load_grid(path: Path) -> dict:
    """`w2s_grid`'s record: n_params per rung, `tasks` (`w2s_eval.run_task` per grid task) and
    `screen` (`w2s_eval.screen_task` per screened task)."""
    return json.loads((Path(path) / GRID_FILE).read_text())


RUNS = [
    Recipe("w2s_grid", grid, deps=tuple(w2s_eval.entry_name(r) for r in w2s_eval.RUNGS), fields=("w2s",),
           why="weak-to-strong: every rung on ground truth, every larger rung on every smaller one's labels"),
]
