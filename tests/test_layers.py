"""The layers only import downwards: catalog -> fleet -> perf -> sched -> sim -> presentation."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "suanli"
RANK = {
    "errors": 0,
    "catalog": 1,
    "fleet": 2,
    "perf": 2,
    "port": 2,  # port-check rules: catalogue only
    "probes": 2,  # vendor device probes: catalogue only
    "sched": 3,
    "sim": 4,
    "plan": 4,  # capacity planner: perf, fleet, catalogue
    "exec": 4,  # executors: may use sched decisions, never the service
    "service": 5,  # control plane (API, DB, scheduler loop, dashboard)
    "agent": 6,  # node agent: talks to the service over HTTP, shares its API models
}
TOP = 9  # report, commands, cli: may import anything


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _rank(layer: str) -> int:
    return RANK.get(layer.removesuffix(".py"), TOP)


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
    return [m for m in out if m.startswith("suanli.")]


FILES = sorted(p for p in SRC.rglob("*.py") if p.parent != SRC or p.name != "__init__.py")


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_upward_imports(path: Path) -> None:
    rel = path.relative_to(SRC)
    own = rel.parts[0].removesuffix(".py")
    own_rank = _rank(own)
    for mod in _imports(path):
        target = _layer(mod)
        if target == own:
            continue
        # fleet and perf are siblings: perf may not import fleet, nor fleet perf
        if {own, target} == {"fleet", "perf"}:
            pytest.fail(f"{rel} imports {mod}: fleet and perf must stay independent")
        assert _rank(target) <= own_rank, f"{rel} (layer {own}) imports higher layer {mod}"


def test_rank_table_knows_the_packages() -> None:
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and not p.name.startswith("_")}
    assert {"catalog", "fleet", "perf", "sched", "sim"} <= packages
