"""Hostile values through every command's numeric and path options (issue 6 §1).

The options are discovered from the commands themselves (their type hints), so a new option
or command is covered without editing this file: every numeric option of every command is swept
with NaN and -inf, and must be declared with the shared validation layer. The random fuzz
(which runs commands to completion) covers the commands with base arguments in ``BASE``; add a
new command there with arguments that make it quick. Whatever the value: exit code 0 or 2,
never a traceback, and valid JSON on stdout whenever ``--json`` is given.
"""

from __future__ import annotations

import json
import math
import types
import typing
from pathlib import Path
from typing import Any

import pytest
import typer.main
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from suanli.cli import app

runner = CliRunner()

NO_SERVER = ["--url", "http://127.0.0.1:9", "--token", "fuzz"]  # nothing listens on port 9
# Arguments that make each command runnable and quick; hostile values are added on top.
BASE: dict[tuple[str, ...], list[str]] = {
    ("version",): [],
    ("schema",): ["fleet"],
    ("chips", "list"): [],
    ("chips", "show"): ["H800"],
    ("chips", "compare"): ["H800", "910B"],
    ("meter",): [],
    ("estimate", "train"): ["--model", "llama2-7b", "--chip", "A100", "--devices", "8",
                            "--tp", "1", "--pp", "1"],
    ("estimate", "infer"): ["--model", "llama2-7b", "--chip", "A100", "--devices", "8"],
    ("estimate", "hpc"): ["--chip", "A100", "--devices", "8"],
    ("simulate",): ["--max-jobs", "5", "--policy", "fifo"],
    ("chips", "coverage"): [],
    ("plan", "schema"): [],
    ("check",): [],
    ("agent",): ["--probe-only"],
    # control-plane clients against a closed loopback port: every call must end in exit 2
    ("jobs",): [*NO_SERVER],
    ("job",): ["1", *NO_SERVER],
    ("logs",): ["1", *NO_SERVER],
    ("cancel",): ["1", *NO_SERVER],
    ("nodes", "list"): [*NO_SERVER],
    ("nodes", "drain"): ["site-a/h800/000", *NO_SERVER],
    ("nodes", "undrain"): ["1", *NO_SERVER],
    ("queues",): [*NO_SERVER],
    ("submit",): ["--cmd", "true", *NO_SERVER],
    ("tokens", "list"): [*NO_SERVER],
    ("tokens", "create"): ["--user", "u", *NO_SERVER],
    ("tokens", "revoke"): ["1", *NO_SERVER],
    ("port-check",): [str(Path(__file__).parent / "data" / "port" / "shim_only")],
}
# Servers: a valid value starts a process that runs until stopped, so only the NaN sweep
# (test_no_numeric_option_accepts_a_non_finite_value) covers them here; tests/test_service_cli.py
# runs them for real.
LONG_RUNNING = {("serve",): "runs until stopped", ("up",): "runs until stopped"}
# Commands with no numeric option (their path options are still fuzzed)
NO_NUMBERS = {("version",), ("schema",), ("chips", "show"), ("chips", "compare"),
              ("chips", "coverage"), ("plan", "schema"), ("check",), ("agent",),
              ("job",), ("cancel",), ("nodes", "list"), ("nodes", "drain"),
              ("nodes", "undrain"), ("queues",), ("tokens", "list"),
              ("tokens", "create"), ("tokens", "revoke")}
# Commands fuzzed only with values that must fail fast (a valid value would run for seconds):
FAIL_FAST: dict[tuple[str, ...], list[str]] = {
    ("demo",): [], ("validate",): [],
    ("plan", "run"): [], ("plan", "substitute"): [], ("plan", "pareto"): [],
    ("db", "upgrade"): [], ("db", "current"): [],
    # calibrate refits per run; bench measures the machine (its numbers allocate memory)
    ("calibrate",): [],
    ("bench",): ["--backend", "cpu", "--sizes", "16", "--mem-mb", "1", "--nproc", "0",
                 "--repeat", "1"],
}
# Options the random fuzz leaves out (the NaN sweep still covers them), with the reason.
SKIP = {
    ("simulate", "--round"): "only preemptive policies use rounds; fifo is used for speed",
}

NUMBERS = ["nan", "inf", "-inf", "-1", "0", "1e308", "-1e308", "1e11", "", "abc", "0.5",
           "3", "1e-300", "99999999999999999999"]


def _commands() -> dict[tuple[str, ...], Any]:
    out: dict[tuple[str, ...], Any] = {}

    def walk(c: Any, path: tuple[str, ...]) -> None:
        subs = getattr(c, "commands", None)
        if subs is not None:
            for name, sub in subs.items():
                walk(sub, (*path, name))
        else:
            out[path] = c

    walk(typer.main.get_command(app), ())
    return out


def _base_type(t: Any) -> Any:
    if typing.get_origin(t) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(t) if a is not type(None)]
        return _base_type(args[0]) if len(args) == 1 else None
    if typing.get_origin(t) is list:
        return _base_type(typing.get_args(t)[0])
    return t


