"""The labs: their notebooks' nbgrader metadata, the checks against naive correct students (each
mistake a check names: test_lab_mistakes.py), and the instructor's workflow end to end — release,
autograde fake students, feedback, export — in a temporary copy of the course (nothing is
written under labs/).

Scores are read from `nbgrader export`'s CSV, since `nbgrader validate` exits 0 even when tests fail.
"""
from __future__ import annotations

import inspect
import json
import math
import runpy

import nbformat
import numpy as np
import pytest
import torch

from alignlab import labs, losses
from labs_course import (LABS_DIR, cell, copy_course, hidden_text, nbgrader, read_grades, solution_code,
                         source_notebook, submit)

LABS = labs.LABS
# The masked NLL averaged per sequence, then over sequences: a plausible bug.
PER_SEQUENCE_NLL = '''
def masked_nll(logits, labels, mask):
    logp = torch.log_softmax(logits, dim=-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return (-(logp * mask).sum(-1) / mask.sum(-1)).mean()
'''
# A cell that never finishes, before the function it should define.
ENDLESS = "n = 0\nwhile n >= 0:\n    n += 1\n"
ENDLESS_BODY = "    n = 0\n    while n >= 0:\n        n += 1\n"  # the same inside a function's body
LOOP_TIMEOUT_S = 20  # per-cell limit of the run that grades the looping submission
CALL_TIMEOUT_S = 3   # per-call limit of a student's function while grading (labs.core.call_timeout)


# --- the notebooks, statically ----------------------------------------------------------------


def _grade_cells(lab: str) -> dict[str, nbformat.NotebookNode]:
    nb = nbformat.read(source_notebook(lab), 4)
    return {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells if "nbgrader" in c.metadata}


@pytest.mark.parametrize("lab", LABS)
def test_source_notebook_metadata(lab):
    cells = _grade_cells(lab)
    nb = nbformat.read(source_notebook(lab), 4)
    assert len(cells) == len(nb.cells), "every cell carries nbgrader metadata (graded, solution or locked)"
    for grade_id, kind in labs.REQUIRED_CELLS[lab].items():
        c, meta = cells[grade_id], cells[grade_id].metadata["nbgrader"]
        assert c.cell_type == kind
        if grade_id.startswith("test_"):
            assert meta["grade"] and meta["locked"] and meta["points"] > 0 and not meta["solution"]
            assert "labs.check_" in c.source, "a test cell gives feedback through a check, not a bare assert"
            if grade_id.removeprefix("test_") in labs.REQUIRED_CELLS[lab]:  # a function's test, not a run's
                assert "### BEGIN HIDDEN TESTS" in c.source
        else:
            assert meta["solution"] and not meta["grade"] and not meta["locked"]
            assert "### BEGIN SOLUTION" in c.source and "### END SOLUTION" in c.source
            assert f"def {grade_id}(" in c.source
    graded = {g for g, c in cells.items() if c.metadata["nbgrader"]["grade"] or c.metadata["nbgrader"]["solution"]}
    assert graded == set(labs.REQUIRED_CELLS[lab]), "labs.REQUIRED_CELLS lists exactly the graded cells"
    assert any("BEGIN HIDDEN TESTS" in c.source for c in nb.cells)
    assert all(c.metadata["nbgrader"]["locked"] for g, c in cells.items() if g not in graded)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "sources are committed without outputs"


def test_course_config_has_a_finite_cell_timeout():
    class Config(dict):
        def __getattr__(self, name):
            return self.setdefault(name, Config())

        def __setattr__(self, name, value):
            self[name] = value
    config = Config()
    runpy.run_path(str(LABS_DIR / "nbgrader_config.py"), init_globals={"get_config": lambda: config})
    assert 60 <= config["Execute"]["timeout"] <= 1800
    assert config["Execute"]["interrupt_on_timeout"] is True


# --- the checks and hidden tests accept a correct student, written naively ----------------------
# Each student is a Python loop over rows and tokens, in float64, written from the lab's formula
# without `alignlab.losses` or the lab's `reference_*`. The checks (on their worked examples) and
# the hidden tests (on random padded inputs) compare it with the lab's reference, so a bug in that
# reference, or in the library function behind it, fails here. The mistakes: test_lab_mistakes.py.


