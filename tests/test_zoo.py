"""The zoo: cache hits, one build when two processes ask at once, damaged entries set aside and
rebuilt, keys that change with what they depend on, cached runs."""
from __future__ import annotations

import multiprocessing as mp
import os
import re
import sys
from pathlib import Path

import pytest

from alignlab import evaluate, profiles, zoo


def _dirs(home, prefix=""):
    """Folders in the ci zoo whose names start with `prefix` (hidden ones only if it asks)."""
    return sorted(d.name for d in (home / "zoo" / "ci").iterdir()
                  if d.is_dir() and d.name.startswith(prefix) and (prefix or not d.name.startswith(".")))


def test_build_then_cache_hit(alignlab_home, tiny_profile, capsys):
    first = zoo.get("sft", tiny_profile)
    out = capsys.readouterr().out
    assert [out.count(f"building '{n}'") for n in ("tokenizer", "base", "sft")] == [1, 1, 1]
    weights = first.path / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    again = zoo.get("sft", tiny_profile)
    assert again.path == first.path and "building" not in capsys.readouterr().out
    assert weights.stat().st_mtime_ns == stamp  # a hit reads, it does not rewrite
    meta = again.meta
    assert meta["history"] and meta["history"][-1]["step"] == 5 and meta["n_params"] > 0
    assert meta["profile"] == "ci" and meta["key"] == zoo.key("sft", tiny_profile)
    assert zoo.verify(again.path) is None
    assert not list((alignlab_home / "zoo" / "ci" / ".partial").glob("*/*.pt"))  # cleaned up


def test_dependencies_are_built_for_the_same_profile(alignlab_home, tiny_profile):
    """An entry's key hashes its dependencies' keys under *its* profile, so they must be built
    (and used) under that profile too, not under the registered profile of the same name."""
    model, _ = zoo.get("sft", tiny_profile).load(device="cpu")
    assert model.config.hidden_size == tiny_profile.policy.hidden_size
    expected = sorted(f"{n}-{zoo.key(n, tiny_profile)}" for n in ("tokenizer", "base", "sft"))
    assert _dirs(alignlab_home) == expected  # nothing built for the real ci profile


def _get_base(home: str, profile, barrier, log: str, queue) -> None:
    import torch
    torch.set_num_threads(1)
    os.environ["ALIGNLAB_HOME"] = home
    sys.stdout = open(log, "w", buffering=1)
    from alignlab import zoo as z
    barrier.wait(timeout=120)  # both processes ask at the same moment
    queue.put(str(z.get("base", profile).path))
    sys.stdout.flush()


