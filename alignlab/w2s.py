"""Weak-to-strong generalization (Burns et al., 2023): can a weak supervisor's labels elicit what a
stronger model already knows?

    weak supervisor   the smaller rung, fine-tuned on ground truth of half A of the training prompts
    weak labels       its soft predictions on half B, data it was not trained on
    strong ceiling    the larger rung, fine-tuned on ground truth of half B
    student           the larger rung, fine-tuned on the weak labels of half B
    PGR               (student − weak) / (ceiling − weak)                         (`losses.pgr`)

A classifier is a pretrained base model with a two-logit linear head on the last token, the head
initialised to zero (their `TransformerWithHead`). `tune` says how much of it trains: `all` every
block (their setting; the `gpu` profile), `mlp` the last block's MLP and the head on features cached
once per model (`cpu`: seconds per run), `head` the head alone (a linear probe).

A task is a binary question about the world with ground truth, put as the corpus's "(A) or (B)"
judging question (`world.choice_prompt`), so the answer is what the model would say next at the
last token: salient, in Burns et al.'s word (§5.2.2). A bare step `Step: 7 + 8 = 15.` is not: the
base models' likelihoods tell true steps from false ones, but a head on the last token reads
nothing (the chapter's screen shows it).
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from . import models, train, world
from .losses import Metrics, confidence_loss
from .world.common import STEP, rng_for

TUNES = ("head", "mlp", "all")
Features = dict[str, torch.Tensor]
"""A classifier's inputs, row-aligned with the texts: {"state"} (N, H) for `head`/`mlp`, the residual
stream at the last token after the last block's attention; {"input_ids", "attention_mask"} (N, T)
for `all`."""


@dataclass(frozen=True)
class Task:
    """A binary task: which of two world responses to a prompt is better on `component` of the gold
    reward (None: the whole gold reward, the reward-modelling task)."""

    name: str
    families: tuple[str, ...]
    component: str | None
    why: str

    @property
    def question(self) -> str:
        """The constitution's judging question for the component ("Which response is more helpful?"
        for correctness); for the whole gold reward the helpfulness question too."""
        return next(p.choice_question for p in world.CONSTITUTION if p.component == (self.component or "correct"))

    def prompts(self, held_out: bool) -> list[str]:
        return _prompts(self.families, held_out)

    def score(self, prompt: str, response: str) -> float:
        if self.component is None:
            return world.gold_reward(prompt, response)
        return world.gold_components(prompt, response)[self.component]


HELD_OUT_POOL = 20_000
"""More than any family's held-out prompts: asking `eval_prompts` for this many returns them all."""


def _prompts(families: Sequence[str], held_out: bool) -> list[str]:
    pools = [world.eval_prompts(f, n=HELD_OUT_POOL) if held_out else world.train_prompts(f) for f in families]
    return list(dict.fromkeys(p for pool in pools for p in pool))


TASKS = {t.name: t for t in (
    Task("sums", ("arithmetic",), "correct", "is this two-digit sum (worked or not) the right one"),
    Task("totals", ("multistep",), "correct", "is this running total right, every operand found in the prompt"),
    Task("preference", world.FAMILIES, None, "which response the gold preference picks: reward modelling"),
    Task("facts", ("knowledge",), "correct", "the true atlas fact: 60 held-out prompts only"),
    Task("harmless", ("harmful",), "harmless", "refuse or comply: memorisable requests"),
    Task("polite", world.FAMILIES, "polite", "rude or not: a surface feature"),
)}
"""Candidate tasks. The profile's `w2s.tasks` are the grid; the chapter screens the rest."""
STEP_TASK = "step"
"""One more candidate, not a comparison: is a bare worked step `Step: x op y = z.` true."""


@dataclass(frozen=True)
class Example:
    text: str
    label: int
    """1 when the second response (B) is the better one (the step is true, for `step`)."""
    group: str
    """The prompt it comes from: splits never share one."""


def _pair(task: Task, prompt: str, label: int, rng, fits: Callable[[str], bool]) -> Example | None:
    """Two world responses that differ on the task's score, ordered so that B is better iff label
    (None when 50 draws find no such pair that `fits`)."""
    for _ in range(50):
        a, b = world.sample_response(prompt, rng)[1], world.sample_response(prompt, rng)[1]
        sa, sb = task.score(prompt, a), task.score(prompt, b)
        worse, better = (a, b) if sa < sb else (b, a)
        text = world.choice_prompt(prompt, task.question, *((worse, better) if label else (better, worse)))
        if sa != sb and fits(text):
            return Example(text, label, prompt)
    return None