def loop_response_mask(attention_mask, prompt_lengths):
    """1 on each real token at or after the prompt, one (b, t) at a time."""
    B, T = attention_mask.shape
    return torch.tensor([[float(attention_mask[b, t] == 1 and t >= prompt_lengths[b]) for t in range(T)]
                         for b in range(B)])


def loop_masked_nll(logits, labels, mask):
    """Σ of −log softmax(z)[y] = log Σ_v e^{z_v} − z_y over the response tokens, over their count."""
    total, count = 0.0, 0
    for b, t in mask.nonzero().tolist():
        z = logits[b, t].double()  # (V,), kept in the graph: the check wants a gradient to the logits
        total = total + z.exp().sum().log() - z[labels[b, t]]
        count += 1
    return total / count


def loop_bradley_terry_loss(r_chosen, r_rejected):
    """The mean over pairs of −log σ(d) = log(1 + e^{−d}), d = r_w − r_l (finite in float64 for |d| < 700)."""
    terms = [torch.log1p(torch.exp(-(w.double() - l.double()))) for w, l in zip(r_chosen, r_rejected)]
    return sum(terms) / len(terms)


def loop_ranking_to_pairs(ranking):
    """Each response against every response ranked below it."""
    return [(ranking[i], ranking[j]) for i in range(len(ranking)) for j in range(i + 1, len(ranking))]


def loop_kl_penalized_rewards(scores, logprobs, ref_logprobs, mask, beta):
    """−β·(log π − log π_ref) on each of a row's n response tokens, and its score added on token n − 1."""
    out = torch.zeros(mask.shape, dtype=torch.float64)
    for b in range(mask.shape[0]):
        n = int(mask[b].sum())
        for t in range(n):
            out[b, t] = -float(beta) * (float(logprobs[b, t]) - float(ref_logprobs[b, t]))
        if n:
            out[b, n - 1] += float(scores[b])
    return out


def loop_gae(rewards, values, gamma, lam, mask):
    """Backwards over each row's n real tokens: δ_t = r_t + γ·V_{t+1} − V_t with V_n = 0 (the episode
    ends), Â_t = δ_t + γλ·Â_{t+1}, and the return Â_t + V_t; 0 on padding."""
    adv, ret = torch.zeros(mask.shape, dtype=torch.float64), torch.zeros(mask.shape, dtype=torch.float64)
    for b in range(mask.shape[0]):
        next_value, running = 0.0, 0.0
        for t in reversed(range(int(mask[b].sum()))):
            value = float(values[b, t])
            delta = float(rewards[b, t]) + gamma * next_value - value
            running = delta + gamma * lam * running
            adv[b, t], ret[b, t] = running, running + value
            next_value = value
    return adv, ret


def loop_ppo_clip_loss(logprobs, old_logprobs, advantages, mask, clip_eps):
    """−min(ρ·Â, clip(ρ, 1 − ε, 1 + ε)·Â) averaged over the response tokens, one token at a time."""
    per_token = []
    for b, t in mask.nonzero().tolist():
        rho = torch.exp(logprobs[b, t].double() - float(old_logprobs[b, t]))  # in the graph of logprobs
        a = float(advantages[b, t])
        per_token.append(-min(rho * a, rho.clamp(1 - clip_eps, 1 + clip_eps) * a))
    return sum(per_token) / len(per_token)


def loop_dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta):
    """The mean over pairs of −log σ(β·h) = log(1 + e^{−βh}), h = (π_w − ref_w) − (π_l − ref_l) in log-probs."""
    terms = []
    for pc, pr, rc, rr in zip(policy_chosen, policy_rejected, ref_chosen, ref_rejected):
        h = (pc.double() - float(rc)) - (pr.double() - float(rr))
        terms.append(torch.log1p(torch.exp(-beta * h)))
    return sum(terms) / len(terms)


