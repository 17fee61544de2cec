"""The ``suanli`` command line. Each command group lives in ``suanli.commands.<name>``.

Start-up is kept fast: command modules import only typer/rich/pydantic at module level and
load numpy, scipy and plotly inside the functions that need them (`suanli --help` and
`suanli chips list` import neither scipy nor plotly; see ``benchmarks/startup.py``).

Errors are handled once, here, for every command (including ones added later):

* a :class:`~suanli.errors.SuanliError` prints one ``error: ...`` line on stderr, exit 2;
* a usage error (unknown option, missing value, a value typer cannot parse) exits 2 as well;
* with ``--json`` (or ``--format json``) on the command line, either kind is printed on stdout
  as ``{"error": {"file": ..., "entry": ..., "field": ..., "problem": ...}}`` instead, so a
  script can read it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from suanli import __version__
from suanli.commands import (
    agent,
    bench,
    calibrate,
    check,
    chips,
    client,
    demo,
    estimate,
    meter,
    plan,
    port_check,
    schema,
    serve,
    simulate,
)
from suanli.commands.common import click, err_console, error_json
from suanli.errors import SuanliError

HELP = "算力 suanli: catalogue, meter, estimate, plan and schedule heterogeneous AI compute."


def _wants_json(args: Sequence[str]) -> bool:
    args = list(args)
    if "--json" in args or "--format=json" in args:
        return True
    return any(a == "--format" and i + 1 < len(args) and args[i + 1].lower() == "json"
               for i, a in enumerate(args))


def _param_name(exc: Any) -> str | None:
    param = getattr(exc, "param", None)
    if param is None:
        return getattr(exc, "param_hint", None) if isinstance(
            getattr(exc, "param_hint", None), str) else None
    opts = getattr(param, "opts", None) or []
    return max(opts, key=len) if opts else (param.name or None)


class SuanliGroup(TyperGroup):
    """The root group: one error path for every command, bare group = help with exit 0."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             windows_expand_args: bool = True, **extra: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        as_json = _wants_json(argv)
        try:
            rv = super().main(args=argv, prog_name=prog_name, complete_var=complete_var,
                              standalone_mode=False, windows_expand_args=windows_expand_args,
                              **extra)
            code = rv if isinstance(rv, int) and not isinstance(rv, bool) else 0
        except SuanliError as exc:
            code = 2
            if as_json:
                sys.stdout.write(error_json(exc) + "\n")
            else:
                err_console.print("error:", exc.render(), style="bold red", highlight=False,
                                  markup=False, soft_wrap=True)
        except click.exceptions.NoArgsIsHelpError as exc:
            # `suanli` or `suanli chips` alone: the help is what the user asked for
            # (typer's rich help prints itself while the error is built; plain help is the message)
            msg = exc.format_message()
            if msg.strip():
                click.echo(msg)
            code = 0
        except click.exceptions.ClickException as exc:
            code = exc.exit_code
            if as_json:
                sys.stdout.write(error_json(problem=exc.format_message(),
                                            field=_param_name(exc)) + "\n")
            else:
                exc.show()
        except typer.Exit as exc:
            code = exc.exit_code
        except typer.Abort:
            err_console.print("aborted", highlight=False, markup=False)
            code = 1
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    name="suanli",
    cls=SuanliGroup,
    help=HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(__version__)
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", "-V", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """算力 suanli: catalogue, meter, estimate, plan and schedule heterogeneous AI compute."""


@app.command()
def version() -> None:
    """Print the suanli version."""
    print(__version__)


for _module in (demo, chips, meter, estimate, simulate, plan, port_check, serve, client, check,
                agent, schema, calibrate, bench):
    _module.register(app)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (errors are handled by :class:`SuanliGroup`)."""
    app(args=argv)


if __name__ == "__main__":
    main()
