"""Fleet YAML loading: validation messages, unit strings, chip resolution, the demo fleet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from suanli.catalog import Catalog, Chip, load_catalog
from suanli.errors import SuanliError
from suanli.fleet import Fleet, ResolvedFleet, demo_fleet_path, load_fleet, parse_fleet
from suanli.fleet.schema import parse_rate


def chip_entry(cid: str, fp16: float | None = 100.0, fp32: float | None = 10.0) -> dict[str, Any]:
    """A minimal but valid catalogue entry (figures are test values, not real chips)."""

    def fig(v: float | None) -> dict[str, Any]:
        return {"value": v, "source": "t"} if v is not None else {"value": None, "note": "test"}

    peak = {p: fig(None) for p in
            ("fp64", "fp64_tensor", "tf32", "bf16", "fp8", "int8", "int4")}
    peak |= {"fp16": fig(fp16), "fp32": fig(fp32)}
    return {
        "id": cid,
        "name": cid.upper(),
        "vendor": "TestVendor",
        "aliases": [f"{cid}-alias"],
        "sources": {"t": {"ref": "test fixture", "confidence": "low"}},
        "memory": {"size_gb": fig(64), "bandwidth_gbs": fig(1000)},
        "peak": peak,
        "tdp_w": fig(300),
        "interconnect": {"bandwidth_gbs": fig(100)},
        "stack": {"name": "TEST", "cuda_compat": "port"},
        "export_control": {"status": "n/a"},
    }


@pytest.fixture
def catalog() -> Catalog:
    return Catalog([Chip.model_validate(chip_entry("tchip")), Chip.model_validate(
        chip_entry("tother"))])


def fleet_data(**group_over: Any) -> dict[str, Any]:
    group = {"name": "h800-pod", "chip": "tchip", "chips_per_node": 8, "nodes": 4}
    group.update(group_over)
    return {
        "name": "t",
        "sites": [
            {"name": "ningxia", "pue": 1.2, "node_groups": [
                {"name": "a", "chip": "tother", "chips_per_node": 8, "nodes": 2}]},
            {"name": "beijing", "pue": 1.3, "node_groups": [group]},
        ],
    }


def write(tmp_path: Path, data: Any, name: str = "fleet.yaml") -> Path:
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else yaml.safe_dump(data, allow_unicode=True),
                 encoding="utf-8")
    return p


def load_err(tmp_path: Path, data: Any, catalog: Catalog) -> SuanliError:
    path = write(tmp_path, data)
    with pytest.raises(SuanliError) as exc:
        load_fleet(path, catalog)
    assert exc.value.file == str(path)
    return exc.value


# --- happy path ---------------------------------------------------------------------


def test_load_resolves_chips_by_alias(tmp_path: Path, catalog: Catalog) -> None:
    rf = load_fleet(write(tmp_path, fleet_data(chip="TCHIP-alias")), catalog)
    assert isinstance(rf, ResolvedFleet)
    assert rf.chip_of(1, 0).id == "tchip"
    assert rf.chip_of(0, 0).id == "tother"
    assert rf.accelerators == 8 * 2 + 8 * 4
    groups = list(rf.groups())
    assert [(g.site.name, g.label, g.chip.id) for g in groups] == [
        ("ningxia", "a", "tother"), ("beijing", "h800-pod", "tchip")]
    assert rf.source == tmp_path / "fleet.yaml"


def test_scaled_keeps_chips(tmp_path: Path, catalog: Catalog) -> None:
    rf = load_fleet(write(tmp_path, fleet_data()), catalog)
    big = rf.scaled(3)
    assert big.accelerators == 3 * rf.accelerators
    assert big.chips == rf.chips


def test_unit_strings_are_converted(tmp_path: Path, catalog: Catalog) -> None:
    data = fleet_data(inter_node_gbps="50 GB/s", intra_node_gbs="3.2 Tbps")
    data["sites"][0]["wan_gbps"] = "1.6 Tbps"
    rf = load_fleet(write(tmp_path, data), catalog)
    g = rf.fleet.sites[1].node_groups[0]
    assert g.inter_node_gbps == pytest.approx(400.0)  # 50 bytes/s x 8
    assert g.intra_node_gbs == pytest.approx(400.0)  # 3.2 Tbit/s / 8
    assert rf.fleet.sites[0].wan_gbps == pytest.approx(1600.0)


@given(
    x=st.floats(min_value=0.001, max_value=1e5, allow_nan=False, allow_infinity=False),
    prefix=st.sampled_from([("M", 1e-3), ("G", 1.0), ("T", 1e3)]),
    byte=st.booleans(),
    form=st.sampled_from(["{x} {p}{u}/s", "{x}{p}{u}ps", "{x} {p}{w}/s"]),
)
def test_parse_rate_property(x: float, prefix: tuple[str, float], byte: bool, form: str) -> None:
    p, scale = prefix
    u, w = ("B", "byte") if byte else ("b", "bit")
    text = form.format(x=repr(x), p=p, u=u, w=w)
    gbit = x * scale * (8 if byte else 1)
    assert parse_rate(text, "gbps") == pytest.approx(gbit, rel=1e-9)
    assert parse_rate(text, "gbs") == pytest.approx(gbit / 8, rel=1e-9)


@given(st.floats(min_value=0, max_value=1e6, allow_nan=False))
def test_parse_rate_numbers_pass_through(x: float) -> None:
    assert parse_rate(x, "gbps") == x
    assert parse_rate(str(x), "gbs") == pytest.approx(x)


# --- errors: one line naming file, site, group, field ------------------------------


def test_missing_file(tmp_path: Path, catalog: Catalog) -> None:
    with pytest.raises(SuanliError) as exc:
        load_fleet(tmp_path / "nope.yaml", catalog)
    assert "file not found" in exc.value.render()
    assert "nope.yaml" in exc.value.render()


def test_malformed_yaml(tmp_path: Path, catalog: Catalog) -> None:
    err = load_err(tmp_path, "sites:\n  - name: [unclosed\n", catalog)
    assert "malformed YAML" in err.problem
    assert err.where and err.where.startswith("line ")


@pytest.mark.parametrize("text", ["", "- just\n- a list\n", "42\n"])
def test_not_a_mapping(tmp_path: Path, catalog: Catalog, text: str) -> None:
    err = load_err(tmp_path, text, catalog)
    assert "expected a mapping" in err.problem


def test_unknown_chip_names_site_and_group(tmp_path: Path, catalog: Catalog) -> None:
    err = load_err(tmp_path, fleet_data(chip="no_such_chip"), catalog)
    assert err.where == "site 'beijing': node group 'h800-pod'"
    assert err.field == "chip"
    assert "unknown chip 'no_such_chip'" in err.problem


@pytest.mark.parametrize("nodes", [-2, 0])
def test_bad_node_count(tmp_path: Path, catalog: Catalog, nodes: int) -> None:
    err = load_err(tmp_path, fleet_data(nodes=nodes), catalog)
    assert err.where == "site 'beijing': node group 'h800-pod'"
    assert err.field == "nodes"
    assert err.problem == f"must be >= 1 (got {nodes})"
    rendered = err.render()
    assert rendered.endswith(f"site 'beijing': node group 'h800-pod': nodes: must be >= 1 "
                             f"(got {nodes})")
    assert "\n" not in rendered


def test_negative_chips_per_node(tmp_path: Path, catalog: Catalog) -> None:
    err = load_err(tmp_path, fleet_data(chips_per_node=-8), catalog)
    assert err.field == "chips_per_node"
    assert "must be >= 1" in err.problem


def test_non_integer_nodes(tmp_path: Path, catalog: Catalog) -> None:
    err = load_err(tmp_path, fleet_data(nodes="many"), catalog)
    assert err.field == "nodes"
    assert "'many'" in err.problem


def test_pue_below_one(tmp_path: Path, catalog: Catalog) -> None:
    data = fleet_data()
    data["sites"][1]["pue"] = 0.9
    err = load_err(tmp_path, data, catalog)
    assert err.where == "site 'beijing'"
    assert err.field == "pue"
    assert "must be >= 1" in err.problem and "0.9" in err.problem
    assert "facility power / IT power" in err.problem


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("400 GT/s", "cannot read '400 GT/s' as a data rate"),
        ("400 W", "cannot read"),
        ("400 GBPS", "ambiguous"),
        ("fast", "cannot read"),
        (True, "expected a number"),
        (-5, "must be > 0"),
        ("0 Gbps", "must be > 0"),
    ],
)
def test_bad_units(tmp_path: Path, catalog: Catalog, value: Any, words: str) -> None:
    err = load_err(tmp_path, fleet_data(inter_node_gbps=value), catalog)
    assert err.where == "site 'beijing': node group 'h800-pod'"
    assert err.field == "inter_node_gbps"
    assert words in err.problem


def test_duplicate_site(tmp_path: Path, catalog: Catalog) -> None:
    data = fleet_data()
    data["sites"][1]["name"] = "ningxia"
    err = load_err(tmp_path, data, catalog)
    assert err.field == "sites"
    assert "site names must be unique; repeated: ningxia" in err.problem


def test_duplicate_node_group(tmp_path: Path, catalog: Catalog) -> None:
    data = fleet_data(name="a")
    data["sites"][1]["node_groups"].append(dict(data["sites"][1]["node_groups"][0]))
    err = load_err(tmp_path, data, catalog)
    assert err.where == "site 'beijing'"
    assert err.field == "node_groups"
    assert "repeated: a" in err.problem


def test_unknown_and_missing_fields(tmp_path: Path, catalog: Catalog) -> None:
    err = load_err(tmp_path, fleet_data(gpus=8), catalog)
    assert (err.field, err.problem) == ("gpus", "unknown field")
    data = fleet_data()
    del data["sites"][1]["node_groups"][0]["chip"]
    err = load_err(tmp_path, data, catalog)
    assert (err.field, err.problem) == ("chip", "required field is missing")


def test_unnamed_entries_are_numbered(tmp_path: Path, catalog: Catalog) -> None:
    data = fleet_data(nodes=-1)
    del data["sites"][1]["node_groups"][0]["name"]
    err = load_err(tmp_path, data, catalog)
    assert err.where == "site 'beijing': node group #1"
    del data["sites"][1]["name"]
    err = load_err(tmp_path, data, catalog)
    assert (err.where, err.field, err.problem) == ("site #2", "name", "required field is missing")


def test_empty_sites(tmp_path: Path, catalog: Catalog) -> None:
    err = load_err(tmp_path, {"name": "x", "sites": []}, catalog)
    assert err.field == "sites"
    assert "at least one" in err.problem


def test_parse_fleet_in_memory() -> None:
    fleet = parse_fleet(fleet_data())
    assert isinstance(fleet, Fleet)
    with pytest.raises(SuanliError) as exc:
        parse_fleet(fleet_data(nodes=0), file="mem.yaml")
    assert exc.value.render().startswith("mem.yaml: site 'beijing'")


# --- the bundled demo fleet -----------------------------------------------------------

DEMO_CHIPS = {
    "nvidia_a800_sxm_80", "nvidia_h800_sxm", "nvidia_h20", "ascend_910b", "hygon_k100_ai",
    "mthreads_s4000", "cambricon_mlu370_x8", "kunlunxin_r300", "metax_c500",
}


def test_demo_fleet_resolves_against_bundled_catalogue() -> None:
    path = demo_fleet_path()
    assert path.is_file()
    rf = load_fleet(path, load_catalog())
    ids = {g.chip.id for g in rf.groups()}
    assert ids >= DEMO_CHIPS
    assert 1000 <= rf.accelerators <= 2000
    assert 3 <= len(rf.fleet.sites) <= 4
    for site in rf.fleet.sites:
        assert 1.15 <= site.pue <= 1.35
        assert 0.3 <= site.electricity_price_cny_kwh <= 0.7
        assert 0.3 <= site.carbon_kg_per_kwh <= 0.8
    vendors = {g.chip.vendor for g in rf.groups()}
    assert len(vendors) >= 6


_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-5, 5000),
                    st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from(["H800", "910B", "nope", "400 Gbps", "5 GB/s", "", "-1"]))
_KEYS = st.sampled_from(["name", "sites", "node_groups", "chip", "chips_per_node", "nodes",
                         "pue", "region", "inter_node_gbps", "intra_node_gbs", "wan_gbps",
                         "electricity_price_cny_kwh", "bogus"])
_YAMLISH = st.recursive(_SCALAR, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(_KEYS, inner, max_size=6)), max_leaves=25)


@given(data=_YAMLISH)
def test_any_fleet_document_loads_or_gives_one_line_error(data: Any) -> None:
    """Whatever the YAML holds, loading a fleet either succeeds or raises one SuanliError."""
    catalog = load_catalog()
    try:
        fleet = parse_fleet(data, "fuzz.yaml")
        resolved = load_fleet_from(fleet, catalog)
    except SuanliError as exc:
        text = exc.render()
        assert "\n" not in text and text.startswith("fuzz.yaml")
    else:
        assert resolved.fleet.accelerators >= 1


def load_fleet_from(fleet: Fleet, catalog: Catalog) -> ResolvedFleet:
    from suanli.fleet.loader import resolve_fleet

    return resolve_fleet(fleet, catalog, "fuzz.yaml")
