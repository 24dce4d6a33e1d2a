"""The zoo: named, cached checkpoints (`tokenizer`, `base`, `sft`, …), built on a miss.

    entry = zoo.get("sft")            # trains tokenizer → base → sft if they are not cached
    model, tok = entry.load()

An entry lives in `$ALIGNLAB_HOME/zoo/<profile>/<name>-<key>/`, where the key hashes the recipe's
version, the profile fields it reads, the world's version and the keys of the entries it was
built from: change any of them and the entry is rebuilt instead of silently reused (and adding a
field for a later chapter does not re-pretrain the base model). A recipe sees only the fields it
declares, so it cannot read one its key does not cover. Safety, because students run
several notebooks at once and interrupt them:
- a file lock per entry, so two notebooks building the same entry wait for one build;
- atomic writes: build into a temporary directory, write a manifest of file hashes, rename;
- every `get` checks the manifest; a damaged entry is moved aside (never deleted) and rebuilt;
- an interrupted build keeps its training checkpoint and resumes from it on the next `get`.
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
from typing import Callable

from filelock import FileLock

from .profiles import Profile, ProfileView, resolve, whole

HOME_ENV = "ALIGNLAB_HOME"
MANIFEST = "MANIFEST.json"
META = "meta.json"


def home() -> Path:
    """Root of the cache: $ALIGNLAB_HOME, else the per-user cache directory."""
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).expanduser()
    from platformdirs import user_cache_dir
    return Path(user_cache_dir("alignlab"))


def shown(path: Path) -> str:
    """A cache path as messages print it: relative to $ALIGNLAB_HOME or ~, not machine-specific."""
    path = Path(path)
    for root, label in ((home(), "$ALIGNLAB_HOME" if os.environ.get(HOME_ENV) else None), (Path.home(), "~")):
        if label and path.is_relative_to(root):
            rel = path.relative_to(root)
            return label if str(rel) == "." else f"{label}/{rel}"
    return str(path)


@dataclass(frozen=True)
class Recipe:
    """How to build one entry: `build(out_dir, profile, deps) -> meta dict`."""

    build: Callable[[Path, Profile, dict[str, "Entry"]], dict]
    deps: tuple[str, ...] = ()
    version: str = "1"
    why: str = ""
    fields: tuple[str, ...] | None = None  # profile fields the build reads; None = all of them
    used_by: Callable[[Profile], bool] | None = None  # which profiles' chapters need it; None = all


RECIPES: dict[str, Recipe] = {}


def register(name: str, deps: tuple[str, ...] = (), version: str = "1", why: str = "",
             fields: tuple[str, ...] | None = None, used_by: Callable[[Profile], bool] | None = None):
    """Decorator that adds a build function to the zoo under `name`; `fields` lists the profile
    fields it reads (its key hashes only those; the build is handed a view of only those);
    `used_by(profile)` says whether that profile's chapters use the entry (`names`)."""
    def wrap(fn):
        RECIPES[name] = Recipe(fn, deps, version, why, fields, used_by)
        return fn
    return wrap


def names(profile: Profile | str | None = None) -> list[str]:
    """The entries the chapters use in `profile` (what `alignlab zoo build` builds by default)."""
    prof = resolve(profile)
    return [n for n, r in RECIPES.items() if r.used_by is None or r.used_by(prof)]


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

    def load(self, device=None, dtype=None):
        """(model, tokenizer) for model entries; see `alignlab.models.load`."""
        from .models import load
        return load(self.path, device=device, dtype=dtype)

    def tokenizer(self):
        from .models import load_tokenizer
        return load_tokenizer(self.path)


def key(name: str, profile: Profile | ProfileView) -> str:
    """Hash of everything that determines the entry's content."""
    from .world import WORLD_VERSION
    if name not in RECIPES:
        raise KeyError(f"No zoo entry named {name!r}; known entries: {sorted(RECIPES)}.")
    recipe, profile = RECIPES[name], whole(profile)
    fields = asdict(profile)
    if recipe.fields is not None:
        fields = {f: fields[f] for f in (*recipe.fields, "name")}
    spec = {"name": name, "recipe": recipe.version, "world": WORLD_VERSION,
            "profile": fields, "deps": {d: key(d, profile) for d in recipe.deps}}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def entry_path(name: str, profile: Profile | ProfileView) -> Path:
    return home() / "zoo" / profile.name / f"{name}-{key(name, profile)}"


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


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` so a reader sees the old file or the new one, never half of one: a
    temporary file beside it (this process's own), then `os.replace`."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _set_aside(path: Path, reason: str) -> None:
    aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}-{uuid.uuid4().hex[:6]}")
    os.replace(path, aside)
    print(f"[alignlab] zoo entry {path.name} is damaged: {reason}. "
          f"Kept it as {aside.name} and rebuilding it.")


def _build(name: str, profile: Profile, final: Path) -> None:
    recipe = RECIPES[name]
    deps = {d: get(d, profile) for d in recipe.deps}
    print(f"[alignlab] building '{name}' for the {profile.name} profile"
          f"{' — ' + recipe.why if recipe.why else ''} (cached afterwards in {shown(final.parent)})")
    tmp = final.parent / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    t0 = time.time()
    try:
        view = ProfileView(profile, recipe.fields, f"recipe {name!r}", "add it to register(..., fields=...)")
        meta = recipe.build(tmp, view, deps)
        meta.update(name=name, profile=profile.name, key=key(name, profile),
                    build_seconds=round(time.time() - t0, 1))
        (tmp / META).write_text(json.dumps(meta, indent=1))
        write_manifest(tmp)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"[alignlab] built '{name}' in {time.time() - t0:.0f} s")


def get(name: str, profile: str | Profile | ProfileView | None = None, rebuild: bool = False) -> Entry:
    """The entry `name` for `profile` (default: the active one), built first if needed."""
    prof = whole(profile)  # a recipe may pass its view: each entry's key covers its own fields
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


def partial_dir(name: str, profile: Profile | ProfileView) -> Path:
    """Where an in-progress build keeps its training checkpoint (survives an interrupt)."""
    return home() / "zoo" / profile.name / ".partial" / f"{name}-{key(name, profile)}"


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


def entries(profile: str | None = None) -> list[dict]:
    """Everything in the cache (optionally one profile): name, profile, size, state."""
    root, out = home() / "zoo", []
    for d in sorted(root.glob(f"{profile or '*'}/*")):
        if d.is_dir() and not d.name.startswith("."):
            size = sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
            state = "damaged (kept aside)" if ".corrupt-" in d.name else (verify(d) or "ok")
            out.append({"profile": d.parent.name, "entry": d.name, "mb": round(size / 1e6, 2), "state": state})
    return out


def clean(profile: str | None = None) -> int:
    """Delete cached entries and runs (of one profile, or all). Returns how many were removed."""
    n = 0
    for sub in ("zoo", "runs"):
        for d in (home() / sub).glob(profile or "*"):
            shutil.rmtree(d, ignore_errors=True)
            n += 1
    return n


from . import recipes  # noqa: E402,F401  (registers tokenizer, base, sft, …)
