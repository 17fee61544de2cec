"""What scanners produce: findings (file:line, rule id, evidence) and per-file problems."""

from __future__ import annotations

from dataclasses import dataclass

EVIDENCE_MAX = 160


@dataclass(frozen=True, slots=True)
class Finding:
    file: str  # path relative to the analysed root (POSIX separators)
    line: int  # 1-based
    rule: str  # rule id, e.g. "py.cuda-api" or "pkg.flash-attn"
    evidence: str  # the source line (shortened) or what was matched
    text_match: bool = False  # found by the text fallback (file did not parse)

    def as_dict(self) -> dict[str, object]:
        d: dict[str, object] = {
            "file": self.file, "line": self.line, "rule": self.rule, "evidence": self.evidence,
        }
        if self.text_match:
            d["text_match"] = True
        return d


@dataclass(frozen=True, slots=True)
class FileProblem:
    """A file that could not be (fully) analysed; the analysis goes on."""

    file: str
    problem: str

    def as_dict(self) -> dict[str, str]:
        return {"file": self.file, "problem": self.problem}


def evidence(line: str) -> str:
    """One source line, whitespace-collapsed and shortened."""
    text = " ".join(line.split())
    return text if len(text) <= EVIDENCE_MAX else text[: EVIDENCE_MAX - 3] + "..."


class Lines:
    """Lazy line access for evidence: splits the text once, on first use."""

    __slots__ = ("_lines", "_text")

    def __init__(self, text: str) -> None:
        self._text = text
        self._lines: list[str] | None = None

    def all(self) -> list[str]:
        if self._lines is None:
            self._lines = self._text.splitlines()
        return self._lines

    def get(self, lineno: int) -> str:
        lines = self.all()
        if 1 <= lineno <= len(lines):
            return evidence(lines[lineno - 1])
        return ""
