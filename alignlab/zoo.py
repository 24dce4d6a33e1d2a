"""The zoo: named, cached checkpoints (`tokenizer`, `base`, `sft`, …), built on a miss.

    entry = zoo.get("sft")            # trains tokenizer → base → sft if they are not cached
    model, tok = entry.load()         # a LlamaForCausalLM; for `rm` a reward model (entry.kind)

An entry lives in `$ALIGNLAB_HOME/zoo/<profile>/<name>-<key>/`, where the key hashes the recipe's
version, the profile fields it reads, the world's version and the keys of the entries it was
built from: change any of them and the entry is rebuilt instead of silently reused (and adding a
field for a later chapter does not re-pretrain the base model). A recipe sees only the fields it
declares, so it cannot read one its key does not cover. Safety, because students run
several notebooks at once and interrupt them:
- a file lock per entry, so two notebooks building the same entry wait for one build;
- atomic writes: build into a temporary directory, write a manifest of file hashes, rename;
- every `get` checks the manifest; a damaged entry is moved aside (never deleted) and rebuilt;
- an interrupted build keeps its training checkpoint and resumes from it on the next `get`: the
  zoo hands each build a checkpoint folder (`Job.checkpoint_dir`) and removes it once the entry
  is saved, so a recipe only trains and saves.
The recipes are the rows of each chapter's table in `alignlab.recipes`; they load on the first
call that needs them (`get`, `key`, `names`, `registry`), so importing the zoo imports no trainer.
`zoo.cached_run` caches JSON results of experiments (sweeps, evaluations) the same way.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from filelock import FileLock

from .cache import home, set_aside, shown, write_atomic  # noqa: F401  (zoo.home, zoo.shown: chapter 0 prints them)
from .profiles import Profile, ProfileView, read, resolve, whole

if TYPE_CHECKING:  # annotations only: importing the zoo imports no transformers
    from transformers import PreTrainedModel, PreTrainedTokenizerFast

MANIFEST = "MANIFEST.json"
META = "meta.json"


CAUSAL_LM, REWARD_MODEL, OTHER_MODEL = "causal_lm", "reward_model", "other_model"
TOKENIZER, DATA = "tokenizer", "data"
"""What an entry holds (`Entry.kind`): a language model (base, sft and every PPO/DPO run), a reward
model (`rm…`: a scalar head on the backbone), a model of another class (no chapter's recipe makes
one; a lab's might), a tokenizer alone, or data (`rm_data`)."""
_NOT_A_MODEL = {OTHER_MODEL: "its config.json names another model class; load it with that transformers class",
                TOKENIZER: "it holds a tokenizer only; use entry.tokenizer()",
                DATA: "it holds data, not a model; read the files in entry.path "
                      "(rm_data: alignlab.reward.load_groups(entry.path))"}
_HEADS = {"ForCausalLM": CAUSAL_LM, "ForSequenceClassification": REWARD_MODEL}
"""The kind of a model entry, by the end of the class name its config.json records."""


@dataclass(frozen=True)
class Entry:
    """A built checkpoint on disk."""

    name: str
    profile: str
    path: Path

    @property
    def meta(self) -> dict:
        """What the build recorded: training history, parameter count, build time, …"""
        return json.loads((self.path / META).read_text())

    @property
    def kind(self) -> str:
        """CAUSAL_LM, REWARD_MODEL, OTHER_MODEL, TOKENIZER or DATA. Read from the files the build
        saved (the model class transformers recorded in config.json), not from the key: entries
        cached before kinds existed keep their keys and folders, and are not rebuilt for it."""
        config = self.path / "config.json"
        if config.exists():
            architecture = (json.loads(config.read_text()).get("architectures") or [""])[0]  # LlamaFor…
            return next((k for head, k in _HEADS.items() if architecture.endswith(head)), OTHER_MODEL)
        return TOKENIZER if (self.path / "tokenizer.json").exists() else DATA

    def load(self, device=None, dtype=None) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
        """(model, tokenizer), the model in eval mode on `device`: a `LlamaForCausalLM` for a
        language model (`alignlab.models.load`; dtype default: bf16 on a GPU, else fp32), a
        `LlamaForSequenceClassification` for a reward model (`alignlab.reward.load_reward_model`;
        dtype default: fp32), as the chapters load them. Any other kind raises TypeError saying
        how to read it (`entry.tokenizer()`, `reward.load_groups(entry.path)`)."""
        kind = self.kind
        if kind == REWARD_MODEL:
            import torch

            from .reward import load_reward_model
            return load_reward_model(self.path, device=device, dtype=dtype or torch.float32)
        if kind != CAUSAL_LM:
            raise TypeError(f"zoo entry {self.name!r} cannot be loaded as a model: {_NOT_A_MODEL[kind]}")
        from .models import load
        return load(self.path, device=device, dtype=dtype)

    def tokenizer(self):
        from .models import load_tokenizer
        return load_tokenizer(self.path)


@dataclass(frozen=True)
class Job:
    """What a recipe's build is handed; it trains, saves into `out` and returns its meta dict."""

    name: str
    """The entry being built (for progress bars and messages)."""
    out: Path
    """An empty folder to save the entry in; the zoo adds `meta.json` and the manifest."""
    profile: ProfileView
    """The profile, showing only the fields the recipe declares."""
    deps: dict[str, Entry]
    """The entries the recipe names in `deps`, built for the same profile."""
    checkpoint_dir: Path
    """Where training keeps its resumable state: kept if the build is interrupted (the next `get`
    resumes from it), removed by the zoo once the entry is saved."""


@dataclass(frozen=True)
class Recipe:
    """One zoo entry: its name, how it is built, and what its key covers."""

    name: str
    build: Callable[[Job], dict]
    deps: tuple[str, ...] = ()
    version: str = "1"
    """Bump it when the build changes what it makes: the key changes and the entry is rebuilt."""
    fields: tuple[str, ...] | None = None
    """The profile settings the build reads, by path (`ppo.steps`, a whole section `ppo`, `policy`):
    its key hashes only these; None = all of them."""
    why: str = ""
    """One line the zoo prints when it builds the entry."""
    used_by: Callable[[Profile], bool] | None = None
    """Whether a profile's chapters use the entry (`names`, `alignlab zoo build`); None = all."""
    sized: bool = False
    """Whether the entry can be built at any model size of the profile: `name@small` trains the
    same recipe with the policy replaced by that rung of the ladder (and its sized deps at it too)."""
    chapter: str = ""
    """The chapter whose table holds the row (filled in by `alignlab.recipes`)."""


_REGISTRY: dict[str, Recipe] = {}


def registry() -> dict[str, Recipe]:
    """Every registrable entry by name, in the chapters' order. The first call imports the
    chapters' tables (`alignlab.recipes`), and with them the trainers."""
    if not _REGISTRY:
        from .recipes import RUNS
        _REGISTRY.update((recipe.name, recipe) for recipe in RUNS)
    return _REGISTRY


def register(recipe: Recipe) -> Recipe:
    """Add an entry beyond the chapters' tables (a lab's own run, a test's)."""
    table = registry()
    if recipe.name in table:
        raise ValueError(f"zoo entry {recipe.name!r} is already registered")
    table[recipe.name] = recipe
    return recipe


def names(profile: Profile | str | None = None) -> list[str]:
    """The entries the chapters use in `profile` (what `alignlab zoo build` builds by default)."""
    prof = resolve(profile)
    return [n for n, r in registry().items() if r.used_by is None or r.used_by(prof)]


def split(name: str) -> tuple[Recipe, str]:
    """`sft@small` → (the `sft` recipe, "small"); a plain name is at the "policy" size."""
    base, _, rung = name.partition("@")
    recipes = registry()
    if base not in recipes:
        raise KeyError(f"No zoo entry named {base!r}; known entries: {sorted(recipes)}.")
    if rung and not recipes[base].sized:
        raise KeyError(f"zoo entry {base!r} has one size only; sized entries: "
                       f"{sorted(n for n, r in recipes.items() if r.sized)}")
    return recipes[base], rung or "policy"


def canonical(name: str, profile: Profile) -> tuple[Recipe, str, Profile, dict[str, str]]:
    """(recipe, the entry's name, the profile it is built with, its deps' entry names): at the
    policy size the plain name; at another rung `name@rung`, its sized deps at the same rung."""
    recipe, rung = split(name)
    profile.size(rung)  # an unknown rung fails here, naming the profile's sizes
    at = (lambda n: n) if rung == "policy" else (lambda n: f"{n}@{rung}" if registry()[n].sized else n)
    return recipe, at(recipe.name), profile.at(rung), {d: at(d) for d in recipe.deps}


def key(name: str, profile: Profile | ProfileView) -> str:
    """Hash of everything that determines the entry's content."""
    from .world import WORLD_VERSION
    recipe, name, sized, deps = canonical(name, whole(profile))
    fields = read(sized, (*recipe.fields, "name")) if recipe.fields is not None else asdict(sized)
    spec = {"name": name, "recipe": recipe.version, "world": WORLD_VERSION,
            "profile": fields, "deps": {d: key(n, whole(profile)) for d, n in deps.items()}}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def entry_path(name: str, profile: Profile | ProfileView) -> Path:
    name = canonical(name, whole(profile))[1]
    return home() / "zoo" / profile.name / f"{name}-{key(name, profile)}"


def partial_dir(name: str, profile: Profile | ProfileView) -> Path:
    """Where an in-progress build keeps its training checkpoint (survives an interrupt)."""
    name = canonical(name, whole(profile))[1]
    return home() / "zoo" / profile.name / ".partial" / f"{name}-{key(name, profile)}"


def _file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(path: Path) -> None:
    files = {str(p.relative_to(path)): {"size": p.stat().st_size, "sha256": _file_sha(p)}
             for p in sorted(path.rglob("*")) if p.is_file() and p.name != MANIFEST}
    (path / MANIFEST).write_text(json.dumps({"files": files, "created": time.time()}, indent=1))


def verify(path: Path) -> str | None:
    """None if the entry at `path` is complete and intact, else what is wrong with it."""
    try:
        files = json.loads((path / MANIFEST).read_text())["files"]
    except FileNotFoundError:
        return "its manifest is missing (an unfinished build?)"
    except (ValueError, KeyError) as err:
        return f"its manifest is unreadable ({err})"
    for rel, info in files.items():
        f = path / rel
        if not f.is_file():
            return f"{rel} is missing"
        if f.stat().st_size != info["size"] or _file_sha(f) != info["sha256"]:
            return f"{rel} does not match its recorded checksum"
    return None


def _set_aside(path: Path, reason: str) -> None:
    aside = set_aside(path)
    print(f"[alignlab] zoo entry {path.name} is damaged: {reason}. "
          f"Kept it as {aside.name} and rebuilding it.")


def _build(name: str, profile: Profile, final: Path) -> None:
    """Build `name` into a temporary folder, then rename it to `final`; the training checkpoint
    folder outlives a failed build and is removed after a successful one."""
    recipe, name, sized, dep_names = canonical(name, profile)
    deps = {d: get(n, profile) for d, n in dep_names.items()}
    print(f"[alignlab] building '{name}' for the {profile.name} profile"
          f"{' — ' + recipe.why if recipe.why else ''} (cached afterwards in {shown(final.parent)})")
    tmp = final.parent / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    checkpoint_dir = partial_dir(name, profile)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    try:
        view = ProfileView(sized, recipe.fields, f"recipe {recipe.name!r}", "add it to the Recipe's fields")
        meta = recipe.build(Job(name, tmp, view, deps, checkpoint_dir))
        meta.update(name=name, profile=profile.name, key=key(name, profile),
                    build_seconds=round(time.time() - t0, 1))
        (tmp / META).write_text(json.dumps(meta, indent=1))
        write_manifest(tmp)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(checkpoint_dir, ignore_errors=True)  # the saved entry supersedes it
    print(f"[alignlab] built '{name}' in {time.time() - t0:.0f} s")


def get(name: str, profile: str | Profile | ProfileView | None = None, rebuild: bool = False) -> Entry:
    """The entry `name` for `profile` (default: the active one), built first if needed; `name@rung`
    (e.g. `sft@small`) is a sized entry at another model size of the profile's ladder."""
    prof = whole(profile)  # a recipe may pass its view: each entry's key covers its own fields
    name = canonical(name, prof)[1]
    final = entry_path(name, prof)
    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(final) + ".lock"):
        if final.exists():
            problem = "a rebuild was requested" if rebuild else verify(final)
            if problem is None:
                return Entry(name, prof.name, final)
            _set_aside(final, problem)
        _build(name, prof, final)
    return Entry(name, prof.name, final)