def loop_implicit_reward(pi, pi_ref, beta):
    """β·log(π(y)/π_ref(y)) for each response y."""
    return torch.tensor([beta * math.log(p / q) for p, q in zip(pi.tolist(), pi_ref.tolist())],
                        dtype=torch.float64)


def loop_ai_preference(logits_ab, logits_ba, a_id, b_id):
    """For each comparison: e^A / (e^A + e^B) with a first, e^B' / (e^A' + e^B') with a second, averaged."""
    out = []
    for ab, ba in zip(logits_ab.tolist(), logits_ba.tolist()):
        first = math.exp(ab[a_id]) / (math.exp(ab[a_id]) + math.exp(ab[b_id]))
        second = math.exp(ba[b_id]) / (math.exp(ba[a_id]) + math.exp(ba[b_id]))
        out.append((first + second) / 2)
    return torch.tensor(out, dtype=torch.float64)


def loop_critique_and_revise(prompts, responses, principles, continue_texts):
    """The two documents written out by hand from the lab's format, each continuation cut at its newline."""
    def dialog(p, y, pr):
        return f"User: {p}\nAssistant:{y}\nCritique request: {pr.critique_request}\nCritique:"
    critiques = [t.split("\n")[0] for t in continue_texts([dialog(*a) for a in zip(prompts, responses, principles)])]
    texts = [f"{dialog(p, y, pr)}{c}\nRevision request: {pr.revision_request}\nRevision:"
             for p, y, pr, c in zip(prompts, responses, principles, critiques)]
    return critiques, [t.split("\n")[0] for t in continue_texts(texts)]


def loop_score_solution(step_probs, how):
    """Π p_k (how="product") or min_k p_k (how="min"), one step at a time; 0 without steps."""
    if not step_probs:
        return 0.0
    score = 1.0 if how == "product" else math.inf
    for p in step_probs:
        score = score * p if how == "product" else min(score, p)
    return score


def loop_select_best_of_n(answers, scores):
    """Count the votes (None casts none); among candidates whose answer has the most, the highest score
    (the first on equal scores); 0 when nobody answered."""
    votes = {}
    for a in answers:
        if a is not None:
            votes[a] = votes.get(a, 0) + 1
    if not votes:
        return 0
    chosen = None
    for n, a in enumerate(answers):
        if a is not None and votes[a] == max(votes.values()) and (chosen is None or scores[n] > scores[chosen]):
            chosen = n
    return chosen


def loop_grpo_advantages(rewards, group_size, scale="group", eps=1e-4):
    """Group by group (consecutive rows): r − mean, ÷ (the ÷ (G − 1) std + eps) for scale="group"; 0 for
    a group whose rewards are all equal."""
    out = torch.zeros(len(rewards), dtype=torch.float64)
    for start in range(0, len(rewards), group_size):
        group = [float(x) for x in rewards[start:start + group_size]]
        mean = sum(group) / group_size
        std = math.sqrt(sum((x - mean) ** 2 for x in group) / (group_size - 1))
        for i, x in enumerate(group):
            if len(set(group)) > 1:
                out[start + i] = (x - mean) / (std + eps) if scale == "group" else x - mean
    return out


def loop_grpo_loss(logprobs, old_logprobs, advantages, mask, clip_eps=0.2, ref_logprobs=None, beta=0.0, norm="grpo"):
    """ℓ = −min(ρ·Â, clip(ρ)·Â) + β·(e^d − d − 1), d = log π_ref − log π, one token at a time; the mean
    of each completion's mean ("grpo") or the mean over every token ("dapo")."""
    row_means, total, count = [], 0.0, 0
    for b in range(mask.shape[0]):
        n, row = int(mask[b].sum()), 0.0
        for t in range(n):
            lp = logprobs[b, t].double()  # in the graph of logprobs; the rest are plain floats
            rho, a = torch.exp(lp - float(old_logprobs[b, t].detach())), float(advantages[b])
            row = row - torch.minimum(rho * a, rho.clamp(1 - clip_eps, 1 + clip_eps) * a)
            if beta > 0:
                d = float(ref_logprobs[b, t]) - lp
                row = row + beta * (torch.exp(d) - d - 1)
        row_means.append(row / n)
        total, count = total + row, count + n
    return sum(row_means) / len(row_means) if norm == "grpo" else total / count


