"""`suanli meter` command group."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach this command group to the root app (filled in by its owner)."""
