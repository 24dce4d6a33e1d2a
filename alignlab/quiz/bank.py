"""Question banks: the encoded JSON files under `banks/`, and checking an answer against them.

A bank follows jupyterquiz's question schema (`question`, `type` in `multiple_choice` |
`many_choice` | `numeric` | `string`, a list of `answers`), so the same file can render on a
static site later, with three additions: a stable `id` per question, an `explanation` shown
after a correct answer and a `hint` after a wrong one.

What is *not* in plain text: which options are correct (a salted SHA-256 per option), accepted
text answers (salted hashes of the normalised text), numeric answers and tolerances, and all
feedback, hints and explanations (XOR with a salted keystream, then base64). This keeps a glance
at the file — or a `grep` — from giving answers away. It is a speed bump, not security: the
salt and the code are right here, and anyone who reads them can decode every bank.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

BANK_DIR = Path(__file__).parent / "banks"
FORMAT = "alignlab-quiz/1"
TYPES = ("multiple_choice", "many_choice", "numeric", "string")


class QuizError(ValueError):
    """A question bank or an answer the quiz cannot use; the message is meant for a student."""


# --- encoding -------------------------------------------------------------------------------


def digest(salt: str, *parts: str) -> str:
    """Salted SHA-256 of `parts` (16 hex characters are plenty for a speed bump)."""
    h = hashlib.sha256(salt.encode())
    for p in parts:
        h.update(b"\x1f" + p.encode())
    return h.hexdigest()[:16]


def _keystream(salt: str, context: str, n: int) -> bytes:
    out, i = b"", 0
    while len(out) < n:
        out += hashlib.sha256(f"{salt}\x1f{context}\x1f{i}".encode()).digest()
        i += 1
    return out[:n]


def encode(salt: str, context: str, value) -> str:
    """Obfuscate any JSON value: XOR its UTF-8 JSON with a keystream from (salt, context)."""
    raw = json.dumps(value, ensure_ascii=False).encode()
    key = _keystream(salt, context, len(raw))
    return base64.b64encode(bytes(a ^ b for a, b in zip(raw, key))).decode()


def decode(salt: str, context: str, blob: str):
    """Inverse of `encode`."""
    raw = base64.b64decode(blob)
    key = _keystream(salt, context, len(raw))
    return json.loads(bytes(a ^ b for a, b in zip(raw, key)).decode())


_APOSTROPHES = re.compile(r"[\u2018\u2019\u02bc\u0060\u00b4]")  # ‘ ’ ʼ ` ´ → '
_WORD = re.compile(r"(?<![^\W_])-?\d+(?:\.\d+)?|[^\W_]+")
"""A number (with its minus sign and decimals, unless the minus joins it to a word: k-3) or a run of
letters and digits; everything between — spaces, hyphens, dashes, underscores, punctuation — is a
word break."""


def normalise(text: str) -> str:
    """How short-text answers are compared, when banks are built and when answers are checked:
    Unicode NFKC, case-folded, possessives dropped ('s → nothing, s' → s), then only the words
    kept, one space apart. So "Condorcet's paradox", "condorcet paradox", "Condorcet-paradox" and
    " CONDORCET PARADOX. " all read "condorcet paradox"; "Bradley–Terry" reads "bradley terry";
    "−0.5" keeps its sign and decimals. What normalising cannot reach — synonyms, plurals, an
    article — is listed in the source as more accepted answers."""
    text = unicodedata.normalize("NFKC", text).casefold().replace("\u2212", "-")  # − (minus) → -
    text = _APOSTROPHES.sub("'", text)
    text = re.sub(r"(?<=\w)'s\b", "", text).replace("'", "")  # Condorcet's → condorcet; players' → players
    return " ".join(_WORD.findall(text))


# --- the bank -------------------------------------------------------------------------------


@dataclass
class Bank:
    """One chapter's encoded questions, as stored in `banks/<chapter>.json`."""

    chapter: str
    title: str
    salt: str
    questions: list[dict] = field(default_factory=list)

    def question(self, qid: str) -> dict:
        """The question with id `qid`; a clear error naming the valid ids otherwise."""
        for q in self.questions:
            if q["id"] == qid:
                return q
        ids = ", ".join(q["id"] for q in self.questions)
        raise QuizError(f"Chapter {self.chapter} has no question {qid!r}. Its questions are: {ids}.")

    def reveal(self, q: dict, key: str) -> str | None:
        """A question's decoded `hint` or `explanation` (None when it has none)."""
        blob = q.get(key)
        return None if blob is None else decode(self.salt, f"{q['id']}/{key}", blob)


def bank_path(chapter: str) -> Path:
    return BANK_DIR / f"{chapter}.json"


def chapters() -> list[str]:
    """Chapter ids that have a bank, e.g. ['00', '01', ...]."""
    return sorted(p.stem for p in BANK_DIR.glob("*.json"))


def _by_name(name: str) -> str:
    for cid in chapters():
        if json.loads(bank_path(cid).read_text(encoding="utf-8")).get("name") == name:
            return cid
    raise QuizError(f"{name!r} is not a chapter: use its number, e.g. quiz('02'), or its name, "
                    "e.g. quiz('bradley_terry').")


def chapter_id(chapter: str | int) -> str:
    """'2', 2, '02', '02_bradley_terry' and 'bradley_terry' all mean chapter '02'."""
    m = re.match(r"\s*(\d+)", str(chapter))
    if m is None:
        return _by_name(str(chapter).strip().lower().replace(" ", "_").replace("-", "_"))
    cid = f"{int(m.group(1)):02d}"
    if not bank_path(cid).exists():
        raise QuizError(f"There is no quiz for chapter {cid}. Quizzes exist for chapters: "
                        f"{', '.join(chapters())}.")
    return cid


def load_bank(chapter: str | int) -> Bank:
    """Read and validate one chapter's bank."""
    cid = chapter_id(chapter)
    data = json.loads(bank_path(cid).read_text(encoding="utf-8"))
    if data.get("format") != FORMAT:
        raise QuizError(f"{bank_path(cid).name}: unknown format {data.get('format')!r} (expected {FORMAT}).")
    return Bank(chapter=cid, title=data["title"], salt=data["salt"], questions=data["questions"])
