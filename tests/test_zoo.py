"""The zoo: cache hits, one build when two processes ask at once, damaged entries set aside and
rebuilt, keys that change with what they depend on."""
from __future__ import annotations

import json
import multiprocessing as mp
import os

import pytest

from alignlab import zoo


def test_build_then_cache_hit(alignlab_home, tiny_profile, capsys):
    first = zoo.get("sft", tiny_profile)
    out = capsys.readouterr().out
    assert "building 'tokenizer'" in out and "building 'base'" in out and "building 'sft'" in out
    again = zoo.get("sft", tiny_profile)
    assert again.path == first.path and "building" not in capsys.readouterr().out
    meta = again.meta
    assert meta["history"] and meta["n_params"] > 0 and meta["profile"] == "ci"
    assert zoo.verify(again.path) is None
    assert not list((alignlab_home / "zoo" / "ci" / ".partial").glob("*/*.pt"))  # cleaned up


def _get_base(home: str, profile, queue) -> None:
    os.environ["ALIGNLAB_HOME"] = home
    from alignlab import zoo as z
    queue.put(str(z.get("base", profile).path))


def test_two_processes_building_the_same_entry_build_it_once(alignlab_home, tiny_profile):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_get_base, args=(str(alignlab_home), tiny_profile, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
        assert p.exitcode == 0
    paths = {queue.get(timeout=5) for _ in procs}
    assert len(paths) == 1
    built = json.loads((zoo.entry_path("base", tiny_profile) / zoo.META).read_text())
    root = alignlab_home / "zoo" / "ci"
    assert len([d for d in root.iterdir() if d.is_dir() and d.name.startswith("base-")]) == 1
    assert not [d for d in root.iterdir() if d.name.startswith(".tmp-")]
    assert built["name"] == "base" and zoo.verify(zoo.entry_path("base", tiny_profile)) is None


def test_damaged_entry_is_set_aside_and_rebuilt(alignlab_home, tiny_profile, capsys):
    entry = zoo.get("base", tiny_profile)
    weights = entry.path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    capsys.readouterr()
    rebuilt = zoo.get("base", tiny_profile)
    out = capsys.readouterr().out
    assert "damaged" in out and "does not match" in out and "building 'base'" in out
    aside = list(entry.path.parent.glob(entry.path.name + ".corrupt-*"))
    assert aside and (aside[0] / "model.safetensors").exists()  # kept, not deleted
    assert zoo.verify(rebuilt.path) is None
    rebuilt.load(device="cpu")


def test_missing_manifest_counts_as_damaged(alignlab_home, tiny_profile):
    entry = zoo.get("tokenizer", tiny_profile)
    (entry.path / zoo.MANIFEST).unlink()
    assert "manifest is missing" in zoo.verify(entry.path)
    assert zoo.verify(zoo.get("tokenizer", tiny_profile).path) is None


def test_key_follows_profile_and_dependencies(tiny_profile):
    changed = tiny_profile.replace(pretrain_steps=7)
    assert zoo.key("base", tiny_profile) == zoo.key("base", tiny_profile.replace())
    assert zoo.key("base", changed) != zoo.key("base", tiny_profile)
    assert zoo.key("sft", changed) != zoo.key("sft", tiny_profile)  # through its dependency
    with pytest.raises(KeyError, match="known entries"):
        zoo.key("nope", tiny_profile)


def test_cached_run_runs_once_and_survives_corruption(alignlab_home, capsys):
    calls = []

    def fn():
        calls.append(1)
        return {"x": len(calls)}
    assert zoo.cached_run("exp", {"a": 1}, fn, "ci") == {"x": 1}
    assert zoo.cached_run("exp", {"a": 1}, fn, "ci") == {"x": 1}
    assert zoo.cached_run("exp", {"a": 2}, fn, "ci") == {"x": 2}
    for path in (alignlab_home / "runs" / "ci").glob("exp-*.json"):
        path.write_text("{broken")
    assert zoo.cached_run("exp", {"a": 1}, fn, "ci") == {"x": 3}
    assert list(path.parent.glob("*.corrupt-*")) and "damaged" in capsys.readouterr().out


def test_entries_and_clean(alignlab_home, tiny_profile):
    zoo.get("tokenizer", tiny_profile)
    rows = zoo.entries("ci")
    assert [r["state"] for r in rows] == ["ok"] and rows[0]["entry"].startswith("tokenizer-")
    assert zoo.clean("ci") >= 1 and zoo.entries("ci") == []


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
    assert list(zoo.partial_dir("base", tiny_profile).glob("*.pt"))
    entry = zoo.get("base", tiny_profile)
    assert "resuming 'pretrain base (ci)' from its checkpoint at step 4/6" in capsys.readouterr().out
    assert entry.meta["history"][-1]["step"] == 6
    assert not zoo.partial_dir("base", tiny_profile).exists()  # the finished model supersedes it