def loop_pgr(weak_acc, w2s_acc, ceiling_acc):
    """One seed at a time: (s − w) / (c − w), a ValueError unless every c − w > 0 (NaN fails that too);
    floats in, a float out."""
    if np.ndim(weak_acc) == 0:
        return float(loop_pgr([weak_acc], [w2s_acc], [ceiling_acc])[0])
    out = []
    for w, s, c in zip(weak_acc, w2s_acc, ceiling_acc):
        if not c - w > 0:
            raise ValueError(f"no gap to recover: ceiling {c} − weak {w}")
        out.append((s - w) / (c - w))
    return np.array(out)


def loop_confidence_loss(student_logits, weak_probs, alpha):
    """Row by row: −Σ_c ((1 − α)·f_w[c] + α·hard[c]) · log f[c], hard = [1, 0] where f[0] is at or above
    the threshold, else [0, 1]; the threshold f[:, 0]'s quantile at mean(f_w[:, 1]) by sorting, linearly
    interpolated; the mean over rows."""
    f0 = [float(x) for x in student_logits.detach().softmax(-1)[:, 0]]
    ranked, q = sorted(f0), float(weak_probs[:, 1].mean()) * (len(f0) - 1)
    lo = int(math.floor(q))
    threshold = ranked[lo] + (q - lo) * (ranked[min(lo + 1, len(f0) - 1)] - ranked[lo])
    total = 0.0
    for z, w, p0 in zip(student_logits, weak_probs, f0):
        logp = z.double().log_softmax(-1)  # in the graph of the logits; the targets are plain floats
        hard = (1.0, 0.0) if p0 >= threshold else (0.0, 1.0)
        for c in range(2):
            total = total - ((1 - alpha) * float(w[c]) + alpha * hard[c]) * logp[c]
    return total / len(student_logits)


NAIVE_STUDENTS = {
    "response_mask": loop_response_mask, "masked_nll": loop_masked_nll,
    "bradley_terry_loss": loop_bradley_terry_loss, "ranking_to_pairs": loop_ranking_to_pairs,
    "kl_penalized_rewards": loop_kl_penalized_rewards, "gae": loop_gae, "ppo_clip_loss": loop_ppo_clip_loss,
    "dpo_loss": loop_dpo_loss, "implicit_reward": loop_implicit_reward,
    "ai_preference": loop_ai_preference, "critique_and_revise": loop_critique_and_revise,
    "score_solution": loop_score_solution, "select_best_of_n": loop_select_best_of_n,
    "grpo_advantages": loop_grpo_advantages, "grpo_loss": loop_grpo_loss,
    "pgr": loop_pgr, "confidence_loss": loop_confidence_loss,
}


def test_every_function_a_lab_checks_has_a_naive_student():
    checked = {name.removeprefix("check_") for name, check in vars(labs).items()
               if name.startswith("check_") and "fn" in inspect.signature(check).parameters}
    assert checked == set(NAIVE_STUDENTS)


@pytest.mark.parametrize("name", NAIVE_STUDENTS)
def test_check_and_hidden_tests_accept_a_naive_student(name):
    """A LabCheckError here names the disagreement: the library (or the lab's reference) is wrong."""
    # None: a test cell that leaves a value (True) makes nbgrader warn it cannot read it as a score
    assert getattr(labs, f"check_{name}")(NAIVE_STUDENTS[name]) is None
    for seed in (1, 2):  # 5 random padded inputs each
        assert getattr(labs, f"hidden_{name}")(NAIVE_STUDENTS[name], seed=seed) is None


