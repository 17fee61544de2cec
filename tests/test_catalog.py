"""Invariants of the bundled accelerator catalogue and of the catalogue loader."""

from __future__ import annotations

import copy
import csv
import math
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from needs import shared_file
from suanli.catalog.loader import (
    ENV_VAR,
    Catalog,
    _norm,
    bundled_files,
    load_catalog,
    parse_chips,
    read_yaml,
)
from suanli.catalog.schema import OPTIONAL_PRECISIONS, PRECISIONS, Chip, Figure, Precision
from suanli.errors import SuanliError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _no_env_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)


@pytest.fixture(scope="module")
def cat() -> Catalog:
    old = os.environ.pop(ENV_VAR, None)
    try:
        return load_catalog()
    finally:
        if old is not None:
            os.environ[ENV_VAR] = old


def _figures(chip: Chip) -> list[tuple[str, Figure]]:
    return chip._figures()


def _chip_dict(chip: Chip) -> dict[str, Any]:
    return chip.model_dump(mode="json", exclude_none=True)


def _write(tmp_path: Path, name: str, chips: list[dict[str, Any]] | str) -> Path:
    path = tmp_path / name
    if isinstance(chips, str):
        path.write_text(chips, encoding="utf-8")
    else:
        path.write_text(yaml.safe_dump({"chips": chips}, allow_unicode=True), encoding="utf-8")
    return path


# -- bundled catalogue invariants ---------------------------------------------------------


def test_catalogue_size_and_vendor_files(cat: Catalog) -> None:
    assert len(cat) >= 46
    names = {p.name for p in bundled_files()}
    for vendor in [
        "nvidia",
        "amd",
        "hygon",
        "mthreads",
        "biren",
        "huawei",
        "cambricon",
        "kunlunxin",
        "iluvatar",
        "metax",
        "enflame",
    ]:
        assert f"{vendor}.yaml" in names


def test_ids_unique_across_bundled_files() -> None:
    ids: list[str] = []
    for path in bundled_files():
        ids += [c.id for c in parse_chips(read_yaml(path), path)]
    dupes = [i for i, n in Counter(ids).items() if n > 1]
    assert not dupes, dupes


def test_every_chip_lists_all_nine_precisions(cat: Catalog) -> None:
    assert len(PRECISIONS) == 9
    for chip in cat:
        # every required precision listed; beyond them only the optional ones (FP4)
        assert set(PRECISIONS) <= set(chip.peak) <= set(PRECISIONS) | set(OPTIONAL_PRECISIONS), \
            chip.id


def test_every_known_figure_has_resolvable_source_and_confidence(cat: Catalog) -> None:
    for chip in cat:
        for name, fig in _figures(chip):
            where = f"{chip.id} {name}"
            if fig.value is not None:
                assert fig.source in chip.sources, f"{where}: source key not in sources"
                ref, conf = chip.source_of(fig)
                assert ref and len(ref) >= 8, where
                assert conf in ("high", "medium", "low"), where
                assert math.isfinite(fig.value) and fig.value >= 0, where
            else:
                # unknown and unsupported figures both explain themselves
                assert fig.note, f"{where}: null/unsupported figure without a note"
            if fig.source is not None:
                assert fig.source in chip.sources, f"{where}: dangling source key"


def test_low_confidence_overrides_say_why(cat: Catalog) -> None:
    """A figure explicitly downgraded to low confidence is derived: the note must say how."""
    for chip in cat:
        for name, fig in _figures(chip):
            if fig.value is not None and fig.confidence == "low":
                assert fig.note, f"{chip.id} {name}"


def test_aliases_do_not_collide_across_chips(cat: Catalog) -> None:
    owner: dict[str, str] = {}
    for chip in cat:
        for key in {_norm(k) for k in (chip.id, chip.name, *chip.aliases)}:
            assert owner.setdefault(key, chip.id) == chip.id, (
                f"'{key}' used by {owner[key]} and {chip.id}"
            )


