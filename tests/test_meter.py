"""Metering: totals, class split, unknown figures, conversions, the CLI and the HTML report."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from suanli.catalog import Catalog, Chip
from suanli.cli import app, main
from suanli.errors import SuanliError
from suanli.fleet import Fleet, ResolvedFleet, resolve_fleet
from suanli.fleet.metering import (
    CLASSES,
    ClassRule,
    ComputeClass,
    Conversion,
    MeterOptions,
    Tally,
    meter,
)
from suanli.report.html import Report
from suanli.report.meter import meter_report

# --- a small test catalogue (test values, not real chips) -----------------------------


def chip_entry(cid: str, **peaks: float | None) -> dict[str, Any]:
    tdp = peaks.pop("tdp", 300.0)
    mem = peaks.pop("mem", 64.0)
    unsupported = peaks.pop("unsupported", ())

    def fig(v: float | None) -> dict[str, Any]:
        return {"value": v, "source": "t"} if v is not None else {"value": None, "note": "test"}

    peak: dict[str, Any] = {}
    for p in ("fp64", "fp64_tensor", "fp32", "tf32", "bf16", "fp16", "fp8", "int8", "int4"):
        if p in unsupported:  # type: ignore[operator]
            peak[p] = {"unsupported": True, "note": "test"}
        else:
            peak[p] = fig(peaks.get(p))
    return {
        "id": cid,
        "name": cid.upper(),
        "vendor": f"Vendor-{cid}",
        "sources": {"t": {"ref": "test fixture", "confidence": "low"}},
        "memory": {"size_gb": fig(mem), "bandwidth_gbs": fig(1000.0)},
        "peak": peak,
        "tdp_w": fig(tdp),
        "interconnect": {"bandwidth_gbs": fig(100.0)},
        "stack": {"name": "TEST", "cuda_compat": "port"},
        "export_control": {"status": "n/a"},
    }


CHIPS = [
    # AI accelerator: FP16 10x FP32, weak FP64
    chip_entry("t_ai", fp64=1.0, fp32=10.0, fp16=100.0, bf16=100.0),
    # HPC part: FP64 0.5x FP16
    chip_entry("t_hpc", fp64=20.0, fp64_tensor=40.0, fp32=40.0, fp16=80.0),
    # CPU-like: no FP16
    chip_entry("t_cpu", fp64=2.0, fp32=4.0, unsupported=("fp16", "bf16", "fp8", "tf32")),
    # unknown FP16 and TDP: must be counted as unknown, never as zero
    chip_entry("t_unk", fp32=5.0, tdp=None, mem=None),
]
CHIP_IDS = [c["id"] for c in CHIPS]


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog(Chip.model_validate(c) for c in CHIPS)


CAT = Catalog(Chip.model_validate(c) for c in CHIPS)


def make_fleet(spec: list[list[tuple[str, int, int]]], pue: float = 1.25) -> ResolvedFleet:
    """spec: per site, a list of (chip, chips_per_node, nodes)."""
    data = {
        "name": "t",
        "sites": [
            {
                "name": f"s{i}",
                "pue": pue + 0.05 * i,
                "electricity_price_cny_kwh": 0.4 + 0.1 * i,
                "carbon_kg_per_kwh": 0.5 + 0.01 * i,
                "node_groups": [
                    {"name": f"g{j}", "chip": c, "chips_per_node": k, "nodes": n}
                    for j, (c, k, n) in enumerate(groups)
                ],
            }
            for i, groups in enumerate(spec)
        ],
    }
    return resolve_fleet(Fleet.model_validate(data), CAT)


# --- exact values -----------------------------------------------------------------------


def test_known_values() -> None:
    rf = make_fleet([[("t_ai", 8, 2)], [("t_hpc", 4, 1), ("t_cpu", 2, 5)]])
    r = meter(rf, MeterOptions(utilisation=0.5))
    t = r.total
    assert t.accelerators == 16 + 4 + 10
    # FP16: 16 x 100 + 4 x 80 = 1920 TFLOPS; t_cpu lacks FP16 (unsupported, not unknown)
    assert t.compute_pflops["fp16"].value == pytest.approx(1.92)
    assert t.compute_pflops["fp16"].unknown == 0
    assert t.compute_pflops["fp16"].unsupported == 10
    # classes: t_ai intelligent@FP16, t_hpc supercomputing@best FP64 (40), t_cpu general@FP32
    assert t.class_pflops["intelligent"].value == pytest.approx(1.6)
    assert t.class_pflops["supercomputing"].value == pytest.approx(0.16)
    assert t.class_pflops["general"].value == pytest.approx(0.04)
    assert t.class_accelerators == {"general": 10, "intelligent": 16, "supercomputing": 4}
    # FP32-equivalent with default factors 0.5 / 2
    assert t.fp32e_pflops.value == pytest.approx(0.04 + 1.6 * 0.5 + 0.16 * 2)
    assert t.intelligent_share == pytest.approx(0.8 / 1.16)
    assert t.intelligent_share_native == pytest.approx(1.6 / 1.8)
    # power: TDP x count x PUE (site 0 PUE 1.25, site 1 PUE 1.30)
    s0, s1 = r.sites
    assert s0.it_power_kw.value == pytest.approx(16 * 0.3)
    assert s0.facility_power_kw.value == pytest.approx(16 * 0.3 * 1.25)
    assert s1.facility_power_kw.value == pytest.approx(14 * 0.3 * 1.30)
    kwh0 = 16 * 0.3 * 1.25 * 0.5 * 8760
    assert s0.energy_mwh_year.value == pytest.approx(kwh0 / 1e3)
    assert s0.cost_cny_year.value == pytest.approx(kwh0 * 0.4)
    assert s0.carbon_t_year.value == pytest.approx(kwh0 * 0.5 / 1e3)
    assert t.memory_tb.value == pytest.approx(30 * 64 / 1e3)
    assert t.pue == pytest.approx(t.facility_power_kw.value / t.it_power_kw.value)


def test_unknown_figures_are_counted_not_zeroed() -> None:
    rf = make_fleet([[("t_ai", 8, 1), ("t_unk", 8, 3)]])
    r = meter(rf)
    t = r.total
    intel = t.class_pflops["intelligent"]
    assert intel.total == 32
    assert intel.unknown == 24
    assert intel.value == pytest.approx(0.8)  # only the known 8 x 100 TFLOPS
    assert intel.note() == "24 of 32 accelerators unknown"
    assert not intel.complete
    assert t.it_power_kw.unknown == 24
    assert t.memory_tb.unknown == 24
    assert t.fp32e_pflops.unknown == 24
    assert any("24 of 32 accelerators unknown" in n for n in r.notes())
    g = next(g for g in r.groups if g.chip_id == "t_unk")
    assert g.class_pflops is None and g.it_power_kw is None
    # in JSON the unknown count travels with the value
    d = r.as_dict()["total"]["class_pflops"]["intelligent"]
    assert d["unknown"] == 24 and d["accelerators"] == 32


def test_conversion_factors_change_fp32e_only() -> None:
    rf = make_fleet([[("t_ai", 8, 2), ("t_hpc", 4, 1), ("t_cpu", 2, 5)]])
    a = meter(rf).total
    b = meter(rf, MeterOptions(conversion=Conversion(fp16_to_fp32=0.25, fp64_to_fp32=1))).total
    assert a.class_pflops["intelligent"].value == b.class_pflops["intelligent"].value
    assert b.fp32e_pflops.value == pytest.approx(0.04 + 1.6 * 0.25 + 0.16 * 1)
    assert b.intelligent_share == pytest.approx(0.4 / b.fp32e_pflops.value)


def test_classification_rule() -> None:
    rule = ClassRule()
    cls = {cid: rule.classify(CAT.get(cid))[0] for cid in CHIP_IDS}
    assert cls == {
        "t_ai": ComputeClass.INTELLIGENT,
        "t_hpc": ComputeClass.SUPERCOMPUTING,
        "t_cpu": ComputeClass.GENERAL,
        "t_unk": ComputeClass.INTELLIGENT,
    }
    # the threshold is configurable: a stricter HPC rule moves t_hpc to intelligent
    assert ClassRule(hpc_min_fp64_ratio=0.9).classify(CAT.get("t_hpc"))[0] == "intelligent"
    # per-chip override and per-group explicit class win
    over = ClassRule.from_strings(["t_ai=general"])
    assert over.classify(CAT.get("t_ai"))[0] == ComputeClass.GENERAL
    assert rule.classify(CAT.get("t_ai"), "supercomputing")[0] == "supercomputing"


def test_group_compute_class_field() -> None:
    data = {"sites": [{"name": "s", "node_groups": [
        {"chip": "t_ai", "chips_per_node": 8, "nodes": 1, "compute_class": "general"}]}]}
    r = meter(resolve_fleet(Fleet.model_validate(data), CAT))
    assert r.total.class_pflops["general"].value == pytest.approx(0.08)  # at FP32
    assert r.groups[0].class_reason == "set in the fleet file (compute_class)"


@pytest.mark.parametrize(
    ("items", "words"),
    [
        (["fp16_to_fp32"], "expected KEY=VALUE"),
        (["fp8_to_fp32=0.25"], "unknown conversion"),
        (["fp16_to_fp32=half"], "not a number"),
        (["fp16_to_fp32=-1"], "positive"),
        (["fp64_to_fp32=nan"], "positive"),
    ],
)
def test_bad_conversion(items: list[str], words: str) -> None:
    with pytest.raises(SuanliError) as exc:
        Conversion.from_strings(items)
    assert words in exc.value.problem
    assert exc.value.field == "--conversion"


def test_conversion_parses() -> None:
    c = Conversion.from_strings(["fp16_to_fp32=0.25", "FP64_TO_FP32 = 4"])
    assert (c.fp16_to_fp32, c.fp64_to_fp32) == (0.25, 4.0)


def test_bad_options() -> None:
    with pytest.raises(SuanliError):
        MeterOptions(utilisation=1.5)
    with pytest.raises(SuanliError):
        ClassRule.from_strings(["t_ai=quantum"])


# --- invariants (hypothesis) ------------------------------------------------------------

group_st = st.tuples(st.sampled_from(CHIP_IDS), st.integers(1, 8), st.integers(1, 40))
fleet_st = st.lists(st.lists(group_st, min_size=1, max_size=3), min_size=1, max_size=4)


def tallies(sm: Any) -> dict[str, Tally]:
    out = {f"compute.{k}": v for k, v in sm.compute_pflops.items()}
    out |= {f"class.{k}": v for k, v in sm.class_pflops.items()}
    for name in ("fp32e_pflops", "memory_tb", "hbm_bw_tbs", "it_power_kw", "facility_power_kw",
                 "energy_mwh_year", "cost_cny_year", "carbon_t_year"):
        out[name] = getattr(sm, name)
    return out


@settings(max_examples=60, deadline=None)
@given(fleet_st)
def test_total_is_sum_of_sites(spec: list[list[tuple[str, int, int]]]) -> None:
    r = meter(make_fleet(spec))
    tot = tallies(r.total)
    per_site = [tallies(s) for s in r.sites]
    for key, t in tot.items():
        assert t.value == pytest.approx(sum(s[key].value for s in per_site), rel=1e-9, abs=1e-12)
        assert t.unknown == sum(s[key].unknown for s in per_site)
        assert t.total == sum(s[key].total for s in per_site)
    assert r.total.accelerators == sum(s.accelerators for s in r.sites)


@settings(max_examples=60, deadline=None)
@given(fleet_st, st.integers(2, 6))
def test_scaling_fleet_scales_compute(spec: list[list[tuple[str, int, int]]], k: int) -> None:
    rf = make_fleet(spec)
    a, b = meter(rf).total, meter(rf.scaled(k)).total
    ta, tb = tallies(a), tallies(b)
    for key in ta:
        assert tb[key].value == pytest.approx(k * ta[key].value, rel=1e-9, abs=1e-12)
        assert tb[key].unknown == k * ta[key].unknown
    if a.intelligent_share is not None:
        assert b.intelligent_share == pytest.approx(a.intelligent_share)


@settings(max_examples=60, deadline=None)
@given(fleet_st,
       st.floats(0.05, 4, allow_nan=False), st.floats(0.05, 4, allow_nan=False))
def test_class_split_sums_to_total(spec: list[list[tuple[str, int, int]]], f16: float,
                                   f64: float) -> None:
    conv = Conversion(fp16_to_fp32=f16, fp64_to_fp32=f64)
    r = meter(make_fleet(spec), MeterOptions(conversion=conv))
    for sm in [*r.sites, r.total]:
        assert sum(sm.class_accelerators.values()) == sm.accelerators
        assert sum(t.total for t in sm.class_pflops.values()) == sm.accelerators
        fp32e = sum(sm.class_pflops[str(c)].value * conv.factor(c) for c in CLASSES)
        assert sm.fp32e_pflops.value == pytest.approx(fp32e, rel=1e-9, abs=1e-12)
        assert sm.fp32e_pflops.unknown == sum(t.unknown for t in sm.class_pflops.values())
        if sm.intelligent_share is not None:
            assert 0.0 <= sm.intelligent_share <= 1.0 + 1e-12
    # the group rows add up to the total as well
    known = [g.class_pflops for g in r.groups if g.class_pflops is not None]
    assert math.fsum(known) == pytest.approx(
        sum(t.value for t in r.total.class_pflops.values()), rel=1e-9, abs=1e-12)


# --- CLI ----------------------------------------------------------------------------------

runner = CliRunner()


def write_inputs(tmp_path: Path) -> tuple[Path, Path]:
    cat = tmp_path / "cat.yaml"
    cat.write_text(yaml.safe_dump({"chips": CHIPS}), encoding="utf-8")
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(yaml.safe_dump({"name": "cli", "sites": [
        {"name": "a", "pue": 1.2, "node_groups": [
            {"name": "ai", "chip": "t_ai", "chips_per_node": 8, "nodes": 4},
            {"name": "hpc", "chip": "t_hpc", "chips_per_node": 4, "nodes": 2}]},
        {"name": "b", "pue": 1.3, "node_groups": [
            {"name": "unk", "chip": "t_unk", "chips_per_node": 8, "nodes": 1}]},
    ]}), encoding="utf-8")
    return cat, fleet


def test_cli_json_parses(tmp_path: Path) -> None:
    cat, fleet = write_inputs(tmp_path)
    res = runner.invoke(app, ["meter", str(fleet), "--catalog", str(cat), "--json",
                              "--conversion", "fp16_to_fp32=0.25,fp64_to_fp32=4"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["options"]["conversion"] == {"fp16_to_fp32": 0.25, "fp64_to_fp32": 4.0}
    tot = d["total"]
    assert tot["accelerators"] == 48
    assert tot["class_pflops"]["intelligent"]["value"] == pytest.approx(3.2)
    assert tot["class_pflops"]["intelligent"]["unknown"] == 8
    assert tot["class_pflops"]["intelligent"]["note"] == "8 of 40 accelerators unknown"
    assert tot["fp32e_pflops"]["value"] == pytest.approx(3.2 * 0.25 + 0.32 * 4)
    assert [s["name"] for s in d["sites"]] == ["a", "b"]
    assert d["policy"]["target_intelligent_share"] == 0.35
    assert any("NO official conversion" in n for n in d["notes"])


def test_cli_default_demo_fleet_json() -> None:
    res = runner.invoke(app, ["meter", "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["source"].endswith("demo_fleet.yaml")
    assert len(d["sites"]) == 4
    assert d["total"]["class_pflops"]["intelligent"]["value"] > 100  # hundreds of PFLOPS FP16


def test_cli_tables_and_html(tmp_path: Path) -> None:
    cat, fleet = write_inputs(tmp_path)
    out = tmp_path / "out" / "meter.html"
    res = runner.invoke(app, ["meter", str(fleet), "--catalog", str(cat), "--html", str(out),
                              "--utilisation", "0.8"])
    assert res.exit_code == 0, res.output
    text = " ".join(res.stdout.split())  # rich wraps lines to the terminal width
    assert "Compute by class" in text
    assert "(8 of 40 accelerators unknown)" in text  # shown next to the value, never zeroed
    assert "NO official conversion" in text
    html = out.read_text(encoding="utf-8")
    assert "plotly" in html and "Compute by class per site" in html
    assert "Accelerators by vendor and chip" in html and "Power per site" in html


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--conversion", "fp8_to_fp32=1"], "--conversion: unknown conversion"),
        (["--utilisation", "2"], "--utilisation: must be >= 0 and <= 1, got 2"),
        (["--class", "t_ai=weird"], "--class: expected CHIP_ID=CLASS"),
    ],
)
def test_cli_bad_options_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  args: list[str], words: str) -> None:
    cat, fleet = write_inputs(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["meter", str(fleet), "--catalog", str(cat), *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and words in err
    assert len(err.splitlines()) == 1


def test_cli_bad_fleet_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cat, fleet = write_inputs(tmp_path)
    fleet.write_text(fleet.read_text().replace("nodes: 4", "nodes: -4"), encoding="utf-8")
    with pytest.raises(SystemExit) as exc:
        main(["meter", str(fleet), "--catalog", str(cat)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {fleet}: site 'a': node group 'ai': nodes: must be >= 1 (got -4)"


def test_cli_unknown_chip_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, fleet = write_inputs(tmp_path)  # no --catalog: the test chips are unknown
    with pytest.raises(SystemExit) as exc:
        main(["meter", str(fleet)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {fleet}: site 'a': node group 'ai': chip: unknown chip")


# --- combined report hook ----------------------------------------------------------------


def test_meter_report_appends_to_existing_report() -> None:
    rep = Report(title="combined")
    rep.heading("before")
    r = meter(make_fleet([[("t_ai", 8, 1)], [("t_hpc", 4, 1)]]))
    out = meter_report(r, rep)
    assert out is rep
    html = rep.render()
    assert html.index("before") < html.index("Compute metering")
    assert "Method and caveats" in html
