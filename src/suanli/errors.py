"""User-facing errors.

Every problem caused by input (a file, a flag, a catalogue entry) is raised as a
:class:`SuanliError`. The CLI prints it as one line and exits non-zero; it never shows a
traceback for one of these.
"""

from __future__ import annotations

from pathlib import Path


class SuanliError(Exception):
    """An error the user can fix: bad input, unknown name, infeasible request."""

    def __init__(
        self,
        problem: str,
        *,
        file: str | Path | None = None,
        where: str | None = None,
        field: str | None = None,
    ) -> None:
        self.problem = problem
        self.file = str(file) if file is not None else None
        self.where = where
        self.field = field
        super().__init__(self.render())

    def render(self) -> str:
        """One line, always: newlines quoted from bad input are shown escaped."""
        parts = [p for p in (self.file, self.where, self.field) if p]
        prefix = ": ".join(parts)
        text = f"{prefix}: {self.problem}" if prefix else self.problem
        return text.replace("\r", "\\r").replace("\n", "\\n")


class CannotRun(SuanliError):
    """A job cannot run on a chip or cluster at all (missing precision, does not fit, ...)."""