def cached_run(name: str, config: dict, fn: Callable[[], dict], profile: str | None = None) -> dict:
    """Run `fn()` once per (name, config, profile) and cache its JSON result."""
    prof = resolve(profile)
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]
    path = home() / "runs" / prof.name / f"{name}-{digest}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if path.exists():
            try:
                return json.loads(path.read_text())["result"]
            except (ValueError, KeyError) as err:
                _set_aside(path, f"unreadable cached result ({err})")
        result = fn()
        write_atomic(path, json.dumps({"name": name, "config": config, "result": result}))
    return result


SET_ASIDE = "*.corrupt-*"
"""What `cache.set_aside` names a damaged entry folder or cached run it moved out of the way."""


def _size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
    return round(sum(f.stat().st_size for f in files) / 1e6, 2)


def entries(profile: str | None = None) -> list[dict]:
    """The cached entries (optionally of one profile): name, profile, size, state (`ok` or what is
    wrong). Copies set aside as corrupt are not entries: `set_aside_copies` lists them."""
    out = []
    for d in sorted((home() / "zoo").glob(f"{profile or '*'}/*")):
        if d.is_dir() and not d.name.startswith(".") and not d.match(SET_ASIDE):
            out.append({"profile": d.parent.name, "entry": d.name, "mb": _size_mb(d), "state": verify(d) or "ok"})
    return out