def test_lab6_prm_run_check_compares_with_the_library():
    """Lab 6's run check: the library's own selections pass; one problem chosen differently fails."""
    from alignlab import prm, search
    answers = [[3, None, 3, 5], [None, None, None, None], [2, 4, 4, 2]]
    step_probs = [[[0.9, 0.8], [], [0.2, 0.9, 0.9], [0.95]], [[0.1]] * 4, [[0.5], [0.6, 0.9], [0.3], [0.7]]]
    chosen = {how: search.majority_vote(np.array(answers, dtype=object), tie_break=np.array(
        [[prm.solution_score(p, how) for p in row] for row in step_probs])).tolist() for how in ("product", "min")}
    assert labs.check_prm_run(chosen, answers, step_probs) is None
    chosen["min"][2] = (chosen["min"][2] + 1) % 4   # another candidate of problem 3
    with pytest.raises(labs.LabCheckError, match="with how='min' differ from the library's on 1 of 3"):
        labs.check_prm_run(chosen, answers, step_probs)


def test_lab7_grpo_run_check_replays_the_first_iteration(tok, tmp_path):
    """Lab 7's run check: a run with correct students passes; wrong advantages, a wrong loss, or a loss
    of the right value with the wrong gradient each fail with their own message."""
    from alignlab import grpo, models, world
    from conftest import TINY
    models.save(models.build_model(TINY, tok, seed=0), tok, tmp_path / "lm")
    prompts = list(world.train_prompts("arithmetic"))[:16]
    reward_fn = grpo.verifier_reward(lambda prompt, response: float(len(response) % 3 == 0))
    config = grpo.GRPOConfig(steps=2, batch_size=2, group_size=4, minibatch_size=4, ppo_epochs=2, lr=1e-3,
                             beta=0.04, max_new_tokens=8, progress=False)

    def check(advantages, loss):
        (policy, _), (ref, _) = (models.load(tmp_path / "lm", device="cpu", dtype=torch.float32) for _ in range(2))
        mine = labs.grpo_objectives(advantages, loss)
        history = grpo.train_grpo(policy, ref, tok, prompts, reward_fn, config, objectives=mine)
        assert history[0]["flat_groups"] < 1  # something to learn from, or every loss is 0
        return labs.check_grpo_run(history, mine, tmp_path / "lm", prompts, reward_fn, config)
    assert check(loop_grpo_advantages, loop_grpo_loss) is None
    doubled = lambda *args, **kwargs: 2 * loop_grpo_advantages(*args, **kwargs)
    with pytest.raises(labs.LabCheckError, match="rewards your advantages differ from the library's"):
        check(doubled, loop_grpo_loss)
    with pytest.raises(labs.LabCheckError, match="last minibatch your loss is"):
        check(loop_grpo_advantages, lambda *args: 2 * loop_grpo_loss(*args))
    uphill = lambda *args: 2 * loop_grpo_loss(*args).detach() - loop_grpo_loss(*args)  # the value, gradient negated
    with pytest.raises(labs.LabCheckError, match="the policy moved differently"):
        check(loop_grpo_advantages, uphill)


def test_lab8_w2s_run_check_replays_the_run(tok):
    """Lab 8's run check: a fit with a correct student passes; a loss off from the first batch, one right
    only at α = 0, and one of the right value with the wrong gradient each fail with their own message."""
    from alignlab import models, w2s
    from conftest import TINY
    lm = models.build_model(TINY, tok, seed=0).eval()
    examples = w2s.task_examples("sums", 48, held_out=False, fits=lambda text: len(tok(text).input_ids) <= 96)
    feats = w2s.features(lm, tok, [e.text for e in examples], "mlp")
    p = torch.rand(len(examples), generator=torch.Generator().manual_seed(0))
    weak = torch.stack([1 - p, p], -1)  # (N, 2) soft labels
    config = w2s.FitConfig(lr=1e-2, epochs=2, batch=8, alpha=0.5, evals=4)

    def check(loss):
        mine = labs.w2s_objective(loss)
        history = w2s.fit(w2s.Classifier(lm, "mlp"), feats, weak, config, loss_fn=mine)
        return labs.check_w2s_run(history, mine, lm, "mlp", feats, weak, config)
    assert check(loop_confidence_loss) is None
    with pytest.raises(labs.LabCheckError, match="on the run's first batch .* your loss is"):
        check(lambda *args: 2 * loop_confidence_loss(*args))
    with pytest.raises(labs.LabCheckError, match="on the run's last batch .* your loss is"):
        check(lambda logits, weak_probs, alpha: loop_confidence_loss(logits, weak_probs, 0.0))
    uphill = lambda *args: 2 * loop_confidence_loss(*args).detach() - loop_confidence_loss(*args)  # gradient negated
    with pytest.raises(labs.LabCheckError, match="the classifier moved differently"):
        check(uphill)


