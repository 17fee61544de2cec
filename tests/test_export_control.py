"""ECCN 3A090 classification from catalogue figures (TPP, performance density, rule versions)."""

from __future__ import annotations

import pytest
from tests.cli_support import run, run_error, run_json

from suanli.catalog.export_control import (
    NOT_CONTROLLED,
    UNKNOWN,
    classify,
    load_rules,
    parse_rules,
    tpp_of,
)
from suanli.catalog.loader import bundled_files, load_catalog
from suanli.catalog.schema import Precision
from suanli.errors import SuanliError

CAT = load_catalog()
BITS = {"fp64": 64, "fp64_tensor": 64, "fp32": 32, "tf32": 19, "bf16": 16, "fp16": 16,
        "fp8": 8, "int8": 8, "int4": 4, "fp4": 4}


def _tpp(chip_name: str) -> float:
    chip = CAT.get(chip_name)
    return max((chip.tflops(p) or 0.0) * BITS[p.value] for p in Precision)


def test_tpp_is_max_of_dense_peak_times_bit_length() -> None:
    for name in ("H100", "H20", "A800", "910B", "K100-AI", "MI300X"):
        tpp, _prec, _complete, _unk = tpp_of(CAT.get(name))
        assert tpp == pytest.approx(_tpp(name))


def test_h100_is_3a090a_under_every_rule() -> None:
    for rule in ("2022-10", "2023-10", "2024-12", "2026-01"):
        info = classify(CAT.get("H100"), rule)
        assert info.eccn == "3A090.a", rule
        assert info.tpp is not None and info.tpp >= 4800


def test_h20_is_below_the_thresholds_by_computed_tpp_and_density() -> None:
    chip = CAT.get("H20")
    info = classify(chip, "2023-10")
    tpp = _tpp("H20")
    density = tpp / load_rules().die_area[chip.id].mm2  # type: ignore[operator]
    # below a.1 (4800), below b.1 (2400), density below b.2 / a.2 (3.2 / 5.92)
    assert tpp < 2400 and density < 3.2
    assert info.eccn == NOT_CONTROLLED
    assert info.performance_density == pytest.approx(density)
    assert info.controlled is False


def test_a800_h800_escaped_2022_rule_but_not_2023() -> None:
    for name in ("A800", "H800"):
        chip = CAT.get(name)
        assert chip.link_gbs is not None and chip.link_gbs < 600
        assert classify(chip, "2022-10").eccn == NOT_CONTROLLED
        assert classify(chip, "2023-10").eccn == "3A090.a"


def test_rule_picked_by_date() -> None:
    rules = load_rules()
    assert rules.version("2023-06-01").id == "2022-10"
    assert rules.version("2024-01-01").id == "2023-10"
    assert rules.version("2026-11-27").id == "2026-01"
    with pytest.raises(SuanliError, match="no 3A090 rule"):
        rules.version("2020-01-01")
    with pytest.raises(SuanliError, match="unknown export rule"):
        rules.version("2019-99")


def test_unknown_die_area_gives_unknown_density_and_says_so() -> None:
    chip = CAT.get("K100-AI")  # TPP between 1600 and 4800, die area not published
    info = classify(chip, "2023-10")
    assert info.die_area_mm2 is None and info.performance_density is None
    assert info.eccn == UNKNOWN
    assert "density" in info.reason
    assert any("density unknown" in n for n in info.notes)


def test_density_decides_between_classes() -> None:
    rules = load_rules()
    chip = CAT.get("H20")
    data = rules.model_dump(mode="json", by_alias=True)
    data["die_area"][chip.id] = {"mm2": 400.0, "source": "test", "confidence": "low"}
    smaller = parse_rules(data)
    info = classify(chip, "2023-10", smaller)  # 2368 / 400 = 5.92 -> a.2
    assert info.performance_density == pytest.approx(_tpp("H20") / 400)
    assert info.eccn == "3A090.a"
    data["die_area"][chip.id]["mm2"] = 700.0  # 3.38 -> b.2
    assert classify(chip, "2023-10", parse_rules(data)).eccn == "3A090.b"


def test_2026_case_by_case_policy() -> None:
    assert classify(CAT.get("H100"), "2026-01").case_by_case is True  # TPP < 21000, BW < 6500
    assert classify(CAT.get("B200"), "2026-01").case_by_case is False


def test_rules_file_is_not_read_as_chips() -> None:
    assert "export_rules.yaml" not in {p.name for p in bundled_files()}


def test_every_version_is_sourced() -> None:
    for v in load_rules().versions:
        assert "FR" in v.citation and v.url.startswith("https://")
        assert v.effective >= v.published.replace(month=1, day=1)


def test_chips_cli_export_view() -> None:
    out = run("chips", "list", "--export", "--vendor", "nvidia")
    assert "3A090.a" in out and "not 3A090" in out and "88 FR 73458" in out
    rows = run_json("chips", "list", "--export")
    by_id = {r["id"]: r for r in rows}
    assert by_id["nvidia_h100_sxm"]["export"]["eccn"] == "3A090.a"
    assert by_id["nvidia_h20"]["export"]["eccn"] == NOT_CONTROLLED
    detail = run_json("chips", "show", "A800", "--export-rule", "2022-10")
    assert detail["export"]["eccn"] == NOT_CONTROLLED
    assert "TPP" in run("chips", "show", "910B")


def test_chips_cli_bad_rule(capsys: pytest.CaptureFixture[str]) -> None:
    line = run_error(capsys, "chips", "list", "--export", "--export-rule", "1999")
    assert "unknown export rule" in line
