"""Read a plan YAML (+ its price file and existing fleet) into resolved, checked objects.

Every problem is one :class:`SuanliError` naming the file, the entry (workload, candidate,
site, price) and the field.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from suanli.catalog.loader import Catalog, format_validation_error, read_yaml
from suanli.catalog.schema import Chip
from suanli.errors import SuanliError
from suanli.fleet.loader import ResolvedFleet, load_fleet
from suanli.plan.schema import Candidate, PlanInput, PriceEntry, PriceFile

EXAMPLE_PLAN = "example_plan.yaml"


def example_plan_path() -> Path:
    """The bundled example plan (works with no arguments: ``suanli plan``)."""
    return Path(str(resources.files("suanli.plan") / "data" / EXAMPLE_PLAN))


_LISTS = {"workloads": "workload", "candidates": "candidate", "sites": "site",
          "prices": "price"}


def _locate(loc: tuple[Any, ...], data: Any) -> tuple[str | None, str | None]:
    parts = [p for p in loc]
    where = None
    if len(parts) >= 2 and parts[0] in _LISTS and isinstance(parts[1], int):
        item = None
        with contextlib.suppress(KeyError, IndexError, TypeError):
            item = data[parts[0]][parts[1]]
        label = None
        if isinstance(item, dict):
            label = item.get("name") or item.get("chip")
        where = f"{_LISTS[parts[0]]} '{label}'" if label else f"{_LISTS[parts[0]]} #{parts[1] + 1}"
        parts = parts[2:]
        # discriminated unions put the tag in the location: workloads.0.train.tokens
        if parts and parts[0] in ("train", "infer", "hpc"):
            parts = parts[1:]
    return where, ".".join(str(p) for p in parts) or None


def validate(model: type[BaseModel], data: Any, file: str | Path | None) -> Any:
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise SuanliError(f"expected a mapping, got {got}", file=file)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where, fld = _locate(tuple(err["loc"]), data)
        _, msg = format_validation_error(exc)
        if err["type"] in ("greater_than", "greater_than_equal", "less_than_equal",
                           "less_than", "float_parsing", "int_parsing"):
            msg = f"{msg} (got {err.get('input')!r})"
        m = re.match(r"^([A-Za-z0-9_.]+): (.+)$", str(err["msg"]).removeprefix("Value error, "))
        if err["type"] == "value_error" and m:
            fld = f"{fld}.{m.group(1)}" if fld else m.group(1)
        return _raise(msg, file, where, fld)


def _raise(msg: str, file: str | Path | None, where: str | None, fld: str | None) -> Any:
    raise SuanliError(msg, file=file, where=where, field=fld)


@dataclass
class Priced:
    """A candidate with its chip and a price (from the candidate or the price file)."""

    cand: Candidate
    chip: Chip
    capex: float  # CNY per node (0 when rented)
    rent_hour: float  # CNY per node-hour (0 when bought)
    price_source: str
    price_confidence: str
    node_power_kw: float  # IT power per node at full load


@dataclass
class LoadedPlan:
    plan: PlanInput
    file: Path | None
    candidates: list[Priced]
    existing: ResolvedFleet | None
    prices: list[PriceEntry] = field(default_factory=list)
    price_file: Path | None = None


def load_prices(path: Path) -> list[PriceEntry]:
    pf: PriceFile = validate(PriceFile, read_yaml(path), path)
    return pf.prices


def price_for(chip: Chip, cpn: int, prices: list[PriceEntry], catalog: Catalog
              ) -> PriceEntry | None:
    for p in prices:
        try:
            pid = catalog.get(p.chip).id
        except SuanliError:
            continue
        if pid == chip.id and p.chips_per_node == cpn:
            return p
    return None


def node_power_kw(chip: Chip, cpn: int, host_kw: float, explicit: float | None,
                  file: Path | None, where: str) -> float:
    if explicit is not None:
        return explicit
    tdp = chip.tdp_w.value
    if tdp is None:
        raise SuanliError(f"TDP of {chip.name} ({chip.id}) is unknown in the catalogue; give "
                          "node_power_kw", file=file, where=where, field="node_power_kw")
    return cpn * tdp / 1000.0 + host_kw


def price_candidate(cand: Candidate, chip: Chip, prices: list[PriceEntry], catalog: Catalog,
                    file: Path | None, price_file: Path | None) -> Priced:
    where = f"candidate '{cand.name}'"
    if cand.capex_cny_per_node is not None or cand.rent_cny_per_node_hour is not None:
        capex, rent = cand.capex_cny_per_node or 0.0, cand.rent_cny_per_node_hour or 0.0
        src, conf = f"inline in {file.name if file else 'plan'}", "user"
    else:
        p = price_for(chip, cand.chips_per_node, prices, catalog)
        if p is None:
            pf = f" or to {price_file.name}" if price_file else ""
            raise SuanliError(
                f"no price for {chip.name} ({chip.id}) in a {cand.chips_per_node}-chip node: "
                f"add capex_cny_per_node or rent_cny_per_node_hour to the candidate{pf} "
                "(prices are never assumed)", file=file, where=where, field="chip")
        capex, rent = p.capex_cny_per_node or 0.0, p.rent_cny_per_node_hour or 0.0
        src, conf = p.source, p.confidence
    pw = node_power_kw(chip, cand.chips_per_node, cand.host_kw, cand.node_power_kw, file, where)
    return Priced(cand, chip, capex, rent, src, conf, pw)


def resolve_plan(plan: PlanInput, catalog: Catalog, file: Path | None = None) -> LoadedPlan:
    base = file.parent if file else Path.cwd()
    prices: list[PriceEntry] = []
    price_file = None
    if plan.prices:
        price_file = (base / plan.prices).resolve()
        prices = load_prices(price_file)
    site_names = {s.name for s in plan.sites}
    priced = []
    for c in plan.candidates:
        try:
            chip = catalog.get(c.chip)
        except SuanliError as exc:
            raise SuanliError(exc.problem, file=file, where=f"candidate '{c.name}'",
                              field="chip") from None
        for s in c.sites or []:
            if s not in site_names:
                raise SuanliError(f"unknown site '{s}' (sites: {', '.join(sorted(site_names))})",
                                  file=file, where=f"candidate '{c.name}'", field="sites")
        priced.append(price_candidate(c, chip, prices, catalog, file, price_file))
    for w in plan.workloads:
        model = getattr(w, "model", None)
        if model is not None:
            from suanli.perf.models import resolve_model
            try:
                resolve_model(model)
            except SuanliError as exc:
                raise SuanliError(exc.problem, file=file, where=f"workload '{w.name}'",
                                  field="model") from None
    for name in [*plan.allow, *plan.deny]:
        try:
            catalog.get(name)
        except SuanliError as exc:
            fld = "allow" if name in plan.allow else "deny"
            raise SuanliError(exc.problem, file=file, field=fld) from None
    existing = None
    if plan.existing_fleet:
        existing = load_fleet((base / plan.existing_fleet).resolve(), catalog)
        for fs in existing.fleet.sites:
            if fs.name not in site_names:
                raise SuanliError(
                    f"existing fleet site '{fs.name}' is not in sites (add it to sites:)",
                    file=file, field="existing_fleet")
    return LoadedPlan(plan, file, priced, existing, prices, price_file)


def load_plan(path: str | Path, catalog: Catalog) -> LoadedPlan:
    p = Path(path)
    plan: PlanInput = validate(PlanInput, read_yaml(p), p)
    return resolve_plan(plan, catalog, p)
