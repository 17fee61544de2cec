"""Shared helpers for tests that drive the real `suanli` CLI."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from suanli.cli import app, main

runner = CliRunner()


def run(*args: str) -> str:
    """Run a command; it must succeed. Returns its output."""
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def run_json(*args: str) -> Any:
    return json.loads(run(*args, "--json"))


def run_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run through ``main`` (the console script): exit 2 and exactly one `error:` line."""
    with pytest.raises(SystemExit) as info:
        main(list(args))
    assert info.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    return lines[0]
