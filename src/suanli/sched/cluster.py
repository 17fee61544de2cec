"""The scheduler's view of a fleet: pools of identical accelerators.

A *pool* is all accelerators of one chip type in one site (node groups of the same chip in a
site are merged), made of nodes of devices. A gang always runs inside one pool; where inside
(which nodes and devices) is decided by :mod:`suanli.sched.nodes`; see docs/scheduling.md.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from suanli.catalog.schema import Chip
from suanli.errors import SuanliError
from suanli.fleet.schema import Fleet, Site
from suanli.sched.job import MILLI

# Power assumed for a chip whose TDP the catalogue does not know (W); reported as an assumption.
DEFAULT_POWER_W = 350.0


class ChipResolver(Protocol):
    def get(self, name: str) -> Chip: ...


@dataclass(frozen=True)
class Pool:
    index: int
    site: str
    region: str | None
    chip_type: str  # catalogue id, or an opaque type name (no catalogue entry)
    chip: Chip | None  # None for opaque types
    devices: int
    pue: float
    price_cny_kwh: float
    carbon_kg_kwh: float
    wan_gbps: float
    # per device, from the catalogue TDP; when unknown DEFAULT_POWER_W is used only to rank
    # placements (min-energy), never in reported energy figures (see power_known)
    power_w: float
    power_known: bool
    nodes: tuple[int, ...] = ()  # devices per node (node groups merged), () = not known
    # node names parallel to ``nodes`` (e.g. from a trace's node list); () = "<label>/<i>"
    node_ids: tuple[str, ...] = ()

    @property
    def node_sizes(self) -> tuple[int, ...]:
        return self.nodes or (self.devices,)

    @property
    def label(self) -> str:
        return f"{self.site}/{self.chip_type}"


@dataclass
class ClusterSpec:
    """Static description of the pools a scheduler places jobs on."""

    pools: list[Pool]
    fleet_name: str = "fleet"

    def __post_init__(self) -> None:
        self.capacity_milli = np.array([p.devices * MILLI for p in self.pools], dtype=np.int64)
        self.sites = sorted({p.site for p in self.pools}, key=[p.site for p in self.pools].index)
        self.chip_types = sorted(
            {p.chip_type for p in self.pools}, key=[p.chip_type for p in self.pools].index
        )
        self.pool_type = np.array([self.chip_types.index(p.chip_type) for p in self.pools])
        self.pool_site = np.array([self.sites.index(p.site) for p in self.pools])
        self.power_kw = np.array([p.power_w / 1000.0 for p in self.pools])
        self.pue = np.array([p.pue for p in self.pools])
        self.price = np.array([p.price_cny_kwh for p in self.pools])
        self.carbon = np.array([p.carbon_kg_kwh for p in self.pools])
        self.wan_gbps = np.array([p.wan_gbps for p in self.pools])

    @property
    def n_pools(self) -> int:
        return len(self.pools)

    @property
    def devices(self) -> int:
        return int(sum(p.devices for p in self.pools))

    def node_devices(self, pool: int) -> tuple[int, ...]:
        """Devices per node of a pool (one node of all its devices if not known)."""
        return self.pools[pool].node_sizes

    def node_list(self, pool: int) -> list[tuple[str, int]]:
        """``(node id, devices)`` of every node of a pool: the plain data the scheduler's
        device table is built from (names from ``Pool.node_ids`` or ``<label>/<i>``)."""
        pl = self.pools[pool]
        sizes = pl.node_sizes
        if pl.node_ids and len(pl.node_ids) != len(sizes):
            raise SuanliError(f"pool {pl.label}: {len(pl.node_ids)} node ids for "
                              f"{len(sizes)} nodes")
        return [(pl.node_ids[i] if pl.node_ids else f"{pl.label}/{i}", n)
                for i, n in enumerate(sizes)]

    def chip_of_type(self, chip_type: str) -> Chip | None:
        for p in self.pools:
            if p.chip_type == chip_type:
                return p.chip
        return None

    @classmethod
    def from_fleet(
        cls,
        fleet: Fleet,
        catalog: ChipResolver | None,
        opaque: set[str] | frozenset[str] | None = None,
    ) -> ClusterSpec:
        """Pools of ``fleet``. Chip names resolve through ``catalog``; names in ``opaque`` (or
        every unresolvable name when ``opaque`` is ``{"*"}``) become opaque chip types."""
        pools: list[Pool] = []
        seen: dict[tuple[str, str], int] = {}
        for site in fleet.sites:
            for gi, group in enumerate(site.node_groups):
                chip = _resolve(group.chip, catalog, opaque, site, gi)
                ctype = chip.id if chip is not None else group.chip
                key = (site.name, ctype)
                if key in seen:
                    old = pools[seen[key]]
                    pools[seen[key]] = _replace_devices(
                        old, old.devices + group.accelerators,
                        old.nodes + (group.chips_per_node,) * group.nodes)
                    continue
                seen[key] = len(pools)
                tdp = chip.tdp_w.value if chip is not None else None
                pools.append(
                    Pool(
                        index=len(pools),
                        site=site.name,
                        region=site.region,
                        chip_type=ctype,
                        chip=chip,
                        devices=group.accelerators,
                        pue=site.pue,
                        price_cny_kwh=site.electricity_price_cny_kwh,
                        carbon_kg_kwh=site.carbon_kg_per_kwh,
                        wan_gbps=site.wan_gbps,
                        power_w=tdp if tdp else DEFAULT_POWER_W,
                        power_known=bool(tdp),
                        nodes=(group.chips_per_node,) * group.nodes,
                    )
                )
        return cls(pools=pools, fleet_name=fleet.name)


def _replace_devices(pool: Pool, devices: int, nodes: tuple[int, ...]) -> Pool:
    return replace(pool, devices=devices, nodes=nodes)


def _resolve(
    name: str,
    catalog: ChipResolver | None,
    opaque: set[str] | frozenset[str] | None,
    site: Site,
    gi: int,
) -> Chip | None:
    if opaque and name in opaque:
        return None
    if catalog is None:
        return None
    try:
        return catalog.get(name)
    except SuanliError as exc:
        if opaque and "*" in opaque:
            return None
        raise SuanliError(
            exc.problem, where=f"site '{site.name}' node group #{gi + 1}", field="chip"
        ) from None


@dataclass
class ClusterState:
    """What a driver tells the scheduler about the cluster right now.

    ``free_milli`` is the free capacity per pool in milli-accelerators. A simulator passes the
    exact figure; a live service passes what its executors report (e.g. minus failed devices).
    """

    free_milli: np.ndarray
