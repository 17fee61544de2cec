"""The ``suanli`` command line. Each command group lives in ``suanli.commands.<name>``."""

from __future__ import annotations

import sys

import typer

from suanli import __version__
from suanli.commands import chips, client, demo, estimate, meter, serve, simulate
from suanli.commands.common import err_console
from suanli.errors import SuanliError

app = typer.Typer(
    name="suanli",
    help="算力 suanli: catalogue, meter, estimate, plan and schedule heterogeneous AI compute.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """算力 suanli: catalogue, meter, estimate, plan and schedule heterogeneous AI compute."""


@app.command()
def version() -> None:
    """Print the suanli version."""
    print(__version__)


for _module in (demo, chips, meter, estimate, simulate, serve, client):
    _module.register(app)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: user errors become one line on stderr and exit code 2."""
    try:
        app(args=argv, standalone_mode=True)
    except SuanliError as exc:
        err_console.print(
            "error:", exc.render(), style="bold red", highlight=False, markup=False, soft_wrap=True
        )
        sys.exit(2)


if __name__ == "__main__":
    main()
