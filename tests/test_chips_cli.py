"""`suanli chips list/show/compare` through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import cli_support
from suanli.catalog.loader import ENV_VAR, load_catalog
from suanli.cli import app, main
from suanli.commands import common

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_env_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(common.console, "width", 250)  # whole table rows on one line


def run(*args: str) -> str:
    return cli_support.run("chips", *args)


def run_json(*args: str) -> Any:
    return cli_support.run_json("chips", *args)


def run_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    return cli_support.run_error(capsys, "chips", *args)


# -- list ----------------------------------------------------------------------------------


def test_list_json_has_every_chip() -> None:
    rows = run_json("list")
    cat = load_catalog()
    assert [r["id"] for r in rows] == cat.ids
    h800 = next(r for r in rows if r["id"] == "nvidia_h800_sxm")
    assert h800["peak"]["fp16"] == pytest.approx(989.4)
    assert h800["support"]["fp8"] is True
    a100 = next(r for r in rows if r["id"] == "nvidia_a100_sxm_80")
    assert a100["support"]["fp8"] is False and a100["peak"]["fp8"] is None


def _table_row(out: str, chip_id: str) -> dict[str, str]:
    """Cells of the row of ``chip_id`` in a rendered `chips list` table, keyed by header."""
    lines = out.splitlines()
    header = next(ln for ln in lines if "┃ id" in ln)
    cols = [c.strip() for c in header.split("┃")[1:-1]]
    row = next(ln for ln in lines if f"│ {chip_id} " in ln)
    return dict(zip(cols, [c.strip() for c in row.split("│")[1:-1]], strict=True))


def test_list_table_distinguishes_unknown_and_unsupported() -> None:
    out = run("list", "--vendor", "biren", "--wide")
    assert "nvidia" not in out
    br100 = _table_row(out, "biren_br100")
    assert br100["FP64"] == "—"  # Biren has no FP64
    assert br100["FP8"] == "?"  # not published
    assert br100["FP32"] == "256" and br100["mem GB"] == "64"
    out = run("list", "--wide")
    a100 = _table_row(out, "nvidia_a100_sxm_80")
    assert (a100["FP8"], a100["BF16/FP16"], a100["CUDA"]) == ("—", "312", "native")
    t4 = _table_row(out, "nvidia_t4")
    assert (t4["FP64"], t4["BF16/FP16"]) == ("?", "—/65")
    assert _table_row(out, "cambricon_mlu370_x8")["name"].endswith("[2 dev]")
    for cid in ("nvidia_h800_sxm", "ascend_910b", "hygon_k100_ai", "metax_c500"):
        assert _table_row(out, cid)["vendor"]


@pytest.mark.parametrize(
    ("vendor", "expected"),
    [("huawei", "Huawei"), ("华为昇腾", "Huawei"), ("moore", "Moore Threads"), ("AMD", "AMD")],
)
def test_list_vendor_filter(vendor: str, expected: str) -> None:
    rows = run_json("list", "--vendor", vendor)
    assert rows and {r["vendor"] for r in rows} == {expected}


def test_list_precision_filter_keeps_only_known_support() -> None:
    rows = run_json("list", "--precision", "fp64")
    ids = {r["id"] for r in rows}
    assert all(r["support"]["fp64"] is True for r in rows)
    assert "nvidia_a100_sxm_80" in ids and "hygon_k100_ai" in ids
    assert "biren_br100" not in ids  # unsupported
    assert "ascend_910b" not in ids  # unsupported
    assert "hygon_z100" not in ids  # unknown is not "known to support"
    assert {r["id"] for r in run_json("list", "--precision", "FP8")} >= {"nvidia_h800_sxm"}


def test_list_stack_filter() -> None:
    assert {r["stack"] for r in run_json("list", "--stack", "cann")} == {"CANN"}
    binary = run_json("list", "--stack", "binary")
    assert {r["cuda_compat"] for r in binary} == {"binary"}
    assert {r["vendor"] for r in binary} == {"Iluvatar CoreX", "MetaX"}
    assert {r["id"] for r in run_json("list", "--stack", "dtk")} >= {"hygon_k100"}


def _check_sorted(rows: list[dict[str, Any]], desc: bool) -> None:
    vals = [r["sort_value"] for r in rows]
    known = [v for v in vals if v is not None]
    assert known, "nothing to sort"
    assert known == sorted(known, reverse=desc)
    # unknowns only at the end
    first_none = next((i for i, v in enumerate(vals) if v is None), len(vals))
    assert all(v is None for v in vals[first_none:])


@pytest.mark.parametrize(
    "field", ["memory", "bw", "tdp", "year", "fp16", "int8", "fp64", "fp16_per_watt", "link"]
)
@pytest.mark.parametrize("desc", [False, True])
def test_list_sort_unknowns_last(field: str, desc: bool) -> None:
    args = ["list", "--sort", field] + (["--desc"] if desc else [])
    _check_sorted(run_json(*args), desc)


def test_per_watt_is_peak_over_tdp() -> None:
    rows = run_json("list", "--sort", "fp16_per_watt", "--desc")
    top = rows[0]
    assert top["sort_value"] == pytest.approx(top["peak"]["fp16"] / top["tdp_w"])
    out = run("list", "--sort", "fp16_per_watt", "--desc")
    assert "FP16/W" in out


def test_list_sort_by_name_and_filters_combine() -> None:
    rows = run_json("list", "--vendor", "nvidia", "--precision", "fp8", "--sort", "name")
    names = [r["name"].casefold() for r in rows]
    assert names == sorted(names)
    assert all(r["vendor"] == "NVIDIA" and r["support"]["fp8"] for r in rows)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("list", "--sort", "speed"), "unknown sort field 'speed'; valid: id, name"),
        (("list", "--precision", "fp65"), "unknown precision 'fp65'; valid: fp64"),
        (("list", "--vendor", "acme"), "unknown vendor 'acme'; valid: AMD, Biren"),
        (("list", "--stack", "opencl"), "unknown stack 'opencl'; valid:"),
        (("show", "nochip"), "unknown chip 'nochip'"),
        (("compare", "H800"), "at least two chips"),
        (("compare", "H800", "nochip"), "unknown chip 'nochip'"),
    ],
)
def test_bad_flags_give_one_line_errors(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...], needle: str
) -> None:
    assert needle in run_error(capsys, *args)


# -- show ----------------------------------------------------------------------------------


def test_show_json_resolves_sources() -> None:
    data = run_json("show", "昇腾910B")
    assert data["chip"]["id"] == "ascend_910b"
    figs = {f["field"]: f for f in data["figures"]}
    assert len([f for f in figs if f.startswith("peak.")]) == 9
    for f in data["figures"]:
        if f["status"] == "known":
            assert f["source_ref"] and f["confidence"] in ("high", "medium", "low"), f
        else:
            assert f["value"] is None and f["note"], f
    assert figs["peak.fp64"]["status"] == "unsupported"
    assert figs["peak.int8"]["status"] == "unknown"
    assert "FlagPerf" in figs["peak.fp16"]["source_ref"]


def test_show_text_lists_everything() -> None:
    out = run("show", "H800")
    for needle in (
        "nvidia_h800_sxm",
        "aliases",
        "FP16 dense",
        "989.4",
        "heise",
        "export control",
        "CUDA",
        "sources",
        "2023-10-17",
    ):
        assert needle in out, needle
    out = run("show", "k80")
    assert "devices per part: 2" in out


# -- compare -------------------------------------------------------------------------------


def test_compare_json_ratios() -> None:
    data = run_json("compare", "A800", "H800", "910B")
    assert data["chips"] == ["nvidia_a800_sxm_80", "nvidia_h800_sxm", "ascend_910b"]
    rows = {r["field"]: r for r in data["rows"]}
    assert rows["fp16"]["ratio_to_first"][0] == pytest.approx(1.0)
    assert rows["fp16"]["ratio_to_first"][1] == pytest.approx(989.4 / 312)
    assert rows["fp64"]["status"][2] == "unsupported"
    assert rows["fp64"]["ratio_to_first"][2] is None
    assert rows["fp8"]["status"] == ["unsupported", "known", "unsupported"]
    assert rows["year"]["ratio_to_first"] == [None, None, None]
    assert data["cuda_compat"] == ["native", "native", "port"]


def test_compare_table() -> None:
    out = run("compare", "A800", "H800")
    assert "(3.17×)" in out  # 989.4 / 312
    assert "A800 SXM4 80GB (base)" in out


# -- user catalogue files through the CLI ---------------------------------------------------


def _user_file(tmp_path: Path, mutate: Any = None, name: str = "my.yaml") -> Path:
    d = load_catalog().get("H800").model_dump(mode="json", exclude_none=True)
    d["memory"]["size_gb"] = {"value": 81, "source": "our own nvidia-smi reading"}
    if mutate:
        d.update(id="foo", aliases=[])
        mutate(d)
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"chips": [d]}, allow_unicode=True), encoding="utf-8")
    return path


def test_catalog_option_overrides(tmp_path: Path) -> None:
    path = _user_file(tmp_path)
    data = run_json("show", "H800", "--catalog", str(path))
    assert data["chip"]["memory"]["size_gb"]["value"] == 81
    rows = run_json("compare", "A800", "H800", "--catalog", str(path))["rows"]
    assert next(r for r in rows if r["field"] == "memory")["values"][1] == 81
    assert run_json("show", "H800")["chip"]["memory"]["size_gb"]["value"] == 80


def test_env_var_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, str(_user_file(tmp_path)))
    rows = run_json("list", "--vendor", "nvidia")
    assert next(r for r in rows if r["id"] == "nvidia_h800_sxm")["memory_gb"] == 81


BAD = {
    "negative": (
        lambda d: d["peak"]["fp16"].update(value=-5),
        "my.yaml: chip 'foo': peak.fp16.value: value must be >= 0, got -5",
    ),
    "unknown_field": (
        lambda d: d["tdp_w"].update(watts=3),
        "my.yaml: chip 'foo': tdp_w.watts: unknown field",
    ),
    "no_source": (
        lambda d: d["memory"]["bandwidth_gbs"].pop("source"),
        "my.yaml: chip 'foo': memory.bandwidth_gbs.source: a figure with a value needs a source",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_catalog_file_through_cli(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, case: str
) -> None:
    mutate, needle = BAD[case]
    path = _user_file(tmp_path, mutate)
    line = run_error(capsys, "list", "--catalog", str(path))
    assert needle in line, line


def test_missing_and_malformed_files_through_cli(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    line = run_error(capsys, "show", "H800", "--catalog", str(tmp_path / "nope.yaml"))
    assert "nope.yaml: file not found" in line
    bad = tmp_path / "broken.yaml"
    bad.write_text("chips:\n  - id: x\n    name: [1\n", encoding="utf-8")
    line = run_error(capsys, "compare", "A800", "H800", "--catalog", str(bad))
    assert "broken.yaml: line 4: malformed YAML" in line
    monkeypatch.setenv(ENV_VAR, str(bad))
    assert "broken.yaml" in run_error(capsys, "list")


def test_chips_without_subcommand_shows_help() -> None:
    result = runner.invoke(app, ["chips"])
    assert "list" in result.output and "compare" in result.output


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(alphabet=st.sampled_from(list("chips:-[]{}'\"&*#\n .,01ax?|>id")), max_size=60))
def test_garbage_catalog_through_cli_exits_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    path = tmp_path / "garbage.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SystemExit) as info:
        main(["chips", "list", "--json", "--catalog", str(path)])
        raise SystemExit(0)
    out, err = capsys.readouterr()
    assert info.value.code in (0, 2)
    if info.value.code == 2:  # with --json the error is JSON on stdout
        problem = json.loads(out)["error"]
        assert problem["problem"] and "garbage.yaml" in problem["file"], out
    assert "Traceback" not in err