def _step_examples(held_out: bool, n: int, rng) -> list[Example]:
    """Bare steps from the arithmetic and multi-step solutions of train (or held-out) prompts, one
    per prompt, half with the result off by the world's slips."""
    prompts = _prompts(("arithmetic", "multistep"), held_out)
    rng.shuffle(prompts)
    out = []
    for p in prompts[:n]:
        x, op, y, z = rng.choice(STEP.findall(world.demonstration(p)))
        out.append((p, f" Step: {x} {op} {y} = {z}."))
    examples = []
    for i, (p, step) in enumerate(out[:n]):
        label = i % 2
        if not label:
            z = int(step.rsplit("= ", 1)[1][:-1])
            step = step.rsplit("= ", 1)[0] + f"= {z + rng.choice([-2, -1, 1, 2, 10])}."
        examples.append(Example(step, label, p))
    return examples


def task_examples(name: str, n: int, held_out: bool, per_prompt: int = 1,
                  fits: Callable[[str], bool] = lambda text: True) -> list[Example]:
    """Up to `n` examples of task `name` from the world's training prompts (or held-out ones),
    labels alternating 1, 0 (balanced classes), at most `per_prompt` per prompt, each text one that
    `fits` (the recipe passes: at most the model's context in tokens); deterministic."""
    rng = rng_for("w2s", name, held_out)
    if name == STEP_TASK:
        return _step_examples(held_out, n, rng)
    task = TASKS[name]
    prompts = task.prompts(held_out)
    rng.shuffle(prompts)
    out = []
    for prompt in (p for _ in range(per_prompt) for p in prompts):
        if len(out) == n:
            break
        ex = _pair(task, prompt, len(out) % 2, rng, fits)
        out += [ex] if ex else []
    return out