@pytest.mark.slow
def test_two_processes_building_the_same_entry_build_it_once(alignlab_home, tiny_profile, tmp_path):
    ctx = mp.get_context("spawn")
    queue, barrier = ctx.Queue(), ctx.Barrier(2)
    logs = [tmp_path / f"proc{i}.log" for i in range(2)]
    args = (str(alignlab_home), tiny_profile, barrier)
    procs = [ctx.Process(target=_get_base, args=(*args, str(log), queue)) for log in logs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
        assert p.exitcode == 0
    paths = {queue.get(timeout=5) for _ in procs}
    out = "".join(log.read_text() for log in logs)
    assert out.count("building 'base'") == 1 and out.count("building 'tokenizer'") == 1, out
    assert paths == {str(zoo.entry_path("base", tiny_profile))}
    assert len(_dirs(alignlab_home, "base-")) == 1 and not _dirs(alignlab_home, ".tmp-")
    assert zoo.verify(zoo.entry_path("base", tiny_profile)) is None


def test_damaged_weights_are_set_aside_and_rebuilt(alignlab_home, tiny_profile, capsys):
    entry = zoo.get("base", tiny_profile)
    weights = entry.path / "model.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(good[:-64] + b"\0" * 64)  # same size: only the checksum can tell
    capsys.readouterr()
    rebuilt = zoo.get("base", tiny_profile)
    out = capsys.readouterr().out
    assert "damaged" in out and "does not match" in out and "building 'base'" in out
    aside = list(entry.path.parent.glob(entry.path.name + ".corrupt-*"))
    assert len(aside) == 1 and len((aside[0] / "model.safetensors").read_bytes()) == len(good)  # kept
    assert rebuilt.path == entry.path and zoo.verify(rebuilt.path) is None
    assert (rebuilt.path / "model.safetensors").read_bytes() == good  # the build is deterministic
    rebuilt.load(device="cpu")


def test_truncated_file_is_damaged(alignlab_home, tiny_profile):
    entry = zoo.get("tokenizer", tiny_profile)
    tj = entry.path / "tokenizer.json"
    tj.write_bytes(tj.read_bytes()[:100])
    assert "tokenizer.json does not match" in zoo.verify(entry.path)
    assert zoo.verify(zoo.get("tokenizer", tiny_profile).path) is None
    assert len(list(entry.path.parent.glob(entry.path.name + ".corrupt-*"))) == 1


def test_missing_manifest_is_damaged(alignlab_home, tiny_profile, capsys):
    entry = zoo.get("tokenizer", tiny_profile)
    (entry.path / zoo.MANIFEST).unlink()  # what an unfinished build would leave
    assert "manifest is missing" in zoo.verify(entry.path)
    assert zoo.verify(zoo.get("tokenizer", tiny_profile).path) is None
    (aside,) = entry.path.parent.glob(entry.path.name + ".corrupt-*")
    assert (aside / "tokenizer.json").exists()
    assert capsys.readouterr().out.count("building 'tokenizer'") == 2


def test_damage_twice_keeps_every_copy(alignlab_home, tiny_profile):
    """A damaged entry or cached run is set aside beside the earlier copies, never over them."""
    entry = zoo.get("tokenizer", tiny_profile)
    for _ in range(2):
        (entry.path / zoo.MANIFEST).unlink()
        assert zoo.verify(zoo.get("tokenizer", tiny_profile).path) is None
    assert len(list(entry.path.parent.glob(entry.path.name + ".corrupt-*"))) == 2
    assert [r["entry"] for r in zoo.entries()] == [entry.path.name]  # the copies are not entries

    zoo.cached_run("exp", {}, lambda: {"x": 1}, "ci")
    (run,) = (alignlab_home / "runs" / "ci").glob("exp-*.json")
    for x in (2, 3):
        run.write_text(f"{{broken {x}")
        assert zoo.cached_run("exp", {}, lambda: {"x": x}, "ci") == {"x": x}
    aside = sorted(p.read_text() for p in run.parent.glob(run.stem + ".corrupt-*.json"))
    assert aside == ["{broken 2", "{broken 3"]
    assert sorted(c["what"] for c in zoo.set_aside_copies("ci")) == ["entry", "entry", "run", "run"]


def test_set_aside_in_the_same_second_never_overwrites(tmp_path, monkeypatch):
    """cache.set_aside, the one helper the zoo, the quiz and the trainers use: a file keeps its
    extension, a folder its whole name, and two copies from the same second both survive."""
    from datetime import datetime

    from alignlab import cache

    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime(2025, 1, 1, tzinfo=tz)
    monkeypatch.setattr(cache, "datetime", Frozen)
    f, d = tmp_path / "progress.json", tmp_path / "base-0123abcd.1"
    for i in range(3):
        f.write_text(str(i))
        d.mkdir()
        assert cache.set_aside(f).name.startswith("progress.corrupt-20250101T000000-") and not f.exists()
        assert cache.set_aside(d).name.startswith("base-0123abcd.1.corrupt-20250101T000000-")
    assert sorted(p.read_text() for p in tmp_path.glob("progress.corrupt-*.json")) == ["0", "1", "2"]
    assert len(list(tmp_path.glob("base-0123abcd.1.corrupt-*"))) == 3


def test_write_atomic_leaves_the_old_file_when_a_write_fails(tmp_path):
    from alignlab import cache
    path = tmp_path / "state.json"
    cache.write_atomic(path, "old")
    with pytest.raises(RuntimeError), cache.replacing(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    cache.write_atomic(tmp_path / "other.json", "new")
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["other.json", "state.json"]


def test_an_entry_knows_its_kind_and_loads_as_one(alignlab_home, tiny_profile):
    """`rm` loads with its trained score head (a causal LM would drop it); entries that are not
    models say how to read them. The kind comes from the saved files, so no key changes."""
    import torch
    from transformers import LlamaForCausalLM, LlamaForSequenceClassification

    from alignlab import reward
    rm = zoo.get("rm", tiny_profile)
    kinds = {n: zoo.get(n, tiny_profile).kind for n in ("tokenizer", "sft", "rm_data", "rm")}
    assert kinds == {"tokenizer": zoo.TOKENIZER, "sft": zoo.CAUSAL_LM, "rm_data": zoo.DATA, "rm": zoo.REWARD_MODEL}
    model, tok = rm.load(device="cpu")
    expected, _ = reward.load_reward_model(rm.path, device="cpu")
    assert isinstance(model, LlamaForSequenceClassification) and model.dtype == torch.float32
    assert model.score.weight.abs().sum() > 0 and tok.eos_token_id is not None  # the trained head, not dropped
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), expected.state_dict().values()))
    assert isinstance(zoo.get("sft", tiny_profile).load(device="cpu")[0], LlamaForCausalLM)
    with pytest.raises(TypeError, match=r"'tokenizer'.*tokenizer only; use entry\.tokenizer\(\)"):
        zoo.get("tokenizer", tiny_profile).load()
    with pytest.raises(TypeError, match=r"'rm_data'.*holds data.*reward\.load_groups"):
        zoo.get("rm_data", tiny_profile).load()