def _ppo_run(tok, tmp_path, objectives):
    """Two iterations of PPO on a tiny model; returns the policy's parameters afterwards."""
    from alignlab import models, ppo, reward, world
    from conftest import TINY
    if not (tmp_path / "rm").exists():
        models.save(models.build_model(TINY, tok, seed=0), tok, tmp_path / "lm")
        rm = reward.reward_model_from(tmp_path / "lm", device="cpu")
        torch.nn.init.normal_(rm.score.weight, std=0.1)
        rm.save_pretrained(tmp_path / "rm")
    (policy, _), (ref, _) = (models.load(tmp_path / "lm", device="cpu", dtype=torch.float32) for _ in range(2))
    config = ppo.PPOConfig(steps=2, batch_size=8, minibatch_size=8, max_new_tokens=8, lr=1e-3, progress=False)
    ppo.train_ppo(policy, ref, ppo.value_model_from(tmp_path / "rm", device="cpu"), tok,
                  world.preference_prompts(8), ppo.gold_reward_fn, config, objectives=objectives)
    return torch.cat([p.detach().flatten() for p in policy.parameters()])


def test_ppo_trainer_uses_the_objectives_it_is_given(tok, tmp_path):
    from alignlab import models, ppo
    default = _ppo_run(tok, tmp_path, ppo.Objectives())
    student = labs.ppo_objectives(losses.kl_penalized_rewards, losses.gae, lambda *a: losses.ppo_clip_loss(*a)[0])
    assert torch.allclose(_ppo_run(tok, tmp_path, student), default, atol=1e-6)
    initial = torch.cat([p.detach().flatten() for p in models.load(tmp_path / "lm", device="cpu")[0].parameters()])
    frozen = labs.ppo_objectives(losses.kl_penalized_rewards, losses.gae, lambda lp, *a: 0 * lp.sum())
    assert torch.equal(_ppo_run(tok, tmp_path, frozen), initial)  # no policy gradient: the policy stays put
    assert not torch.allclose(default, initial)


def test_checks_explain_unwritten_and_missing_functions(tmp_path, monkeypatch):
    def stub(*args):
        raise NotImplementedError()
    with pytest.raises(labs.LabCheckError, match="still raises NotImplementedError"):
        labs.check_masked_nll(stub)
    nb = nbformat.read(source_notebook("lab1_sft"), 4)
    nb.cells = [c for c in nb.cells if c.metadata["nbgrader"]["grade_id"] != "masked_nll"]
    cell(nb, "response_mask").cell_type = "markdown"
    cell(nb, "response_mask").pop("outputs"), cell(nb, "response_mask").pop("execution_count")
    nbformat.write(nb, tmp_path / "lab1_sft.ipynb")
    monkeypatch.chdir(tmp_path)
    labs.start("lab1_sft")   # notices only (lab_grading tests when it stops): neither costs points by itself
    with pytest.raises(labs.LabCheckError, match="`masked_nll` is not defined: the cell 'masked_nll' has been "
                                                 "deleted; restore it, or write `masked_nll` again"):
        labs.check_masked_nll()


# --- the instructor's workflow, end to end ------------------------------------------------------
# One test, not one per lab: under pytest-xdist a module-scoped fixture runs once per worker that
# needs it, and grading every lab takes about two minutes.