REQUIRED = {
    "Z100": "hygon_z100",
    "K100": "hygon_k100",
    "K100-AI": "hygon_k100_ai",
    "S80": "mthreads_s80",
    "S3000": "mthreads_s3000",
    "S4000": "mthreads_s4000",
    "BR100": "biren_br100",
    "BR104": "biren_br104",
    "910B": "ascend_910b",
    "910C": "ascend_910c",
    "310P": "ascend_310p",
    "MLU370-X8": "cambricon_mlu370_x8",
    "MLU590": "cambricon_mlu590",
    "R300": "kunlunxin_r300",
    "P800": "kunlunxin_p800",
    "BI-V150": "iluvatar_bi_v150",
    "C500": "metax_c500",
    "T20": "enflame_t20",
    "A100": "nvidia_a100_sxm_80",
    "A800": "nvidia_a800_sxm_80",
    "H100": "nvidia_h100_sxm",
    "H800": "nvidia_h800_sxm",
    "H20": "nvidia_h20",
    "L20": "nvidia_l20",
    "L40S": "nvidia_l40s",
    "RTX 4090": "nvidia_rtx4090",
    "B200": "nvidia_b200",
    "V100": "nvidia_v100",
    "P100": "nvidia_p100",
    "K80": "nvidia_k80",
    "T4": "nvidia_t4",
    "A10": "nvidia_a10",
    "MI250X": "amd_mi250x",
    "MI300X": "amd_mi300x",
}


@pytest.mark.parametrize(("name", "chip_id"), sorted(REQUIRED.items()))
def test_required_families_present(cat: Catalog, name: str, chip_id: str) -> None:
    assert cat.get(name).id == chip_id
    assert cat.get(chip_id).id == chip_id


@pytest.mark.parametrize(
    ("name", "chip_id"),
    [
        ("深算二号", "hygon_k100"),
        ("深算一号", "hygon_z100"),
        ("k100", "hygon_k100"),
        ("k100_ai", "hygon_k100_ai"),
        ("昇腾910B", "ascend_910b"),
        ("昇腾910C", "ascend_910c"),
        ("思元370", "cambricon_mlu370_x8"),
        ("MLU370", "cambricon_mlu370_x8"),
        ("曦云C500", "metax_c500"),
        ("天垓150", "iluvatar_bi_v150"),
        ("壁砺100", "biren_br100"),
        ("云燧T20", "enflame_t20"),
        ("昆仑芯R300", "kunlunxin_r300"),
        ("h800 sxm", "nvidia_h800_sxm"),
        ("a100-80g", "nvidia_a100_sxm_80"),
        ("Tesla V100", "nvidia_v100"),
        ("V100M32", "nvidia_v100"),
        ("mtt s4000", "mthreads_s4000"),
    ],
)
def test_alias_resolution(cat: Catalog, name: str, chip_id: str) -> None:
    assert cat.get(name).id == chip_id
    assert name in cat


def test_unknown_and_ambiguous_names(cat: Catalog) -> None:
    with pytest.raises(SuanliError, match="unknown chip"):
        cat.get("definitely-not-a-chip")
    with pytest.raises(SuanliError, match="ambiguous"):
        cat.get("910")
    with pytest.raises(SuanliError):
        cat.get("  ")


def test_unknown_vs_unsupported_semantics(cat: Catalog) -> None:
    # absent precisions are unsupported (False), not unknown (None)
    assert cat.get("BR100").supports(Precision.FP64) is False
    assert cat.get("BR104").supports("fp64") is False
    assert cat.get("A100").supports("fp8") is False
    assert cat.get("A800").supports("fp8") is False
    assert cat.get("910B").supports("fp64") is False
    assert cat.get("910C").supports("fp64") is False
    assert cat.get("V100").supports("tf32") is False
    assert cat.get("K80").supports("fp16") is False
    # unknown stays unknown
    assert cat.get("H20").supports("fp32") is None
    assert cat.get("P800").supports("fp16") is None
    assert cat.get("H20").tflops("fp32") is None
    # known values
    assert cat.get("H800").supports("fp8") is True
    assert cat.get("A100").tflops("fp16") == 312
    assert cat.get("H100").tflops("bf16") == pytest.approx(989.4)


