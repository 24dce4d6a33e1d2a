"""The constitution: principles as data (Bai et al., 2022, "Constitutional AI").

The principles live in `constitution.toml` beside this file; `load_constitution` reads and
validates it (or an edited copy). Each principle names the gold component it protects, so
chapter 5 can measure how faithfully an AI feedback model that reads them tracks what humans
(the gold reward) want.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from .common import COMPONENTS

DEFAULT_PATH = Path(__file__).with_name("constitution.toml")


@dataclass(frozen=True)
class Principle:
    """One principle: how to ask for a critique, a revision and a comparison under it."""

    name: str
    component: str
    critique_request: str
    critique: str
    revision_request: str
    choice_question: str


_FIELDS = tuple(f.name for f in fields(Principle))


class ConstitutionError(ValueError):
    """A constitution file that cannot be used; the message names the file and the principle."""


def _principle(path: Path, i: int, entry: object) -> Principle:
    name = entry.get("name") if isinstance(entry, dict) else None
    where = f"{path}: principle {name!r}" if isinstance(name, str) and name else f"{path}: principle #{i + 1}"
    if not isinstance(entry, dict):
        raise ConstitutionError(f"{where} must be a table of fields ([[principle]]), got {entry!r}.")
    missing = [f for f in _FIELDS if f not in entry]
    unknown = sorted(set(entry) - set(_FIELDS))
    if missing or unknown:
        raise ConstitutionError(f"{where}: missing fields {missing}, unknown fields {unknown}; "
                                f"each principle has exactly {list(_FIELDS)}.")
    empty = [f for f in _FIELDS if not isinstance(entry[f], str) or not entry[f].strip()]
    if empty:
        raise ConstitutionError(f"{where}: {empty} must be non-empty text.")
    if entry["component"] not in COMPONENTS:
        raise ConstitutionError(f"{where}: component {entry['component']!r} is not a gold component; "
                                f"choose one of {COMPONENTS}.")
    return Principle(**{f: entry[f].strip() for f in _FIELDS})


def load_constitution(path: str | Path = DEFAULT_PATH) -> tuple[Principle, ...]:
    """The principles of a constitution file (TOML, one `[[principle]]` table each), validated:
    ConstitutionError, naming the file and the principle, for anything malformed."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ConstitutionError(f"{path}: cannot read the constitution ({err}).") from err
    entries = data.get("principle")
    if not isinstance(entries, list) or not entries:
        raise ConstitutionError(f"{path}: no principles; write each as a [[principle]] table.")
    principles = tuple(_principle(path, i, e) for i, e in enumerate(entries))
    names = [p.name for p in principles]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConstitutionError(f"{path}: principle {dup[0]!r} is defined more than once.")
    return principles


CONSTITUTION: tuple[Principle, ...] = load_constitution()
BY_NAME = {p.name: p for p in CONSTITUTION}
