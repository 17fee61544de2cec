"""Tests that need something outside the repository (../shared data, a real PostgreSQL, Slurm,
Ray, a browser) skip with a message naming what is missing — except in CI, where `.ci/run` sets
``SUANLI_CI_STRICT=1`` and provides all of them, so a missing one is a failure, not a skip."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def strict() -> bool:
    return os.environ.get("SUANLI_CI_STRICT") == "1"


def need(ok: bool, what: str) -> None:
    """Skip (or, in CI, fail) the calling test unless ``ok``; ``what`` names the missing thing."""
    if ok:
        return
    if strict():
        pytest.fail(f"CI must provide {what}", pytrace=False)
    pytest.skip(f"needs {what}")


def shared_file(rel: str) -> Path:
    """A file under ../shared (beside the repository); skips/fails when it is absent."""
    path = SHARED / rel
    need(path.exists(), f"../shared/{rel} (the workspace's shared data; not in a public clone)")
    return path


DATA = ROOT / "tests" / "data"


def data_file(name: str) -> Path:
    """A small file shipped in tests/data (always present)."""
    path = DATA / name
    assert path.exists(), f"tests/data/{name} is missing from the repository"
    return path
