"""Profiles: one section per chapter with a help string per field, a ladder of model sizes, views
that refuse undeclared settings, and `name@rung` entries trained by the same recipes."""
from __future__ import annotations

import dataclasses

import pytest

from alignlab import models, profiles, zoo

VOCAB = 1024  # the world tokenizer's (recipes.VOCAB_SIZE)


@pytest.mark.parametrize("cls", [profiles.Profile, profiles.ModelSize, *profiles.SECTIONS.values()],
                         ids=lambda c: c.__name__)
def test_every_field_has_a_help_string(cls):
    assert all(f.metadata.get("help") for f in dataclasses.fields(cls))


@pytest.mark.parametrize("name, most", [("ci", 1.0), ("cpu", 1 / 4), ("gpu", 1 / 8)])
def test_the_ladder_has_a_small_rung_the_policy_and_one_above(name, most):
    """Chapters 8-9 need a weak model well below the policy (≤ ¼ of its parameters in cpu, ≤ ⅛ in
    gpu) and a strong one above it, all with the policy's context length."""
    p = profiles.get_profile(name)
    n = {rung: size.n_params(VOCAB) for rung, size in p.ladder.items()}
    assert p.ladder["policy"] == p.policy and n["small"] < n["policy"] < n["large"]
    assert n["small"] <= most * n["policy"]
    assert {size.max_length for size in p.ladder.values()} == {p.policy.max_length}


def test_n_params_counts_what_build_model_builds(tok):
    size = profiles.get_profile("ci").ladder["small"]
    assert size.n_params(len(tok)) == models.n_params(models.build_model(size, tok))


def test_replace_changes_only_the_named_fields_of_a_section():
    ci = profiles.get_profile("ci")
    short = ci.replace(ppo={"steps": 2})
    assert short.ppo.steps == 2 and short.ppo.beta == ci.ppo.beta and short.dpo == ci.dpo
    assert ci.at("small").policy == ci.ladder["small"] and ci.at("policy") is ci
    with pytest.raises(KeyError, match="no model size 'huge'"):
        ci.size("huge")


def test_a_view_shows_declared_paths_and_whole_sections_only():
    ci = profiles.get_profile("ci")
    view = profiles.ProfileView(ci, ("ppo.steps", "sft", "policy"), "recipe 'x'")
    assert (view.ppo.steps, view.sft.lr, view.policy, view.name) == (ci.ppo.steps, ci.sft.lr, ci.policy, "ci")
    with pytest.raises(AttributeError, match="reads profile.ppo.beta"):
        view.ppo.beta
    with pytest.raises(AttributeError, match="reads profile.dpo"):
        view.dpo
    assert profiles.read(ci, ("ppo.steps", "policy")) == {"ppo.steps": ci.ppo.steps,
                                                          "policy": dataclasses.asdict(ci.policy)}


def test_a_new_chapters_settings_do_not_touch_earlier_keys():
    ci = profiles.get_profile("ci")
    other = ci.replace(dpo={"steps": ci.dpo.steps + 1}, ppo={"beta": 0.5})
    assert all(zoo.key(n, other) == zoo.key(n, ci) for n in ("tokenizer", "base", "sft", "rm_data", "rm"))
    assert zoo.key("dpo_beta0.1", other) != zoo.key("dpo_beta0.1", ci)


def test_sized_entries_chain_through_the_ladder():
    """`rm@small` is the reward-model recipe on the small rung's SFT model and comparisons; the
    tokenizer is shared; the policy rung is the plain name."""
    ci = profiles.get_profile("ci")
    assert zoo.key("sft@policy", ci) == zoo.key("sft", ci) and zoo.key("sft@small", ci) != zoo.key("sft", ci)
    assert zoo.key("tokenizer", ci.at("small")) == zoo.key("tokenizer", ci)
    recipe, name, sized, deps = zoo.canonical("rm@small", ci)
    assert name == "rm@small" and sized.policy == ci.ladder["small"]
    assert deps == {"sft": "sft@small", "rm_data": "rm_data@small"}
    with pytest.raises(KeyError, match="one size only"):
        zoo.key("tokenizer@small", ci)
    with pytest.raises(KeyError, match="no model size"):
        zoo.key("sft@huge", ci)


@pytest.mark.slow
def test_a_small_rung_is_pretrained_and_fine_tuned_by_the_same_recipes(alignlab_home, tiny_profile):
    small = zoo.get("sft@small", tiny_profile)
    model, _ = small.load(device="cpu")
    assert small.name == "sft@small" and model.config.hidden_size == tiny_profile.ladder["small"].hidden_size
    assert small.meta["demos"] == tiny_profile.sft.demos
    policy, _ = zoo.get("sft", tiny_profile).load(device="cpu")
    assert models.n_params(model) < models.n_params(policy)
    dirs = {p.name.split("-")[0] for p in (alignlab_home / "zoo" / "ci").iterdir() if not p.name.startswith(".")}
    assert {"tokenizer", "base@small", "sft@small", "base", "sft"} <= dirs
