"""`suanli check`: which executors and device probes work on this machine (like `sky check`)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from suanli.catalog import load_catalog
from suanli.commands.common import CatalogOpt, JsonOpt, console, print_json


def register(app: typer.Typer) -> None:
    app.command("check")(check)


def executor_report(options: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One entry per registered executor: ok, why, declared features."""
    from suanli.exec import executor_names, get_executor
    from suanli.exec.plugins import load_executors

    problems = load_executors()
    out: list[dict[str, Any]] = []
    for name in executor_names():
        try:
            ex = get_executor(name, **(options or {}).get(name, {}))
            ok, why = ex.check()
            features = ex.features.model_dump()
        except Exception as exc:  # a broken plugin must not hide the others
            ok, why, features = False, f"{type(exc).__name__}: {exc}", {}
        out.append({"name": name, "ok": ok, "detail": " ".join(str(why).split()),
                    "features": features})
    out += [{"name": p.split(":")[0], "ok": False, "detail": p, "features": {}}
            for p in problems]
    return out


def check(
    ray_address: Annotated[
        str | None,
        typer.Option("--ray-address", help="Ray job API URL (default $SUANLI_RAY_ADDRESS)."),
    ] = None,
    catalog: CatalogOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Report which executors and vendor probes are configured and working here."""
    from suanli.probes import probe_all

    cat = load_catalog(catalog)
    from suanli.service.settings import default_home

    options: dict[str, dict[str, Any]] = {"ray": {"address": ray_address}} if ray_address else {}
    options["local"] = {"root": default_home() / "runs"}  # where `suanli serve` runs launches
    executors = executor_report(options)
    probes = [r.model_dump(mode="json") for r in probe_all(cat)]
    if json_out:
        print_json({"executors": executors, "probes": probes})
        return
    table = Table(title="Executors", title_justify="left")
    for col in ("executor", "status", "detail", "features"):
        table.add_column(col)
    for e in executors:
        feats = ", ".join(k for k, v in e["features"].items() if v) or "—"
        table.add_row(e["name"], "[green]enabled[/]" if e["ok"] else "[red]disabled[/]",
                      e["detail"], feats)
    console.print(table)
    ptable = Table(title="Device probes", title_justify="left")
    for col in ("probe", "vendor", "status", "tool", "devices", "detail"):
        ptable.add_column(col)
    colour = {"ok": "green", "not_present": "dim", "unparseable": "yellow", "error": "red"}
    for r in probes:
        chips = sorted({d["chip_id"] or "?" for d in r["devices"]})
        ptable.add_row(r["probe"], r["vendor"], f"[{colour[r['status']]}]{r['status']}[/]",
                       r["tool"] or "—", f"{len(r['devices'])} {' '.join(chips)}".strip(),
                       r["message"])
    console.print(ptable)
    n_ok = sum(e["ok"] for e in executors)
    n_dev = sum(len(r["devices"]) for r in probes)
    console.print(f"{n_ok} of {len(executors)} executors enabled; {n_dev} accelerator(s) found.")
