"""The raw BBC news dataset: one folder per class, one ``.txt`` article per file.

Reading, cleaning and validating articles. Turning text into the model's features is serving
code (``usecases.serving.news``), shared with training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from usecases.defaults import MAX_FILE_BYTES, MIN_CHARS
from usecases.serving.text import Vocabulary, tokenize
from usecases.workflow.usecase import Candidate

__all__ = ["CLASSES", "TextRules", "Vocabulary", "clean", "scan", "tokenize", "validate"]

CLASSES = ("business", "entertainment", "politics", "sport", "tech")
VOCAB_FILE = "bbc.vocab"
# Files of the published dataset that document it rather than being articles.
METADATA_FILES = {"README.TXT", VOCAB_FILE}


@dataclass(frozen=True)
class TextRules:
    """What makes an article valid. The longest real article is about 25 KB."""

    min_chars: int = MIN_CHARS
    max_bytes: int = MAX_FILE_BYTES
    extension: str = ".txt"
    max_garbage_ratio: float = 0.05

    def as_dict(self) -> dict[str, object]:
        return {
            "min_chars": self.min_chars,
            "max_bytes": self.max_bytes,
            "extension": self.extension,
            "max_garbage_ratio": self.max_garbage_ratio,
        }


def clean(data: bytes) -> tuple[str, int]:
    """Decode UTF-8, replacing invalid bytes (as the paper's cleaning does).

    Returns the text and how many replacement characters decoding introduced.
    """
    text = data.decode("utf-8", errors="replace")
    return text, text.count("\ufffd") - data.count("\ufffd".encode())


def _garbage_ratio(text: str) -> float:
    bad = sum(1 for ch in text if ch == "\ufffd" or (ord(ch) < 32 and ch not in "\n\r\t"))
    return bad / max(len(text), 1)


def validate(rel_path: str, data: bytes, rules: TextRules) -> str | None:
    """The reason an article is invalid, or None when it is valid."""
    if not rel_path.endswith(rules.extension):
        return f"wrong extension: expected {rules.extension}"
    if len(data) == 0:
        return "empty file"
    if len(data) > rules.max_bytes:
        return f"too large: {len(data)} bytes > max {rules.max_bytes}"
    if b"\x00" in data:
        return "binary content: contains NUL bytes"
    text, _ = clean(data)
    ratio = _garbage_ratio(text)
    if ratio > rules.max_garbage_ratio:
        return f"binary content: {ratio:.0%} undecodable or control characters"
    if len(text.strip()) < rules.min_chars:
        return f"too short: {len(text.strip())} characters < min {rules.min_chars}"
    return None


def scan(folder: Path, rules: TextRules) -> list[Candidate]:
    """Collect every file under the raw folder, each with its label and validity."""
    candidates: list[Candidate] = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        parts = rel.split("/")
        data = path.read_bytes()
        if len(parts) == 1 and rel in METADATA_FILES:
            candidates.append(Candidate(rel, rel, data, None, "metadata"))
            continue
        item_id = rel.rsplit(".", 1)[0] if "." in parts[-1] else rel
        label: str | None = None
        reason: str | None
        if len(parts) != 2:
            reason = ("outside any class folder" if len(parts) == 1
                      else "nested below a class folder")
        elif parts[0] not in CLASSES:
            reason = f"unknown class folder {parts[0]!r} (expected one of {', '.join(CLASSES)})"
        else:
            label = parts[0]
            reason = validate(rel, data, rules)
        notes = {}
        if reason is None:
            _, replaced = clean(data)
            if replaced:
                notes["replaced_invalid_utf8"] = replaced
        candidates.append(
            Candidate(item_id, rel, data, label, "valid" if reason is None else "quarantined",
                      reason, notes)
        )
    return candidates