def submit_lab2_cases(root) -> None:
    """Lab 2 with a function that never returns (`looping_fn`), and with its `ranking_to_pairs`
    cell deleted and the function retyped in a new, untagged cell (`retyped`)."""
    lab = "lab2_reward_model"
    release = root / "release" / lab / f"{lab}.ipynb"
    bt, pairs = solution_code(lab, "bradley_terry_loss"), solution_code(lab, "ranking_to_pairs")
    submit(root, "looping_fn", lab, release,
           {"bradley_terry_loss": bt, "ranking_to_pairs": pairs.replace("    return", ENDLESS_BODY + "    return")})
    nb = nbformat.read(release, 4)
    cell(nb, "bradley_terry_loss").source = bt
    at = next(i for i, c in enumerate(nb.cells) if c.metadata["nbgrader"].get("grade_id") == "ranking_to_pairs")
    nb.cells[at] = nbformat.v4.new_code_cell(pairs)
    (root / "submitted" / "retyped" / lab).mkdir(parents=True)
    nbformat.write(nb, root / "submitted" / "retyped" / lab / f"{lab}.ipynb")


def build_course(root) -> dict[str, str]:
    """Release every lab; hand in the solution (student `solution`), the untouched release
    (`untouched`), lab 1 with a plausible bug (`buggy`) and lab 1 with an endless loop (`looping`),
    and lab 2's `submit_lab2_cases`; autograde, generate feedback of labs 1 and 2, export grades.
    Returns each lab's autograde log."""
    copy_course(root)
    for lab in LABS:
        nbgrader(root, "generate_assignment", lab, "--force")
        submit(root, "solution", lab, source_notebook(lab, root))
        submit(root, "untouched", lab, root / "release" / lab / f"{lab}.ipynb")
    release1 = root / "release" / "lab1_sft" / "lab1_sft.ipynb"
    mask = solution_code("lab1_sft", "response_mask")
    submit(root, "buggy", "lab1_sft", release1, {"response_mask": mask, "masked_nll": PER_SEQUENCE_NLL})
    submit(root, "looping", "lab1_sft", release1,
           {"response_mask": mask, "masked_nll": ENDLESS + solution_code("lab1_sft", "masked_nll")})
    submit_lab2_cases(root)
    logs = {}
    for lab in LABS:
        # lab 1 runs under a short per-cell limit so the looping submission costs seconds, not minutes
        extra = [f"--Execute.timeout={LOOP_TIMEOUT_S}"] if lab == "lab1_sft" else []
        proc = nbgrader(root, "autograde", lab, "--create", *extra, env={"ALIGNLAB_LAB_CALL_TIMEOUT": str(CALL_TIMEOUT_S)})
        logs[lab] = proc.stdout + proc.stderr
    for lab in ("lab1_sft", "lab2_reward_model"):  # the same command for every lab; two keep the test short
        nbgrader(root, "generate_feedback", lab)
    nbgrader(root, "export")
    return logs


def release_problems(root, lab: str) -> list[str]:
    """What is wrong with a lab's generated release: stubs missing, solutions or hidden tests left."""
    text = (root / "release" / lab / f"{lab}.ipynb").read_text()
    release = nbformat.reads(text, 4)
    n_solutions = sum(1 for g in labs.REQUIRED_CELLS[lab] if not g.startswith("test_"))
    n_stubs = sum("raise NotImplementedError()" in c.source for c in release.cells)
    problems = [] if n_stubs == n_solutions else [f"{lab}: {n_stubs} NotImplementedError stubs, not {n_solutions}"]
    problems += [f"{lab}: release contains {m!r}" for m in ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS",
                                                             "labs.hidden_") if m in text]
    problems += [f"{lab}: release contains solution or hidden-test text {line!r}"
                 for line in hidden_text(lab) if line in text]
    return problems


def cell_errors(root, student: str, lab: str) -> dict[str, str]:
    """grade id (or cell index) → the text of the error a cell of the autograded notebook showed."""
    nb = json.loads((root / "autograded" / student / lab / f"{lab}.ipynb").read_text())
    return {c["metadata"].get("nbgrader", {}).get("grade_id", str(i)):
            "".join("\n" + o["ename"] + ": " + "\n".join(o["traceback"]) for o in c.get("outputs", [])
                    if o.get("output_type") == "error")
            for i, c in enumerate(nb["cells"]) if any(o.get("output_type") == "error" for o in c.get("outputs", []))}