def split_halves(examples: Sequence[Example], seed: int) -> tuple[list[int], list[int]]:
    """Indices of half A (the weak supervisor's ground truth) and half B (the ceiling's ground truth,
    the weak labels, the student's), split by prompt with `seed`: no prompt is in both halves, so
    the weak model always labels prompts it was not trained on (Burns et al. split their data in two)."""
    groups = sorted({e.group for e in examples})
    rng_for("w2s-halves", seed).shuffle(groups)
    in_a = set(groups[: len(groups) // 2])
    a = [i for i, e in enumerate(examples) if e.group in in_a]
    return a, [i for i, e in enumerate(examples) if e.group not in in_a]


# --- the classifier: a base model with a two-logit head on the last token --------------------


@torch.no_grad()
def features(lm, tok, texts: Sequence[str], tune: str, batch_size: int = 128) -> Features:
    """What a classifier of `lm` with this `tune` reads for each text (see `Features`): for `head`
    and `mlp` one forward pass of the frozen model now, so that training never runs it again."""
    if tune not in TUNES:
        raise ValueError(f"tune must be one of {TUNES}, not {tune!r}")
    if tok.padding_side != "right":
        raise ValueError("features reads the last token at attention_mask.sum() - 1: pad on the right")
    if tune == "all":
        enc = tok(list(texts), padding=True, return_tensors="pt")
        return {"input_ids": enc.input_ids, "attention_mask": enc.attention_mask}
    grabbed, out = [], []
    hook = lm.model.layers[-1].post_attention_layernorm.register_forward_pre_hook(lambda m, args: grabbed.append(args[0]))
    try:
        for i in range(0, len(texts), batch_size):
            enc = tok(list(texts[i:i + batch_size]), padding=True, return_tensors="pt").to(lm.device)
            lm.model(**enc)  # the body only: the LM head is not needed
            last = enc.attention_mask.sum(1) - 1  # (B,)
            out.append(grabbed.pop()[torch.arange(len(last)), last].float().cpu())  # (B, H)
    finally:
        hook.remove()
    return {"state": torch.cat(out)}


class Classifier(nn.Module):
    """`lm`'s trunk and a zero-initialised linear head → logits (B, 2) at the last token. With tune
    `head`/`mlp` it keeps only the last block's MLP (its residual add, norms) and reads `features`
    taken after that block's attention: the same numbers the whole model computes (tested)."""

    def __init__(self, lm, tune: str):
        super().__init__()
        if tune not in TUNES:
            raise ValueError(f"tune must be one of {TUNES}, not {tune!r}")
        self.tune = tune
        last = lm.model.layers[-1]
        self.body = copy.deepcopy(lm.model) if tune == "all" else None
        self.top = None if tune == "all" else nn.ModuleDict(
            {"mlp_norm": copy.deepcopy(last.post_attention_layernorm), "mlp": copy.deepcopy(last.mlp),
             "norm": copy.deepcopy(lm.model.norm)}).float()
        if tune == "head":
            self.top.requires_grad_(False)
        self.head = nn.Linear(lm.config.hidden_size, 2, bias=False)
        nn.init.zeros_(self.head.weight)  # Burns et al.: normal with std 0

    def forward(self, batch: Features) -> torch.Tensor:
        if self.body is not None:
            hidden = self.body(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
            last = batch["attention_mask"].sum(1) - 1
            h = hidden[torch.arange(len(last)), last]  # (B, H)
        else:
            x = batch["state"]  # (B, H)
            h = self.top["norm"](x + self.top["mlp"](self.top["mlp_norm"](x)))
        return self.head(h.to(self.head.weight.dtype))  # (B, 2)


@torch.no_grad()
def predict(clf: Classifier, feats: Features, batch_size: int = 256) -> torch.Tensor:
    """Class probabilities (N, 2)."""
    device = clf.head.weight.device
    n = len(next(iter(feats.values())))
    out = [clf({k: v[i:i + batch_size].to(device) for k, v in feats.items()}).float().softmax(-1).cpu()
           for i in range(0, n, batch_size)]
    return torch.cat(out)


# --- training: Burns et al.'s recipe on the book's training loop -------------------------------


@dataclass(frozen=True)
class FitConfig:
    """How a classifier trains (Burns et al.'s defaults: Adam, batch 32, 2 epochs, cosine to 0)."""

    lr: float
    epochs: int = 2
    batch: int = 32
    seed: int = 0
    alpha: float = 0.0
    """Weight of the confidence term; 0 = plain cross-entropy to the targets."""
    warmup_frac: float = 0.1
    """Fraction of training over which the confidence weight warms up (`confidence_weight`)."""
    evals: int = 10
    """Times `evaluate` runs along training (and at the end)."""


def confidence_weight(step_frac: float, alpha: float, warmup_frac: float = 0.1) -> float:
    """The confidence term's weight at this point of training, as Burns et al.'s code has it
    (`weak_to_strong/loss.py:82-84`): α · step_frac for the first `warmup_frac`, then α — a ramp to
    α · warmup_frac, then a jump to α."""
    return alpha * (step_frac if step_frac <= warmup_frac else 1.0)


def _loss(model: Classifier, batch: dict[str, torch.Tensor], n: torch.Tensor,
          loss_fn: Callable = confidence_loss) -> tuple[torch.Tensor, Metrics]:
    logits = model(batch)
    loss, metrics = loss_fn(logits, batch["target"], batch["alpha"][0])
    return loss * len(logits) / n, metrics  # a batch mean → its share of the step's normaliser n


def fit(clf: Classifier, feats: Features, targets: torch.Tensor, config: FitConfig,
        evaluate: Callable[[Classifier], dict] | None = None, loss_fn: Callable = confidence_loss) -> list[dict]:
    """Train `clf` in place on `targets` (N, 2): one-hot ground truth, or a weak model's soft labels.
    Returns the training loop's history; `evaluate(clf)` adds its numbers to `config.evals` rows.
    `loss_fn(logits, targets, alpha)` → (loss, metrics) is the objective, `confidence_loss`'s
    signature (lab 8 passes the student's)."""
    n = len(targets)
    steps = max(1, config.epochs * n // config.batch)

    def batch_fn(i: int) -> dict[str, torch.Tensor]:
        rows = train.batch_rows(i, config.batch, n, config.seed)
        alpha = confidence_weight(i / steps, config.alpha, config.warmup_frac)
        return {**{k: v[rows] for k, v in feats.items()}, "target": targets[rows],
                "alpha": torch.full((len(rows),), alpha), "count": torch.tensor(float(len(rows)))}
    cfg = train.TrainConfig(steps=steps, lr=config.lr, warmup_steps=0, min_lr_ratio=0.0, weight_decay=0.0,
                            betas=(0.9, 0.999), max_grad_norm=None, seed=config.seed,
                            log_every=max(1, steps // config.evals), progress=False, desc="w2s")
    return train.train(clf, batch_fn, lambda model, batch, n: _loss(model, batch, n, loss_fn), cfg, evaluate=evaluate)


def one_hot(labels: Sequence[int]) -> torch.Tensor:
    return nn.functional.one_hot(torch.as_tensor(list(labels)), 2).float()


def load_base(entry, device=None):
    """(model, tokenizer) of a base entry in float32, on the device, in eval mode."""
    lm, tok = models.load(entry.path, device=device or models.pick_device(), dtype=torch.float32)
    return lm.eval(), tok