def _options(cmd: Any) -> tuple[list[str], list[str]]:
    """(numeric options, path options) of a command, from its callback's type hints."""
    hints = typing.get_type_hints(cmd.callback)
    nums, paths = [], []
    for p in cmd.params:
        t = _base_type(hints.get(p.name))
        # a positional argument has no flag: it is fuzzed as the value itself
        flag = max(p.opts, key=len) if p.opts and p.opts[0].startswith("-") else None
        if t in (int, float) and flag:
            nums.append(flag)
        elif t is Path:
            paths.append(flag or "")
    return nums, paths


_ALL = _commands()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("hostile")
    (d / "binary.bin").write_bytes(bytes(range(256)) * 8)
    (d / "empty.yaml").write_text("")
    (d / "text.csv").write_text("a,b\n1,2\n")
    (d / "a-dir").mkdir()
    return {
        "binary": str(d / "binary.bin"), "empty": str(d / "empty.yaml"),
        "text": str(d / "text.csv"), "dir": str(d / "a-dir"),
        "missing": str(d / "missing.yaml"), "unwritable": "/proc/suanli-fuzz/x.html",
        "proc": "/proc/version",
    }


def test_every_command_is_fuzzed() -> None:
    """A command another helper adds must be added to BASE (or FAIL_FAST) to be covered."""
    missing = sorted(set(_ALL) - set(BASE) - set(FAIL_FAST) - set(LONG_RUNNING))
    assert not missing, f"add base arguments for {missing} to tests/test_cli_fuzz.py BASE"
    for path in BASE:
        nums, _ = _options(_ALL[path])
        assert path in NO_NUMBERS or nums or path == ("chips", "list"), path


def _never_valid(value: str) -> bool:
    """A value no numeric option may accept: not a number, or not finite."""
    try:
        return not math.isfinite(float(value))
    except ValueError:
        return True


def _check(args: list[str], as_json: bool, must_fail: bool = False) -> None:
    r = runner.invoke(app, [*args, "--json"] if as_json else args)
    if must_fail:
        assert r.exit_code == 2, (args, "accepted a value that is not a finite number", r.output)
    crashed = r.exception is not None and not isinstance(r.exception, SystemExit)
    assert not crashed, (args, r.exception)
    assert r.exit_code in (0, 2), (args, r.exit_code, r.output)
    assert "Traceback" not in r.output, (args, r.output)
    if as_json:
        data = json.loads(r.stdout)  # strict JSON: NaN/Infinity would fail here
        if r.exit_code == 2:
            assert set(data["error"]) == {"file", "entry", "field", "problem"}, data


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_hostile_values_through_the_cli(data: st.DataObject, hostile: dict[str, str],
                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # nothing a command writes lands in the repository
    path = data.draw(st.sampled_from(sorted(BASE)), label="command")
    nums, paths = _options(_ALL[path])
    nums = [n for n in nums if (path, n) not in SKIP]
    args = [*path, *BASE[path]]
    bad = False
    if nums:
        for flag in data.draw(st.lists(st.sampled_from(nums), min_size=1, max_size=2,
                                       unique=True), label="options"):
            value = data.draw(st.one_of(st.sampled_from(NUMBERS),
                                        st.floats(allow_nan=True).map(repr)), label=flag)
            args += [flag, value]
            bad = bad or _never_valid(value)
    if paths and data.draw(st.booleans(), label="hostile path"):
        flag = data.draw(st.sampled_from(paths), label="path option")
        value = hostile[data.draw(st.sampled_from(sorted(hostile)), label="path")]
        args += [flag, value] if flag else [value]
    _check(args, data.draw(st.booleans(), label="--json"), must_fail=bad)


_NUMERIC = [(path, flag) for path in sorted(_ALL) for flag in _options(_ALL[path])[0]]


@pytest.mark.parametrize(("path", "flag"), _NUMERIC)
@pytest.mark.parametrize("value", ["nan", "-inf"])
def test_no_numeric_option_accepts_a_non_finite_value(path: tuple[str, ...], flag: str,
                                                      value: str) -> None:
    """Every numeric option of every command (also commands without BASE arguments: the
    value is rejected while parsing, before the command runs)."""
    base = BASE.get(path, FAIL_FAST.get(path, []))
    _check([*path, *base, flag, value], as_json=True, must_fail=True)


@pytest.mark.parametrize("path", sorted(FAIL_FAST))
@pytest.mark.parametrize("kind", ["unwritable", "binary", "dir", "missing"])
def test_fail_fast_commands_with_hostile_paths(path: tuple[str, ...], kind: str,
                                               hostile: dict[str, str], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _, paths = _options(_ALL[path])
    for flag in paths:
        if path == ("validate",) and kind == "binary":
            continue  # validate's CSV reading belongs to the performance model (issue 6 §1)
        args = [*path, *FAIL_FAST[path], flag, hostile[kind]]
        if kind in ("dir", "missing") and flag in ("--out", "--data"):
            continue  # a folder (existing or new) is a valid --out / --data
        for as_json in (False, True):
            _check(args, as_json)
