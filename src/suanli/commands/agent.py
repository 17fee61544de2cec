"""`suanli agent`: the node agent. ``--probe-only`` prints what the vendor probes found."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from suanli.catalog import load_catalog
from suanli.commands.common import CatalogOpt, JsonOpt, console, fmt, print_json
from suanli.errors import SuanliError


def register(app: typer.Typer) -> None:
    app.command("agent")(agent)


def agent(
    probe_only: Annotated[
        bool, typer.Option("--probe-only", help="Discover accelerators, print them, exit.")
    ] = False,
    server: Annotated[str | None, typer.Option("--server", help="Control plane URL.")] = None,
    token: Annotated[
        str | None, typer.Option("--token", envvar="SUANLI_AGENT_TOKEN", help="Node token.")
    ] = None,
    executor: Annotated[
        str, typer.Option("--executor", help="Executor for assigned launches.")
    ] = "local",
    simulate: Annotated[
        str | None, typer.Option("--simulate", metavar="CHIP:COUNT",
                                 help="Register COUNT simulated devices of catalogue chip CHIP "
                                      "instead of probing (tests, demos).")
    ] = None,
    site: Annotated[
        str | None, typer.Option("--site", help="Site the node belongs to (default: agents).")
    ] = None,
    hostname: Annotated[
        str | None, typer.Option("--hostname", help="Node name (default: this host's name).")
    ] = None,
    work_dir: Annotated[
        Path | None, typer.Option("--work-dir", help="Launch directories and logs "
                                  "(default $SUANLI_HOME/agent).")
    ] = None,
    catalog: CatalogOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Run the node agent (register, heartbeat, run assigned jobs) or only probe devices."""
    from suanli.probes import probe_all

    cat = load_catalog(catalog)
    if not probe_only:
        if not server or not token:
            raise SuanliError("the agent needs --server URL and --token T (or --probe-only)",
                              field="--server")
        from suanli.agent.loop import run_agent

        run_agent(server=server, token=token, catalog=cat, executor=executor,
                  simulate=simulate, site=site, hostname=hostname, work_dir=work_dir)
        return
    results = probe_all(cat)
    devices = [d for r in results for d in r.devices]
    if json_out:
        print_json({
            "host": socket.gethostname(),
            "devices": [d.model_dump(mode="json") for d in devices],
            "probes": [r.model_dump(mode="json", exclude={"devices"}) for r in results],
        })
        return
    if not devices:
        console.print(f"{socket.gethostname()}: no accelerators found "
                      f"({len(results)} vendor probes ran; `suanli check` shows each).")
        return
    table = Table(title=f"Accelerators on {socket.gethostname()}", title_justify="left")
    for col in ("vendor", "#", "name", "chip", "memory GiB", "used GiB", "util %", "driver",
                "note"):
        table.add_column(col)
    for d in devices:
        table.add_row(d.vendor, str(d.index), d.name, d.chip_id or "?",
                      fmt(d.memory_mib / 1024 if d.memory_mib is not None else None),
                      fmt(d.memory_used_mib / 1024 if d.memory_used_mib is not None else None),
                      fmt(d.utilization_pct, 0), d.driver_version or "—", d.note or "")
    console.print(table)