def test_rebuild_requested(alignlab_home, tiny_profile, capsys):
    first = zoo.get("tokenizer", tiny_profile)
    capsys.readouterr()
    assert zoo.get("tokenizer", tiny_profile, rebuild=True).path == first.path
    assert "building 'tokenizer'" in capsys.readouterr().out


def test_key_follows_profile_and_dependencies(tiny_profile):
    changed = tiny_profile.replace(pretrain={"steps": 7})
    assert zoo.key("base", tiny_profile) == zoo.key("base", tiny_profile.replace())
    assert zoo.key("base", changed) != zoo.key("base", tiny_profile)
    assert zoo.entry_path("base", changed) != zoo.entry_path("base", tiny_profile)
    assert zoo.key("sft", changed) != zoo.key("sft", tiny_profile)
    assert zoo.key("base", tiny_profile) != zoo.key("base", profiles.get_profile("ci"))  # never the real cache


def test_unknown_entry_names_the_known_ones(alignlab_home, tiny_profile):
    with pytest.raises(KeyError, match=r"known entries: \[.*'base'.*'sft'.*'tokenizer'"):
        zoo.get("nope", tiny_profile)


def test_cached_run_runs_once_and_survives_corruption(alignlab_home, capsys):
    calls = []

    def fn():
        calls.append(1)
        return {"x": len(calls)}
    assert zoo.cached_run("exp", {"a": 1}, fn, "ci") == {"x": 1}
    assert zoo.cached_run("exp", {"a": 1}, fn, "ci") == {"x": 1} and len(calls) == 1
    assert zoo.cached_run("exp", {"a": 2}, fn, "ci") == {"x": 2}
    runs = alignlab_home / "runs" / "ci"
    (path,) = [p for p in runs.glob("exp-*.json") if '"a": 1' in p.read_text()]
    path.write_text("{broken")
    assert zoo.cached_run("exp", {"a": 1}, fn, "ci") == {"x": 3}
    aside = list(runs.glob("*.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_text() == "{broken"  # kept, not deleted
    assert "damaged" in capsys.readouterr().out
    assert zoo.cached_run("exp", {"a": 1}, fn, "ci") == {"x": 3} and len(calls) == 3


def test_entries_and_clean(alignlab_home, tiny_profile):
    assert zoo.entries() == []
    entry = zoo.get("tokenizer", tiny_profile)
    zoo.cached_run("exp", {}, lambda: {}, "ci")
    rows = zoo.entries("ci")
    assert [(r["profile"], r["entry"], r["state"]) for r in rows] == [("ci", entry.path.name, "ok")]
    assert rows[0]["mb"] > 0 and zoo.entries("gpu") == []
    (entry.path / zoo.MANIFEST).unlink()
    assert "missing" in zoo.entries()[0]["state"]
    assert zoo.clean("gpu") == 0 and zoo.entries("ci")
    assert zoo.clean("ci") == 2 and zoo.entries() == []
    assert not (alignlab_home / "runs" / "ci").exists()


def test_interrupted_build_resumes_from_its_checkpoint(alignlab_home, tiny_profile, monkeypatch, capsys):
    from alignlab import train
    real = train.packed_batches
    state = {"crashed": False}

    def crash_once(rows, batch_size, seed=0):
        inner = real(rows, batch_size, seed)

        def batch_fn(i):
            if i == 4 and not state["crashed"]:
                state["crashed"] = True
                raise KeyboardInterrupt("the student closed the notebook")
            return inner(i)
        return batch_fn
    monkeypatch.setattr(train, "packed_batches", crash_once)
    with pytest.raises(KeyboardInterrupt):
        zoo.get("base", tiny_profile)
    assert not zoo.entry_path("base", tiny_profile).exists()  # nothing half-built is visible
    assert not _dirs(alignlab_home, ".tmp-")
    assert list(zoo.partial_dir("base", tiny_profile).glob("*.pt"))
    entry = zoo.get("base", tiny_profile)
    out = capsys.readouterr().out
    resumed = re.search(r"resuming 'pretrain base \(ci\)' from its checkpoint at step (\d+)/6", out)
    assert resumed and 1 <= int(resumed.group(1)) <= 4  # steps 1-4 finished before the crash
    assert entry.meta["history"][-1]["step"] == 6
    assert not zoo.partial_dir("base", tiny_profile).exists()  # the finished model supersedes it


def test_key_hashes_only_the_fields_a_recipe_reads(tiny_profile):
    other_chapter = tiny_profile.replace(eval={"labeler_pairs": tiny_profile.eval.labeler_pairs + 1})
    assert zoo.key("base", other_chapter) == zoo.key("base", tiny_profile)  # no re-pretraining
    assert zoo.key("sft", tiny_profile.replace(sft={"lr": 0.5})) != zoo.key("sft", tiny_profile)


def test_only_the_hacking_run_reads_its_length(tiny_profile):
    """Chapter 3's length-biased run trains `ppo.hack_steps` iterations; the chapter's other runs
    (and their cached checkpoints) must not move when it changes."""
    longer = tiny_profile.replace(ppo={"hack_steps": tiny_profile.ppo.hack_steps + 1})
    assert zoo.key("ppo_length_biased", longer) != zoo.key("ppo_length_biased", tiny_profile)
    assert all(zoo.key(n, longer) == zoo.key(n, tiny_profile) for n in ("ppo", "ppo_no_ptx", "ppo_beta0.02"))


def test_recipe_cannot_read_an_undeclared_field(alignlab_home, tiny_profile):
    zoo.register(zoo.Recipe("sneaky", lambda job: {"steps": job.profile.pretrain.steps}, fields=("sft.lr",)))
    try:
        with pytest.raises(AttributeError, match="declares only.*add it to the Recipe's fields"):
            zoo.get("sneaky", tiny_profile)
    finally:
        del zoo.registry()["sneaky"]


def test_the_zoo_owns_the_checkpoint_folder(alignlab_home, tiny_profile):
    """The zoo hands each build a checkpoint folder: a build that raises leaves it (and what it
    saved there) for the next `get` to resume from; a build that succeeds has it removed."""
    handed = []

    def build(job: zoo.Job) -> dict:
        handed.append(job.checkpoint_dir)
        assert job.checkpoint_dir.is_dir() and job.name == "lifecycle"
        if len(handed) == 1:
            (job.checkpoint_dir / "state.pt").write_text("step 3")
            raise KeyboardInterrupt("the student closed the notebook")
        (job.out / "weights").write_text((job.checkpoint_dir / "state.pt").read_text())  # resumed
        return {}
    zoo.register(zoo.Recipe("lifecycle", build))
    folder = zoo.partial_dir("lifecycle", tiny_profile)
    try:
        with pytest.raises(KeyboardInterrupt):
            zoo.get("lifecycle", tiny_profile)
        assert (folder / "state.pt").exists() and not zoo.entry_path("lifecycle", tiny_profile).exists()
        entry = zoo.get("lifecycle", tiny_profile)
        assert handed == [folder, folder] and (entry.path / "weights").read_text() == "step 3"
        assert not folder.exists()
    finally:
        del zoo.registry()["lifecycle"]


def test_nothing_reaches_behind_a_profile_view():
    """Only `profiles` itself may read a view's whole profile: a recipe or an evaluation that did
    could read fields its cache key does not cover."""
    import alignlab
    root = Path(alignlab.__file__).parent
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.py")
                 if p.name != "profiles.py" and "._profile" in p.read_text()]
    assert offenders == []


def test_names_lists_only_what_a_profile_uses():
    ci, gpu = profiles.get_profile("ci"), profiles.get_profile("gpu")
    assert {"tokenizer", "base", "sft", "rm", "ppo"} <= set(zoo.names(ci))
    assert "ppo_beta0.01" in zoo.names(gpu) and "ppo_beta0.01" not in zoo.names(ci)


def _expected_names() -> set[str]:
    """What the recipes registered before they became tables: the names computed from the union of
    the profiles' sweeps. A profile that sweeps a new β fails here until its row is written out."""
    from alignlab import recipes
    every = profiles.PROFILES.values()
    names = {"tokenizer", "base", "sft", "rm_data", "rm", "rm_length_biased", "rm_noiseless",
             "ppo_ptx_only", "ppo_length_biased", *recipes.FAMILY,
             "sft_helpful_only", "cai_revisions", "sl_cai", "cai_comparisons", "rl_cai", "rl_cai_edited", "rl_cai_hard",
             "prm_samples", "prm_auto_labels", "orm", "prm_gold", "prm_auto",
             "grpo", "grpo_sloppy", "grpo_lenient", "grpo_dr", "ppo_arithmetic", "rlvr_pools", "w2s_grid",
             "ppo_ptx_corpus", "ppo_shared_rm", "small_pipeline", "rm_helpful", "rm_harmless"}
    names |= {recipes.seed_name(v, s) for v in ("ppo", "ppo_no_ptx") for s in range(recipes.PPO_SEEDS)}
    names |= {recipes.ppo_beta_name(b) for p in every for b in p.ppo.betas}
    names |= {recipes.dpo_beta_name(b) for p in every for b in p.dpo.betas}
    return names | {n for s in range(max(p.dpo.seeds for p in every)) for n in recipes.pair_choice_names(s).values()}


def test_the_tables_hold_every_run_once():
    from alignlab import recipes
    names = [r.name for r in recipes.RUNS]
    assert len(names) == len(set(names)) == len(zoo.registry())
    assert set(names) == _expected_names()


def test_every_entry_name_is_written_out_in_its_chapter_module():
    """`grep -rn '"ppo_beta0.02"' alignlab/` finds the row that builds it."""
    from alignlab import recipes
    modules = {m.CHAPTER: Path(m.__file__).read_text() for m in recipes.CHAPTERS}
    root = Path(__file__).resolve().parents[1]
    for r in recipes.RUNS:
        assert f'"{r.name}"' in modules[r.chapter], r.name
        assert (root / "chapters" / f"{r.chapter}.ipynb").exists(), r.chapter


def test_the_registry_marks_each_row_with_its_chapter():
    from alignlab import recipes
    assert zoo.registry()["sft"].chapter == recipes.pretraining.CHAPTER


def test_family_labels_follow_chapter_0s_notation():
    from alignlab import recipes
    assert recipes.family_label("ipo") == "IPO (τ = 0.1)" and recipes.family_label("orpo") == "ORPO (λ = 0.1)"
    assert recipes.family_label("simpo") == "SIMPO (β = 2, γ = 1)"


@pytest.mark.slow
def test_a_run_at_another_rung_builds_nothing_under_the_policy_names(alignlab_home, tiny_profile):
    """DPO's report compares with its SFT model: at the small rung that is `sft@small`, evaluated in
    the build. Asking the zoo for plain `sft` with the rung's profile built a second, small model
    under the policy's name (and its `base`)."""
    entry = zoo.get("dpo_beta0.1@small", tiny_profile)
    assert "report" in entry.meta and entry.meta["report"]["gain"] == pytest.approx(
        entry.meta["report"]["gold"] - evaluate.evaluate_entry("sft@small", tiny_profile).mean, abs=1e-6)
    built = {p.name.rsplit("-", 1)[0] for p in (alignlab_home / "zoo" / "ci").iterdir() if p.is_dir()}
    assert not {"base", "sft"} & built, sorted(built)