def test_demo_fleet_chips_have_the_figures_the_simulator_needs(cat: Catalog) -> None:
    for cid in [
        "nvidia_a800_sxm_80",
        "nvidia_h800_sxm",
        "nvidia_h20",
        "ascend_910b",
        "hygon_k100_ai",
        "mthreads_s4000",
        "cambricon_mlu370_x8",
        "kunlunxin_r300",
        "metax_c500",
    ]:
        chip = cat.get(cid)
        assert chip.tflops("fp16"), cid
        assert chip.memory_gb, cid
    for cid in ("nvidia_k80", "nvidia_p100", "nvidia_v100", "nvidia_t4", "nvidia_a10"):
        chip = cat.get(cid)
        assert chip.tflops("fp32") and chip.memory_gb and chip.memory_bw_gbs, cid
        assert chip.tdp_w.value, cid


def test_dual_die_parts(cat: Catalog) -> None:
    for name in ("910C", "MLU370-X8", "BI-V150", "K80"):
        assert cat.get(name).devices_per_part == 2, name
    assert cat.get("910B").devices_per_part == 1


def test_stack_compat_levels(cat: Catalog) -> None:
    expect = {
        "A100": "native",
        "BI-V150": "binary",
        "C500": "binary",
        "K100-AI": "source",
        "S4000": "source",
        "MI300X": "source",
        "910B": "port",
        "MLU370-X8": "port",
        "R300": "port",
        "T20": "port",
        "BR100": "port",
    }
    for name, level in expect.items():
        assert cat.get(name).stack.cuda_compat == level, name


def test_export_control_and_entity_list(cat: Catalog) -> None:
    for chip in cat:
        assert chip.export_control.status.strip(), chip.id
        if chip.vendor not in ("NVIDIA", "AMD"):
            assert "non-US" in chip.export_control.status, chip.id
            assert chip.export_control.entity_list, chip.id
    for name in ("K100", "910B", "MLU370", "BR100", "S4000"):
        assert "Entity List" in (cat.get(name).export_control.entity_list or ""), name
    assert "2025-04-09" in cat.get("H20").export_control.status


def _csv_rows() -> list[dict[str, str]]:
    reference = shared_file("data/reference/accelerators.csv")
    with reference.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


CSV_FIELDS = {
    "memory_gb": lambda c: c.memory_gb,
    "memory_bw_gbs": lambda c: c.memory_bw_gbs,
    "tdp_w": lambda c: c.tdp_w.value,
    "interconnect_bw_gbs": lambda c: c.link_gbs,
    **{f"{p.value}_tflops": (lambda c, p=p: c.tflops(p)) for p in PRECISIONS if "int" not in p},
    "int8_tops": lambda c: c.tflops("int8"),
    "int4_tops": lambda c: c.tflops("int4"),
}


def test_catalogue_agrees_with_reference_table(cat: Catalog) -> None:
    """Every CSV id is catalogued and every number in the CSV is carried over unchanged."""
    rows = _csv_rows()
    assert len(rows) == 40
    for row in rows:
        chip = cat.get(row["id"])
        assert chip.id == row["id"]
        for col, get in CSV_FIELDS.items():
            raw = row.get(col, "").strip()
            if raw:
                assert get(chip) == pytest.approx(float(raw)), f"{row['id']} {col}"


# -- user files ----------------------------------------------------------------------------