def set_aside_copies(profile: str | None = None) -> list[dict]:
    """Damaged entries and cached runs the zoo set aside instead of deleting (optionally of one
    profile): profile, what (`entry` or `run`), name, size, path. Nothing reads them again."""
    return [{"profile": p.parent.name, "what": what, "entry": p.name, "mb": _size_mb(p), "path": p}
            for sub, what in (("zoo", "entry"), ("runs", "run"))
            for p in sorted((home() / sub).glob(f"{profile or '*'}/{SET_ASIDE}"))]


def clean(profile: str | None = None) -> int:
    """Delete cached entries and runs (of one profile, or all), with the copies set aside as
    corrupt and interrupted builds' checkpoints; quiz progress and results stay. Returns how many
    profile folders (under zoo/ and runs/) were removed."""
    n = 0
    for sub in ("zoo", "runs"):
        for d in (home() / sub).glob(profile or "*"):
            shutil.rmtree(d, ignore_errors=True)
            n += 1
    return n


def clean_set_aside(profile: str | None = None) -> int:
    """Delete only the copies set aside as corrupt (of one profile, or all); every entry and
    cached run stays. Returns how many were removed."""
    copies = set_aside_copies(profile)
    for c in copies:
        if c["path"].is_dir():
            shutil.rmtree(c["path"])
        else:
            c["path"].unlink()
    return len(copies)
