"""Where AlignLab keeps its files, and the two ways every writer there touches them safely.

The zoo's checkpoints, cached runs, training checkpoints and quiz progress all live under one
folder (`home()`), and all follow two rules, because students run several notebooks at once and
interrupt them:
- **write atomically** (`write_atomic`, `replacing`): write a temporary file beside the target,
  then `os.replace` it; a reader sees the old file or the new one, never half of one;
- **never delete what cannot be read** (`set_aside`): move it to a `.corrupt-` sibling that no
  earlier copy has, and let the caller say where it went.
This module imports no torch, so the quiz (and `import alignlab.zoo`) stays light.
"""
from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

HOME_ENV = "ALIGNLAB_HOME"


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


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to; when the block ends without an error it
    replaces `path` in one step, otherwise it is removed and `path` is untouched.

        with replacing(ckpt) as tmp:
            torch.save(state, tmp)
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:6]}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` (UTF-8) so a reader sees the old file or the new one, never half."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def set_aside(path: Path) -> Path:
    """Move an unreadable file or folder out of the way, never deleting it, and return where it
    went: `<name>.corrupt-<UTC time>-<random>` beside it (a file keeps its extension after that:
    `quiz_progress.corrupt-….json`), so two copies set aside in the same second both survive."""
    path = Path(path)
    stamp = f"corrupt-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    aside = (path.with_name(f"{path.stem}.{stamp}{path.suffix}") if path.is_file()
             else path.with_name(f"{path.name}.{stamp}"))
    path.replace(aside)
    return aside
