"""Fleet description: sites (data centres) -> node groups -> accelerators.

Units are in the field names: ``*_gbs`` = GB/s (bytes), ``*_gbps`` = Gbit/s (network
convention), prices in CNY, carbon in kg CO2 per kWh.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class NodeGroup(BaseModel):
    """Identical nodes: ``nodes`` x ``chips_per_node`` accelerators of one chip type."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    chip: str  # id, name or alias in the catalogue
    chips_per_node: int = Field(ge=1, le=64)
    nodes: int = Field(ge=1)
    # Intra-node chip-to-chip bandwidth per device; default: the chip's catalogue figure.
    intra_node_gbs: float | None = Field(default=None, gt=0)
    # Scale-out network bandwidth per node (sum of NICs), Gbit/s.
    inter_node_gbps: float = Field(default=200.0, gt=0)
    inter_node_latency_us: float = Field(default=5.0, ge=0)

    @property
    def accelerators(self) -> int:
        return self.chips_per_node * self.nodes


class Site(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    region: str | None = None  # e.g. a national hub node: "Ningxia (national hub)"
    pue: float = Field(default=1.3, ge=1.0, le=3.0)
    electricity_price_cny_kwh: float = Field(default=0.5, ge=0)
    carbon_kg_per_kwh: float = Field(default=0.55, ge=0)
    # WAN bandwidth used to price moving a job's data into this site.
    wan_gbps: float = Field(default=100.0, gt=0)
    node_groups: list[NodeGroup] = Field(min_length=1)

    @property
    def accelerators(self) -> int:
        return sum(g.accelerators for g in self.node_groups)


class Fleet(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "fleet"
    sites: list[Site] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_sites(self) -> Fleet:
        names = [s.name for s in self.sites]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"site names must be unique; repeated: {', '.join(dupes)}")
        return self

    @property
    def accelerators(self) -> int:
        return sum(s.accelerators for s in self.sites)

    def scaled(self, factor: float) -> Fleet:
        """The same fleet with every node count multiplied by ``factor`` (>= 1 node each)."""
        data = self.model_dump()
        for site in data["sites"]:
            for g in site["node_groups"]:
                g["nodes"] = max(1, round(g["nodes"] * factor))
        return Fleet.model_validate(data)