def test_user_file_overrides_and_adds(cat: Catalog, tmp_path: Path) -> None:
    h800 = _chip_dict(cat.get("H800"))
    h800["memory"]["size_gb"] = {"value": 81, "source": "user measurement on our cluster"}
    new = copy.deepcopy(h800)
    new.update(id="acme_x1", name="ACME X1", aliases=["X1", "阿克米一号"])
    path = _write(tmp_path, "mine.yaml", [h800, new])
    user = load_catalog([path])
    assert user.get("H800").memory_gb == 81
    assert user.get("阿克米一号").id == "acme_x1"
    assert len(user) == len(cat) + 1
    # the bundled catalogue is untouched
    assert load_catalog().get("H800").memory_gb == 80


def test_env_var_catalog(cat: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = _chip_dict(cat.get("A100"))
    a.update(id="env_a", name="Env A", aliases=[])
    b = copy.deepcopy(a)
    b.update(id="env_b", name="Env B")
    pa, pb = _write(tmp_path, "a.yaml", [a]), _write(tmp_path, "b.yaml", [b])
    monkeypatch.setenv(ENV_VAR, f"{pa}{os.pathsep}{pb}")
    both = load_catalog()
    assert "env_a" in both.ids and "env_b" in both.ids
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "missing.yaml"))
    with pytest.raises(SuanliError, match="file not found"):
        load_catalog()


def _bad(cat: Catalog, mutate: Any) -> dict[str, Any]:
    d = _chip_dict(cat.get("A100"))
    d.update(id="foo", aliases=[])
    mutate(d)
    return d


BAD_CASES = {
    "negative": (
        lambda d: d["peak"]["fp16"].update(value=-5),
        "chip 'foo': peak.fp16.value: value must be >= 0, got -5",
    ),
    "unknown_field": (
        lambda d: d["peak"]["fp16"].update(valu=5),
        "chip 'foo': peak.fp16.valu: unknown field",
    ),
    "no_source": (
        lambda d: d["peak"]["fp16"].pop("source"),
        "chip 'foo': peak.fp16.source: a figure with a value needs a source",
    ),
    "dangling_key": (
        lambda d: d["tdp_w"].update(source="zz"),
        "chip 'foo': tdp_w.source: 'zz' is not a key of sources",
    ),
    "unknown_without_note": (
        lambda d: d["peak"].update(fp32={"value": None}),
        "chip 'foo': peak.fp32.note: an unknown figure (value null) needs a note",
    ),
    "missing_precision": (
        lambda d: d["peak"].pop("int4"),
        "chip 'foo': peak: missing precision(s) int4",
    ),
    "value_and_unsupported": (
        lambda d: d["peak"]["fp16"].update(unsupported=True),
        "chip 'foo': peak.fp16.unsupported: a figure cannot have a value and be unsupported",
    ),
    "nan": (
        lambda d: d["peak"]["fp16"].update(value=float("nan")),
        "chip 'foo': peak.fp16.value: value must be a finite number",
    ),
    "bad_compat": (
        lambda d: d["stack"].update(cuda_compat="maybe"),
        "chip 'foo': stack.cuda_compat:",
    ),
    "top_level_field": (lambda d: d.update(colour="red"), "chip 'foo': colour: unknown field"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_user_chip_gives_one_precise_error(cat: Catalog, tmp_path: Path, case: str) -> None:
    mutate, expected = BAD_CASES[case]
    path = _write(tmp_path, "my.yaml", [_bad(cat, mutate)])
    with pytest.raises(SuanliError) as info:
        load_catalog([path])
    msg = info.value.render()
    assert msg.startswith(f"{path}: "), msg
    assert expected in msg, msg
    assert "\n" not in msg


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("chips:\n  - id: foo\n    name: [1\n", "malformed YAML"),
        ("chips: 3\n", "expected a mapping with a 'chips:' list"),
        ("- a\n- b\n", "expected a mapping with a 'chips:' list"),
        ("chips:\n  - 42\n", "chip #1: each chip must be a mapping"),
        ("chips: []\nextra: 1\n", "unknown top-level key(s) extra"),
        ("when: 2024-13-45\n", "malformed YAML"),
        ("", "expected a mapping"),
    ],
)
def test_bad_user_file_shapes(tmp_path: Path, text: str, expected: str) -> None:
    path = _write(tmp_path, "bad.yaml", text)
    with pytest.raises(SuanliError) as info:
        load_catalog([path])
    assert expected in info.value.render()
    assert str(path) in info.value.render()


