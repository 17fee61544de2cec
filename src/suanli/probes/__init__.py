"""Device probes: one module per vendor tool behind :class:`suanli.probes.base.Probe`.

``probe_all()`` runs every registered probe; an absent tool is ``not_present``, never an
exception. Add a vendor with a ``Probe`` subclass and :func:`register_probe`.
"""

from __future__ import annotations

from suanli.catalog import Catalog
from suanli.probes.amd import AmdProbe
from suanli.probes.ascend import AscendProbe
from suanli.probes.base import (
    Device,
    Parsed,
    Probe,
    ProbeResult,
    Runner,
    Unparseable,
    match_chip,
    run_tool,
)
from suanli.probes.cambricon import CambriconProbe
from suanli.probes.hygon import HygonProbe
from suanli.probes.iluvatar import IluvatarProbe
from suanli.probes.kunlunxin import KunlunxinProbe
from suanli.probes.metax import MetaxProbe
from suanli.probes.mthreads import MthreadsProbe
from suanli.probes.nvidia import NvidiaProbe
from suanli.probes.undocumented import BirenProbe, EnflameProbe

_PROBES: dict[str, Probe] = {}


def register_probe(probe: Probe) -> None:
    """Make a probe part of ``probe_all`` / ``suanli check`` (replaces one of the same name)."""
    _PROBES[probe.name] = probe


for _p in (
    NvidiaProbe(),
    AmdProbe(),
    HygonProbe(),
    MthreadsProbe(),
    AscendProbe(),
    CambriconProbe(),
    KunlunxinProbe(),
    IluvatarProbe(),
    MetaxProbe(),
    EnflameProbe(),
    BirenProbe(),
):
    register_probe(_p)


def probes() -> list[Probe]:
    return list(_PROBES.values())


def get_probe(name: str) -> Probe:
    return _PROBES[name]


def probe_all(catalog: Catalog | None = None, runner: Runner = run_tool) -> list[ProbeResult]:
    """Run every probe on this machine; never raises."""
    return [p.probe(catalog, runner) for p in _PROBES.values()]


__all__ = [
    "Device",
    "Parsed",
    "Probe",
    "ProbeResult",
    "Runner",
    "Unparseable",
    "get_probe",
    "match_chip",
    "probe_all",
    "probes",
    "register_probe",
    "run_tool",
]
