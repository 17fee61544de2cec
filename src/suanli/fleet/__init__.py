"""Fleet description and compute metering."""

from suanli.fleet.schema import Fleet, NodeGroup, Site

__all__ = ["Fleet", "NodeGroup", "Site"]