def test_duplicate_id_in_one_file(cat: Catalog, tmp_path: Path) -> None:
    d = _chip_dict(cat.get("A100"))
    path = _write(tmp_path, "dup.yaml", [d, d])
    with pytest.raises(SuanliError, match="duplicate chip id"):
        load_catalog([path])


def test_round_trip_of_every_bundled_chip(cat: Catalog) -> None:
    chips = [_chip_dict(c) for c in cat]
    again = parse_chips(yaml.safe_load(yaml.safe_dump({"chips": chips})), "rt.yaml")
    assert [c.model_dump() for c in again] == [c.model_dump() for c in cat]


# -- property tests: garbage never produces a traceback --------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
_json = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _check_only_suanli_error(path: Path) -> None:
    try:
        load_catalog([path])
    except SuanliError as exc:
        assert "\n" not in exc.render()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    text=st.text(
        alphabet=st.sampled_from(list("chips:-[]{}'\"!&*#\n\t .,01aéx?|>%@`")), max_size=80
    )
)
def test_garbage_yaml_text_never_crashes(tmp_path: Path, text: str) -> None:
    path = tmp_path / "garbage.yaml"
    path.write_text(text, encoding="utf-8")
    _check_only_suanli_error(path)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=_json)
def test_garbage_yaml_structure_never_crashes(tmp_path: Path, data: Any) -> None:
    path = tmp_path / "garbage.yaml"
    path.write_text(yaml.safe_dump({"chips": [data]}), encoding="utf-8")
    _check_only_suanli_error(path)


_A100: dict[str, Any] = {}


def _a100() -> dict[str, Any]:
    if not _A100:
        _A100.update(_chip_dict(load_catalog().get("A100")))
    return copy.deepcopy(_A100)


def _paths(d: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(d, dict):
        for k, v in d.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(d, list):
        for i, v in enumerate(d):
            out += _paths(v, (*prefix, i))
    return out


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(index=st.integers(min_value=0, max_value=10**6), junk=_json)
def test_mutated_valid_chip_never_crashes(tmp_path: Path, index: int, junk: Any) -> None:
    """Replace one random node of a valid chip with junk: either valid or one SuanliError."""
    d = _a100()
    paths = [p for p in _paths(d) if p]
    target = paths[index % len(paths)]
    node = d
    for key in target[:-1]:
        node = node[key]
    node[target[-1]] = junk
    path = tmp_path / "mutated.yaml"
    path.write_text(yaml.safe_dump({"chips": [d]}, allow_unicode=True), encoding="utf-8")
    _check_only_suanli_error(path)


def test_docs_example_chip_loads(tmp_path: Path) -> None:
    """The example YAML in docs/catalogue.md is a valid user catalogue file."""
    text = (ROOT / "docs" / "catalogue.md").read_text(encoding="utf-8")
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = _write(tmp_path, "acme.yaml", block)
    chip = load_catalog([path]).get("阿克米一号")
    assert chip.id == "acme_x1"
    assert chip.supports("fp64") is False and chip.supports("tf32") is None
    assert chip.tflops("bf16") == 500


def test_user_alias_collision_is_an_error(cat: Catalog, tmp_path: Path) -> None:
    d = _chip_dict(cat.get("A100"))
    d.update(id="acme_y", name="ACME Y", aliases=["Y1", "910B"])
    path = _write(tmp_path, "clash.yaml", [d])
    with pytest.raises(SuanliError) as info:
        load_catalog([path])
    msg = info.value.render()
    assert "chip 'acme_y': aliases: '910B' is already a name or alias of chip 'ascend_910b'" in msg
