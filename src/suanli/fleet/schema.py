"""Fleet description: sites (data centres) -> node groups -> accelerators.

Units are in the field names: ``*_gbs`` = GB/s (bytes), ``*_gbps`` = Gbit/s (network
convention), prices in CNY, carbon in kg CO2 per kWh.

Bandwidth fields also accept a string with an explicit unit, converted to the field's unit:
``"400 Gbps"``, ``"400 Gb/s"``, ``"50 GB/s"`` (bytes: = 400 Gbit/s), ``"1.6 Tbps"``,
``"900 GB/s"``. ``b`` is a bit and ``B`` a byte; an all-capitals ``"GBPS"`` is ambiguous and
rejected, as is any unit that is not a data rate.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, field_validator

from suanli.errors import SuanliError

# --- bandwidth strings with units ---------------------------------------------------

_PREFIX = {"": 1e0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12, "p": 1e15}
_RATE_RE = re.compile(
    r"^\s*(?P<num>[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*"
    r"(?P<prefix>[kKmMgGtTpP]?)(?P<size>bits?|bytes?|Bytes?|[bB])"
    r"(?P<per>/s|/sec|ps)\s*$"
)
_BASE_RE = re.compile(r"^\s*[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?\s*$")

ComputeClassName = Literal["general", "intelligent", "supercomputing"]

# Counts are strict integers (YAML `true` is not 1) with sane upper bounds: a typo such as
# `nodes: 10**30` must be an error, not a 31-digit accelerator count. Every float is finite.
MAX_NODES = 100_000
MAX_CHIPS_PER_NODE = 64
MAX_GBPS = 1e6  # 1 Pbit/s per node or site link
MAX_GBS = 1e5  # 100 TB/s per device


def parse_rate(value: Any, unit: Literal["gbps", "gbs"]) -> Any:
    """Convert a data-rate string to Gbit/s (``unit="gbps"``) or GB/s (``unit="gbs"``).

    Numbers pass through unchanged (they are in the field's unit); None passes through; a
    bool or an unparseable string raises ValueError with a message that names the accepted
    forms. Used as a ``mode="before"`` validator, so pydantic range checks still apply.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    if isinstance(value, int | float):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a number or a string like '400 Gbps', got {value!r}")
    if _BASE_RE.match(value):
        return float(value)
    m = _RATE_RE.match(value)
    field_unit = "Gbit/s" if unit == "gbps" else "GB/s"
    hint = (
        f"expected a number in {field_unit} or a rate with a unit such as '400 Gbps', "
        f"'400 Gb/s', '50 GB/s', '1.6 Tbps' (b = bit, B = byte)"
    )
    if m is None:
        raise ValueError(f"cannot read {value!r} as a data rate; {hint}")
    size = m["size"]
    is_byte = size.lower().startswith("byte") or size == "B"
    bits_per_s = float(m["num"]) * _PREFIX[m["prefix"].lower()] * (8.0 if is_byte else 1.0)
    out = bits_per_s / 1e9 if unit == "gbps" else bits_per_s / 8e9
    if not math.isfinite(out):
        raise ValueError(f"{value!r} is not a finite rate")
    return out


def _check_ambiguous(value: Any) -> None:
    if isinstance(value, str) and re.search(r"[kKmMgGtTpP]?BPS\s*$", value):
        raise ValueError(
            f"{value!r} is ambiguous (bits or bytes?); write 'Gbps'/'Gb/s' for bits or "
            "'GB/s' for bytes"
        )


class NodeGroup(BaseModel):
    """Identical nodes: ``nodes`` x ``chips_per_node`` accelerators of one chip type.

    ``chips_per_node`` counts catalogue parts (cards/modules) as the catalogue describes
    them; a dual-die part (``devices_per_part: 2``) still counts once.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    name: str | None = None
    chip: str = Field(min_length=1)  # id, name or alias in the catalogue
    chips_per_node: StrictInt = Field(ge=1, le=MAX_CHIPS_PER_NODE)
    nodes: StrictInt = Field(ge=1, le=MAX_NODES)
    # Intra-node chip-to-chip bandwidth per device; default: the chip's catalogue figure.
    intra_node_gbs: StrictFloat | None = Field(default=None, gt=0, le=MAX_GBS)
    # Scale-out network bandwidth per node (sum of NICs), Gbit/s.
    inter_node_gbps: StrictFloat = Field(default=200.0, gt=0, le=MAX_GBPS)
    inter_node_latency_us: StrictFloat = Field(default=5.0, ge=0, le=1e6)
    # Metering: force the compute class of this group (default: the classification rule).
    compute_class: ComputeClassName | None = None

    @field_validator("nodes", "chips_per_node", mode="before")
    @classmethod
    def _count(cls, v: Any) -> Any:
        if isinstance(v, bool):
            raise ValueError(f"expected a whole number, got {str(v).lower()} (a yes/no value "
                             "is not a count)")
        if isinstance(v, float):
            raise ValueError(f"expected a whole number, got {v:g}")
        return v

    @field_validator("inter_node_gbps", mode="before")
    @classmethod
    def _gbps(cls, v: Any) -> Any:
        _check_ambiguous(v)
        return parse_rate(v, "gbps")

    @field_validator("intra_node_gbs", mode="before")
    @classmethod
    def _gbs(cls, v: Any) -> Any:
        _check_ambiguous(v)
        return parse_rate(v, "gbs")

    @property
    def accelerators(self) -> int:
        return self.chips_per_node * self.nodes


class Site(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    name: str = Field(min_length=1)
    region: str | None = None  # e.g. a national hub node: "Ningxia (national hub)"
    pue: StrictFloat = Field(default=1.3, ge=1.0, le=3.0)
    electricity_price_cny_kwh: StrictFloat = Field(default=0.5, ge=0, le=100)
    carbon_kg_per_kwh: StrictFloat = Field(default=0.55, ge=0, le=5)
    # WAN bandwidth used to price moving a job's data into this site.
    wan_gbps: StrictFloat = Field(default=100.0, gt=0, le=MAX_GBPS)
    node_groups: list[NodeGroup] = Field(min_length=1)

    @field_validator("wan_gbps", mode="before")
    @classmethod
    def _wan(cls, v: Any) -> Any:
        _check_ambiguous(v)
        return parse_rate(v, "gbps")

    @field_validator("node_groups")
    @classmethod
    def _unique_groups(cls, groups: list[NodeGroup]) -> list[NodeGroup]:
        names = [g.name for g in groups if g.name]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"node group names must be unique; repeated: {', '.join(dupes)}")
        return groups

    @property
    def accelerators(self) -> int:
        return sum(g.accelerators for g in self.node_groups)


class Fleet(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    name: str = "fleet"
    sites: list[Site] = Field(min_length=1)

    @field_validator("sites")
    @classmethod
    def _unique_sites(cls, sites: list[Site]) -> list[Site]:
        names = [s.name for s in sites]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"site names must be unique; repeated: {', '.join(dupes)}")
        return sites

    @property
    def accelerators(self) -> int:
        return sum(s.accelerators for s in self.sites)

    def scaled(self, factor: float) -> Fleet:
        """The same fleet with every node count multiplied by ``factor`` (>= 1 node each)."""
        data = self.model_dump()
        for site in data["sites"]:
            for g in site["node_groups"]:
                g["nodes"] = max(1, round(g["nodes"] * factor))
                if g["nodes"] > MAX_NODES:
                    raise SuanliError(f"scaling by {factor:g} gives {g['nodes']:,} nodes in a "
                                      f"group (at most {MAX_NODES:,})", field="--scale-fleet")
        return Fleet.model_validate(data)
