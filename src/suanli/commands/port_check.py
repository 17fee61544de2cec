"""`suanli port-check PATH`: will this code run on that chip's software stack?"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from suanli.commands.common import (
    JsonOpt,
    console,
    in_file_option,
    num_option,
    out_file_option,
    print_json,
)
from suanli.errors import SuanliError

STYLE = {"unchanged": "green", "shim": "cyan", "unknown": "dim", "port": "yellow",
         "blocked": "bold red"}


def register(app: typer.Typer) -> None:
    app.command("port-check")(port_check)


def port_check(
    path: Annotated[Path, typer.Argument(help="Project directory or single file to analyse.")],
    target: Annotated[list[str] | None, typer.Option(
        "--target", "-t",
        help="Target stack id or name (repeatable; default: all stacks).")] = None,
    rules: Annotated[list[Path] | None, in_file_option(
        "--rules", help="Extra rules/packages YAML (overrides per rule and stack; also "
                        "$SUANLI_PORT_RULES).")] = None,
    stacks_file: Annotated[list[Path] | None, in_file_option(
        "--stacks", help="Extra stack-facts YAML (adds or replaces stacks by id).")] = None,
    html: Annotated[Path | None, out_file_option(
        "--html", help="Write an HTML report here.")] = None,
    max_items: Annotated[int, typer.Option(
        "--max-items", min=0, help="Items listed per stack in the table output.")] = 12,
    max_mb: Annotated[float, num_option(
        "--max-mb", gt=0, le=1e6, help="Skip (and report) files larger than this (MB).")] = 5.0,
    allowed_only: Annotated[bool, typer.Option(
        "--allowed", help="Print only the allowed stacks, '|'-separated (the 'stacks' column of "
                          "a suanli trace CSV / Job.stacks).")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Scan a project for CUDA-specific code and give a verdict per target software stack:
    runs unchanged, needs a shim, needs porting (items with file:line), blocked or unknown.
    Exit code 0 for a completed analysis, 2 for unreadable input."""
    from suanli.port.analyze import analyze

    report = analyze(path, targets=target or None, rules=rules, stack_files=stacks_file,
                     max_bytes=int(max_mb * 1e6))
    if html is not None:
        from suanli.report.port import write_port_html

        try:
            write_port_html(report, html)
        except OSError as exc:
            raise SuanliError(f"cannot write HTML report: {exc.strerror or exc}",
                              file=html) from None
    if allowed_only:
        print("|".join(report.allowed_stacks()))
        return
    if json_out:
        print_json(report.as_dict())
        return
    _print(report, max_items)
    if html is not None:
        console.print(f"HTML report: {html}", highlight=False)


def _print(report: object, max_items: int) -> None:
    from suanli.port.analyze import Report

    assert isinstance(report, Report)
    kinds = ", ".join(f"{n} {k}" for k, n in report.files_by_kind.items()) or "none"
    console.print(
        f"{report.root}: {report.files_scanned} files ({kinds}), {report.lines:,} lines, "
        f"{len(report.findings)} findings, {len(report.problems)} problem files, "
        f"{report.seconds:.2f} s", highlight=False)
    rules = Counter(f.rule for f in report.findings)
    if rules:
        console.print("findings by rule: " + ", ".join(f"{r} {n}" for r, n in
                                                      rules.most_common()), highlight=False)
    t = Table(title="verdict per stack")
    for col in ("stack", "verdict", "shim", "port", "blocked", "unknown", "vendor code",
                "deciding items"):
        t.add_column(col, overflow="fold")
    for v in report.verdicts:
        deciding = [i for i in v.items if i.outcome == v.verdict and v.verdict != "unchanged"]
        shown = [f"{i.finding.file}:{i.finding.line} {i.finding.rule}" for i in
                 deciding[:max_items]]
        if len(deciding) > max_items:
            shown.append(f"... {len(deciding) - max_items} more")
        t.add_row(
            v.stack,
            f"[{STYLE[v.verdict]}]{v.label}[/]",
            "\n".join(v.shims),
            str(len(v.by_outcome("port"))),
            str(len(v.by_outcome("blocked"))),
            str(len(v.by_outcome("unknown"))),
            f"{len(v.vendor_files)} files" if v.vendor_files else "",
            "\n".join(shown) or "—",
        )
    console.print(t)
    reasons = [(v.stack, r) for v in report.verdicts if v.verdict in ("blocked", "port")
               for r in v.reasons()[:3]]
    for stack, r in reasons:
        console.print(f"  {stack}: {r}", highlight=False, markup=False)
    if report.problems:
        console.print(f"{len(report.problems)} file(s) not (fully) analysed:")
        for p in report.problems[:max_items]:
            console.print(f"  {p.file}: {p.problem}", highlight=False, markup=False)
    console.print("allowed stacks (runs unchanged or shim): "
                  + (", ".join(report.allowed_stacks()) or "none"), highlight=False)
