"""Load a fleet YAML file, validate it and resolve every node group's chip in the catalogue.

Every problem becomes ONE :class:`SuanliError` naming the file, the site / node group, the
field and the problem, e.g. ``fleet.yaml: site 'beijing': node group 'h800-pod': nodes:
must be >= 1 (got -2)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from suanli.catalog.loader import Catalog, format_validation_error, read_yaml
from suanli.catalog.schema import Chip
from suanli.errors import SuanliError
from suanli.fleet.schema import Fleet, NodeGroup, Site

DEMO_FLEET = "demo_fleet.yaml"


def demo_fleet_path() -> Path:
    """Path of the bundled demo fleet (four sites in national hub regions)."""
    return Path(str(resources.files("suanli.fleet") / "data" / DEMO_FLEET))


def group_label(group: NodeGroup, index: int) -> str:
    """How a node group is named in messages and tables: its name, else ``#n (chip)``."""
    return group.name or f"#{index + 1} ({group.chip})"


@dataclass(frozen=True)
class ResolvedGroup:
    """One node group with its site and resolved catalogue chip."""

    site_index: int
    group_index: int
    site: Site
    group: NodeGroup
    chip: Chip

    @property
    def label(self) -> str:
        return group_label(self.group, self.group_index)

    @property
    def accelerators(self) -> int:
        return self.group.accelerators


@dataclass(frozen=True)
class ResolvedFleet:
    """A validated fleet plus the catalogue :class:`Chip` of every node group.

    ``chips[(site_index, group_index)]`` is the chip of ``fleet.sites[s].node_groups[g]``.
    """

    fleet: Fleet
    chips: dict[tuple[int, int], Chip]
    source: Path | None = None

    def chip_of(self, site_index: int, group_index: int) -> Chip:
        return self.chips[(site_index, group_index)]

    def groups(self) -> Iterator[ResolvedGroup]:
        """Every node group in file order, with its site and chip."""
        for si, site in enumerate(self.fleet.sites):
            for gi, group in enumerate(site.node_groups):
                yield ResolvedGroup(si, gi, site, group, self.chips[(si, gi)])

    @property
    def accelerators(self) -> int:
        return self.fleet.accelerators

    def scaled(self, factor: float) -> ResolvedFleet:
        """Node counts multiplied by ``factor`` (see :meth:`Fleet.scaled`); chips unchanged."""
        return ResolvedFleet(self.fleet.scaled(factor), dict(self.chips), self.source)


def _name_at(data: Any, key: str, index: int) -> str | None:
    try:
        item = data[key][index]
    except (KeyError, IndexError, TypeError):
        return None
    if isinstance(item, dict) and isinstance(item.get("name"), str) and item["name"]:
        return item["name"]
    return None


def locate(loc: tuple[Any, ...], data: Any) -> tuple[str | None, str | None]:
    """Map a pydantic error location to (where, field) using the names in the raw data.

    ``("sites", 1, "node_groups", 0, "nodes")`` -> ``("site 'beijing': node group
    'h800-pod'", "nodes")``.
    """
    parts = list(loc)
    where: list[str] = []
    if len(parts) >= 2 and parts[0] == "sites" and isinstance(parts[1], int):
        si = parts[1]
        site_name = _name_at(data, "sites", si)
        where.append(f"site '{site_name}'" if site_name else f"site #{si + 1}")
        parts = parts[2:]
        site_data = data["sites"][si] if _is_list_item(data, si) else {}
        if len(parts) >= 2 and parts[0] == "node_groups" and isinstance(parts[1], int):
            gi = parts[1]
            group_name = _name_at(site_data, "node_groups", gi)
            where.append(f"node group '{group_name}'" if group_name else f"node group #{gi + 1}")
            parts = parts[2:]
    field = ".".join(str(p) for p in parts) or None
    return (": ".join(where) or None), field


def _is_list_item(data: Any, index: int) -> bool:
    try:
        return isinstance(data["sites"][index], dict)
    except (KeyError, IndexError, TypeError):
        return False


def _problem(exc: ValidationError) -> str:
    """The problem text of the first error, with the offending value when that helps."""
    _, msg = format_validation_error(exc)
    err = exc.errors()[0]
    kind = err["type"]
    if kind in {"greater_than_equal", "greater_than", "less_than_equal", "less_than"}:
        ops = {
            "greater_than_equal": ">=",
            "greater_than": ">",
            "less_than_equal": "<=",
            "less_than": "<",
        }
        bound = next(iter((err.get("ctx") or {}).values()), "?")
        msg = f"must be {ops[kind]} {bound} (got {err['input']!r})"
        if err["loc"] and err["loc"][-1] == "pue":
            msg += "; PUE is facility power / IT power, so it is never below 1"
    elif kind in {"int_parsing", "int_from_float", "float_parsing", "int_type", "float_type"}:
        msg = f"{msg} (got {err['input']!r})"
    elif kind == "too_short" and err["loc"]:
        msg = f"must not be empty ({err['loc'][-1]} needs at least one entry)"
    return msg


def parse_fleet(data: Any, file: str | Path | None = None) -> Fleet:
    """Validate raw YAML data into a :class:`Fleet`; errors name file, site, group, field."""
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise SuanliError(
            f"expected a mapping with 'name:' and a 'sites:' list, got {got}", file=file
        )
    try:
        return Fleet.model_validate(data)
    except ValidationError as exc:
        loc = tuple(exc.errors()[0]["loc"])
        where, field = locate(loc, data)
        raise SuanliError(_problem(exc), file=file, where=where, field=field) from None


def resolve_fleet(fleet: Fleet, catalog: Catalog, file: str | Path | None = None) -> ResolvedFleet:
    """Resolve every node group's ``chip`` in ``catalog``; unknown chips name site and group."""
    chips: dict[tuple[int, int], Chip] = {}
    for si, site in enumerate(fleet.sites):
        for gi, group in enumerate(site.node_groups):
            try:
                chips[(si, gi)] = catalog.get(group.chip)
            except SuanliError as exc:
                raise SuanliError(
                    exc.problem,
                    file=file,
                    where=f"site '{site.name}': node group '{group_label(group, gi)}'",
                    field="chip",
                ) from None
    return ResolvedFleet(fleet, chips, Path(file) if file is not None else None)


def load_fleet(path: str | Path, catalog: Catalog) -> ResolvedFleet:
    """Read, validate and resolve a fleet YAML file."""
    p = Path(path)
    data = read_yaml(p)
    fleet = parse_fleet(data, p)
    return resolve_fleet(fleet, catalog, p)
