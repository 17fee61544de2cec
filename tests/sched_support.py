"""Shared builders for the scheduler / simulator tests: a small catalogue of made-up chips and
fleets, independent of the bundled catalogue (which other engineers are still filling in)."""

from __future__ import annotations

from typing import Any

from suanli.catalog.loader import Catalog
from suanli.catalog.schema import PRECISIONS, Chip
from suanli.fleet.schema import Fleet
from suanli.sched.cluster import ClusterSpec


def make_chip(
    cid: str,
    fp16: float,
    *,
    fp64: float | None = 10.0,
    mem_gb: float = 64.0,
    bw: float = 2000.0,
    tdp: float | None = 400.0,
    compat: str = "native",
) -> Chip:
    peak: dict[str, Any] = {}
    for p in PRECISIONS:
        peak[p.value] = {"value": fp16, "source": "test"}
    peak["fp8"] = {"unsupported": True}
    peak["fp32"] = {"value": fp16 / 8, "source": "test"}
    if fp64 is None:
        peak["fp64"] = {"unsupported": True}
        peak["fp64_tensor"] = {"unsupported": True}
    else:
        peak["fp64"] = {"value": fp64, "source": "test"}
        peak["fp64_tensor"] = {"value": fp64, "source": "test"}
    return Chip.model_validate(
        {
            "id": cid,
            "name": cid.upper(),
            "vendor": "Test",
            "sources": {"test": {"ref": "made up for tests"}},
            "memory": {
                "size_gb": {"value": mem_gb, "source": "test"},
                "bandwidth_gbs": {"value": bw, "source": "test"},
            },
            "peak": peak,
            "tdp_w": {"value": tdp, "source": "test"} if tdp else {"note": "unknown"},
            "interconnect": {"bandwidth_gbs": {"value": 400, "source": "test"}},
            "stack": {"name": "CUDA" if compat == "native" else "X", "cuda_compat": compat},
            "export_control": {"status": "n/a"},
        }
    )


def make_catalog() -> Catalog:
    return Catalog(
        [
            make_chip("fast_gpu", 900.0, mem_gb=80, tdp=700),
            make_chip("mid_npu", 300.0, fp64=None, mem_gb=64, tdp=350, compat="port"),
            make_chip("slow_dcu", 150.0, fp64=20.0, mem_gb=32, tdp=300, compat="source"),
        ]
    )


def make_fleet(scale: int = 1) -> Fleet:
    return Fleet.model_validate(
        {
            "name": "test-fleet",
            "sites": [
                {
                    "name": "east",
                    "pue": 1.4,
                    "electricity_price_cny_kwh": 0.8,
                    "carbon_kg_per_kwh": 0.6,
                    "wan_gbps": 10,
                    "node_groups": [
                        {"chip": "fast_gpu", "chips_per_node": 8, "nodes": 1 * scale},
                        {"chip": "slow_dcu", "chips_per_node": 8, "nodes": 1 * scale},
                    ],
                },
                {
                    "name": "west",
                    "pue": 1.15,
                    "electricity_price_cny_kwh": 0.3,
                    "carbon_kg_per_kwh": 0.3,
                    "wan_gbps": 100,
                    "node_groups": [
                        {"chip": "mid_npu", "chips_per_node": 8, "nodes": 2 * scale},
                        {"chip": "fast_gpu", "chips_per_node": 4, "nodes": 1 * scale},
                    ],
                },
            ],
        }
    )


def make_cluster(scale: int = 1) -> ClusterSpec:
    return ClusterSpec.from_fleet(make_fleet(scale), make_catalog())