def lab2_problems(root, logs: dict[str, str], grades) -> list[str]:
    """The classroom's cases on lab 2: an endless function fails once and fast, later cells say why,
    the retyped cell's feedback agrees with its full marks, no warning of ours in the log, no
    grader path in the feedback."""
    lab, problems = "lab2_reward_model", []
    errors = cell_errors(root, "looping_fn", lab)
    if "did not return within 3 s" not in errors.get("test_ranking_to_pairs", ""):
        problems.append(f"lab2: the looping function's check did not name the limit: {errors}")
    if "this cell was skipped" not in errors.get("test_reward_model", ""):
        problems.append(f"lab2: the cell after the failed training did not say why it stopped: {errors}")
    if errors.get("test_reward_model", "").count("\nNameError") > 1:   # nbgrader adds a reply's error it cannot match
        problems.append(f"lab2: the skipped cell shows its error twice: {errors['test_reward_model']}")
    if "Timeout waiting" in logs[lab] or "CellTimeoutError" in str(errors):
        problems.append("lab2: the looping function cost a whole cell timeout")
    feedback = (root / "feedback" / "retyped" / lab / f"{lab}.html").read_text()
    if grades[("retyped", lab)][0] != grades[("retyped", lab)][1] or "LabCheckError" in feedback:
        problems.append(f"lab2: the retyped cell scored {grades[('retyped', lab)]} and its feedback shows an error")
    for log_lab, log in logs.items():
        if "Cell output is" in log:
            problems.append(f"{log_lab}: a test cell left a value nbgrader tried to read as a score")
    package = str(LABS_DIR.parent / "alignlab")
    for html in (root / "feedback").rglob("*.html"):
        if package in html.read_text():
            problems.append(f"{html.relative_to(root)} shows the grader's path {package}")
    return problems


@pytest.mark.slow
def test_release_autograde_feedback_export(tmp_path):
    logs = build_course(tmp_path)
    problems = [p for lab in LABS for p in release_problems(tmp_path, lab)]
    grades = read_grades(tmp_path)
    for lab in LABS:  # read from the exported grades: `nbgrader validate` exits 0 even when tests fail
        score, top = grades[("solution", lab)]
        if not (top > 0 and score == top):
            problems.append(f"{lab}: the instructor's solution scored {score}/{top}")
        if grades[("untouched", lab)] != (0.0, top):
            problems.append(f"{lab}: the untouched release scored {grades[('untouched', lab)][0]}/{top}")
    score, top = grades[("buggy", "lab1_sft")]
    if not 0 < score < top:
        problems.append(f"lab1_sft: the per-sequence-average bug scored {score}/{top}, not partial marks")
    feedback = (tmp_path / "feedback" / "buggy" / "lab1_sft" / "lab1_sft.html").read_text()
    if "averaged over each sequence" not in feedback:
        problems.append("lab1_sft: the buggy submission's feedback does not name its mistake")
    # The endless loop: its cell timed out and masked_nll never got defined; the same run went on to
    # grade `solution` and `untouched` (nbgrader takes students in alphabetical order).
    graded = json.loads((tmp_path / "autograded" / "looping" / "lab1_sft" / "lab1_sft.ipynb").read_text())
    errors = [o.get("ename") for c in graded["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    looping = grades[("looping", "lab1_sft")]
    if "CellTimeoutError" not in errors or not looping[0] < top:
        problems.append(f"lab1_sft: the looping submission was not cut off (errors {errors}, score {looping})")
    problems += lab2_problems(tmp_path, logs, grades)
    assert not problems, "\n".join(problems)


def test_cli_lab_check(tmp_path, capsys):
    from alignlab import cli
    assert cli.main(["lab", "check", str(source_notebook("lab2_reward_model"))]) == 0
    nb = nbformat.read(source_notebook("lab2_reward_model"), 4)
    nb.cells = [c for c in nb.cells if c.metadata["nbgrader"]["grade_id"] != "ranking_to_pairs"]
    nbformat.write(nb, tmp_path / "lab2_reward_model.ipynb")
    assert cli.main(["lab", "check", str(tmp_path / "lab2_reward_model.ipynb")]) == 1
    assert "'ranking_to_pairs' has been deleted" in capsys.readouterr().out
