"""Fleet description and compute metering."""

from suanli.fleet.loader import (
    ResolvedFleet,
    ResolvedGroup,
    demo_fleet_path,
    load_fleet,
    parse_fleet,
    resolve_fleet,
)
from suanli.fleet.schema import Fleet, NodeGroup, Site

__all__ = [
    "Fleet",
    "NodeGroup",
    "ResolvedFleet",
    "ResolvedGroup",
    "Site",
    "demo_fleet_path",
    "load_fleet",
    "parse_fleet",
    "resolve_fleet",
]
