"""`suanli plan`: input checks, capacity from the performance model, end-to-end runs, CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.cli_support import run, run_error, run_json

from suanli.catalog.loader import load_catalog
from suanli.errors import SuanliError
from suanli.fleet.loader import load_fleet, parse_fleet
from suanli.perf.confidence import classify
from suanli.plan.capacity import CapacityModel, NodeConfig, model_confidence
from suanli.plan.loader import example_plan_path, load_plan, resolve_plan, validate
from suanli.plan.planner import (
    DOMESTIC_VENDORS,
    availability,
    plan_fleet,
    run_plan,
    substitute,
)
from suanli.plan.schema import InferWorkload, PlanInput, TrainWorkload

CAT = load_catalog()
ROOT = Path(__file__).resolve().parents[1]


def _example() -> dict[str, Any]:
    return yaml.safe_load(example_plan_path().read_text(encoding="utf-8"))


def _write(tmp_path: Path, data: dict[str, Any], name: str = "plan.yaml") -> Path:
    data = dict(data)
    data["prices"] = str(example_plan_path().parent / "prices.yaml")
    if data.get("existing_fleet"):
        data["existing_fleet"] = str((example_plan_path().parent / data["existing_fleet"])
                                     .resolve())
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return p


def _small(**over: Any) -> dict[str, Any]:
    """A small plan: one site, two candidates, two workloads, no existing fleet."""
    d: dict[str, Any] = {
        "name": "small", "scenario": "as-today", "horizon_years": 3,
        "workloads": [
            {"name": "chat", "kind": "infer", "model": "llama3-8b", "requests_per_s": 20,
             "prompt": 1024, "output": 256, "ttft_ms": 1000, "itl_ms": 50},
            {"name": "ft", "kind": "train", "model": "llama3-8b", "tokens": 2e9,
             "deadline_days": 30, "seq_len": 4096, "global_batch": 64},
        ],
        "candidates": [
            {"name": "910b", "chip": "ascend_910b", "lead_time_weeks": 2},
            {"name": "l20", "chip": "nvidia_l20"},
        ],
        "sites": [{"name": "s1", "pue": 1.2, "power_cap_kw": 2000, "racks": 50}],
    }
    d.update(over)
    return d


# -- input errors ----------------------------------------------------------------------


def test_missing_price_is_an_error_naming_the_chip(tmp_path: Path) -> None:
    d = _small(candidates=[{"name": "mlu590", "chip": "cambricon_mlu590",
                            "node_power_kw": 5}])
    with pytest.raises(SuanliError) as e:
        load_plan(_write(tmp_path, d), CAT)
    msg = e.value.render()
    assert "candidate 'mlu590'" in msg and "cambricon_mlu590" in msg and "no price" in msg


def test_bad_field_names_workload_and_field(tmp_path: Path) -> None:
    d = _small()
    d["workloads"][0]["requests_per_s"] = -3
    with pytest.raises(SuanliError) as e:
        load_plan(_write(tmp_path, d), CAT)
    assert e.value.where == "workload 'chat'" and e.value.field == "requests_per_s"
    d = _small()
    d["workloads"][1].pop("tokens")
    with pytest.raises(SuanliError) as e:
        load_plan(_write(tmp_path, d), CAT)
    assert e.value.where == "workload 'ft'" and "tokens" in (e.value.field or "")


@pytest.mark.parametrize(("change", "where", "text"), [
    ({"scenario": "custom"}, None, "allow"),
    ({"objective": "max_throughput"}, None, "budget"),
    ({"scenario": "moon-only"}, None, "scenario"),
])
def test_bad_plan_options(tmp_path: Path, change: dict[str, Any], where: str | None,
                          text: str) -> None:
    with pytest.raises(SuanliError) as e:
        load_plan(_write(tmp_path, _small(**change)), CAT)
    assert text in e.value.render()


def test_unknown_chip_model_and_site(tmp_path: Path) -> None:
    d = _small()
    d["candidates"][0]["chip"] = "no-such-chip"
    with pytest.raises(SuanliError, match="candidate '910b': chip: unknown chip"):
        load_plan(_write(tmp_path, d), CAT)
    d = _small()
    d["workloads"][0]["model"] = "gpt-99"
    with pytest.raises(SuanliError, match="workload 'chat': model"):
        load_plan(_write(tmp_path, d), CAT)
    d = _small()
    d["candidates"][0]["sites"] = ["mars"]
    with pytest.raises(SuanliError, match="unknown site 'mars'"):
        load_plan(_write(tmp_path, d), CAT)


# -- availability and capacity -----------------------------------------------------------


def test_scenarios() -> None:
    plan = validate(PlanInput, _small(), None)
    h800, h20, l20, b910 = (CAT.get(n) for n in ("H800", "H20", "L20", "910B"))
    assert availability(h800, plan, CAT)[0] is False  # 3A090.a
    assert "3A090.a" in availability(h800, plan, CAT)[1]
    assert availability(h20, plan, CAT)[0] is False  # licence notice (2025-04)
    assert availability(l20, plan, CAT)[0] is True  # below the thresholds
    old = plan.model_copy(update={"export_rule": "2022-10"})
    assert availability(h800, old, CAT)[0] is True  # H800 was sold under the 2022 rule
    dom = plan.model_copy(update={"scenario": "domestic-only"})
    assert availability(l20, dom, CAT)[0] is False and availability(b910, dom, CAT)[0]
    nonv = plan.model_copy(update={"scenario": "no-nvidia"})
    assert not availability(l20, nonv, CAT)[0] and availability(CAT.get("MI300X"), nonv, CAT)[0]


def test_capacity_needs_grow_with_target_and_derating() -> None:
    cap = CapacityModel()
    cfg = NodeConfig(CAT.get("H800"), 8, 3200)
    w = TrainWorkload(name="t", kind="train", model="llama3-8b", tokens=1e11, deadline_days=10,
                      global_batch=256)
    n1 = cap.need(w, cfg)
    n2 = cap.need(w.model_copy(update={"tokens": 4e11}), cfg)
    n3 = cap.need(w, cfg, derate=0.4)
    assert n1.ok and n2.ok and n3.ok
    assert n2.nodes > n1.nodes and n3.nodes >= n1.nodes
    # the node count is the smallest that meets the rate: one fewer does not
    need_rate = 1e11 / (10 * 86400)
    assert n1.rate >= need_rate
    if n1.nodes > 1:
        r = cap.train_rate(w, cfg, int(n1.nodes) - 1)
        assert isinstance(r, str) or r < need_rate
    assert cap.need(w, cfg, lead_time_days=10).ok is False  # lead time eats the deadline


def test_robustness_margin_is_the_perf_models_interval() -> None:
    # the pessimistic rate is the lower end of the estimate's likely range
    for name in ("A100", "H800", "910B", "C500"):
        chip = CAT.get(name)
        conf = classify(chip, "bf16")
        why, margin = model_confidence(chip)
        assert margin == pytest.approx(max(0.0, 1.0 - conf.low), abs=1e-4)
        assert 0.0 <= margin < 1.0 and conf.level in why
    # a chip with fewer measurements is never derated less than a validated one
    a100 = model_confidence(CAT.get("A100"))[1]
    assert model_confidence(CAT.get("C500"))[1] >= a100


def test_inference_slo_and_memory_fit() -> None:
    cap = CapacityModel()
    w = InferWorkload(name="i", kind="infer", model="llama3-70b", requests_per_s=10,
                      ttft_ms=2000, itl_ms=60)
    ok = cap.need(w, NodeConfig(CAT.get("H800"), 8, 3200))
    assert ok.ok and "TTFT" in ok.detail
    strict = cap.need(w.model_copy(update={"itl_ms": 1.0}), NodeConfig(CAT.get("H800"), 8, 3200))
    assert not strict.ok and "ITL" in strict.detail
    # a looser ITL never lowers the capacity per node
    loose = cap.need(w.model_copy(update={"itl_ms": 200.0}), NodeConfig(CAT.get("H800"), 8, 3200))
    assert loose.rate >= ok.rate


# -- end to end --------------------------------------------------------------------------


def test_bundled_example_end_to_end(tmp_path: Path) -> None:
    lp = load_plan(example_plan_path(), CAT)
    res = run_plan(lp, CAT)
    assert res.feasible
    served = res.totals["served"]
    assert all(v == pytest.approx(1.0) for v in served.values())
    # no purchase breaks the scenario, the PUE cap or a site's power cap
    for b in res.buys:
        chip = CAT.get(b["chip"])
        assert availability(chip, lp.plan, CAT)[0]
        assert b["site"] != "yangtze-delta-qingpu"  # PUE 1.30 > pue_max 1.25
    for s in lp.plan.sites:
        new_kw = sum(b["facility_kw"] for b in res.buys if b["site"] == s.name)
        assert s.power_cap_kw is None or new_kw <= s.power_cap_kw
    share = res.totals["intelligent_share"]
    assert share is None or share >= 0.35
    assert res.robustness["plan_holds"] in (True, False)
    assert res.confidence and all("pessimistic_margin" in c for c in res.confidence)
    fleet = plan_fleet(res, lp)
    path = tmp_path / "planned.yaml"
    path.write_text(yaml.safe_dump(fleet, allow_unicode=True), encoding="utf-8")
    planned = load_fleet(path, CAT)
    existing = lp.existing.accelerators if lp.existing else 0
    assert planned.accelerators == existing + res.totals["new_accelerators"]
    out = run("meter", str(path))
    assert "Intelligent" in out


def test_infeasible_reports_binding_constraints(tmp_path: Path) -> None:
    d = _small()
    d["sites"][0]["power_cap_kw"] = 5
    res = run_plan(load_plan(_write(tmp_path, d), CAT), CAT)
    assert not res.feasible
    assert any("power cap at site 's1' exceeded by" in r for r in res.infeasible)
    d = _small()
    d["workloads"][0]["ttft_ms"] = 0.5
    res = run_plan(load_plan(_write(tmp_path, d), CAT), CAT)
    assert not res.feasible
    assert "no permitted chip can serve 'chat'" in res.infeasible[0]
    assert "TTFT" in res.infeasible[0]


def test_stack_requirement_excludes_ports(tmp_path: Path) -> None:
    d = _small()
    d["workloads"][1]["cuda_compat"] = "binary"  # Ascend (CANN) needs a port
    res = run_plan(load_plan(_write(tmp_path, d), CAT), CAT)
    assert res.feasible
    assert all(a["chip"] != "ascend_910b" for a in res.assignments if a["workload"] == "ft")


def test_substitution_domestic_only() -> None:
    lp = load_plan(example_plan_path(), CAT)
    src = load_fleet(example_plan_path().parent / "h800_fleet.yaml", CAT)
    sub = substitute(src, lp, CAT, "domestic-only")
    assert sub.plan.feasible
    assert sub.plan.buys
    for b in sub.plan.buys:
        assert CAT.get(b["chip"]).vendor in DOMESTIC_VENDORS
    for k in ("accelerators", "it_power", "capex", "tco"):
        assert sub.ratios[k] is not None and sub.ratios[k] > 0
    assert "1,024 x nvidia_h800_sxm" in sub.sentence
    # every throughput target is met by the replacement (the MILP's serve rows)
    assert all(v == pytest.approx(1.0) for v in sub.plan.totals["served"].values())


def test_examples_dir_matches_bundled_data() -> None:
    ex = ROOT / "examples" / "plan"
    bundled = example_plan_path().parent
    assert (ex / "prices.yaml").read_text() == (bundled / "prices.yaml").read_text()
    a = yaml.safe_load((ex / "plan.yaml").read_text())
    b = yaml.safe_load((bundled / "example_plan.yaml").read_text())
    a.pop("existing_fleet")
    b.pop("existing_fleet")
    assert a == b
    lp = load_plan(ex / "plan.yaml", CAT)
    assert lp.existing is not None
    parse_fleet(yaml.safe_load((ex / "h800_fleet.yaml").read_text()))


def test_resolve_plan_overrides_revalidate() -> None:
    lp = load_plan(example_plan_path(), CAT)
    data = {**lp.plan.model_dump(mode="json"), "scenario": "domestic-only"}
    lp2 = resolve_plan(validate(PlanInput, data, None), CAT, example_plan_path())
    res = run_plan(lp2, CAT, robust=False)
    assert res.feasible
    assert all(CAT.get(b["chip"]).vendor in DOMESTIC_VENDORS for b in res.buys)


# -- CLI ---------------------------------------------------------------------------------


def test_cli_plan_json_and_outputs(tmp_path: Path) -> None:
    data = run_json("plan", "run", "--no-robust")
    assert data["feasible"] and data["buys"]
    html = tmp_path / "p.html"
    fl = tmp_path / "f.yaml"
    out = run("plan", "run", "--no-robust", "--html", str(html), "--fleet-out", str(fl))
    assert "what to buy" in out and html.exists() and fl.exists()
    page = html.read_text(encoding="utf-8")
    assert "What to buy, where" in page and "Model confidence" in page
    sub = run_json("plan", "substitute", "--scenario", "domestic-only")
    assert sub["plan"]["feasible"] and sub["ratios"]["capex"] > 0


def test_cli_plan_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    line = run_error(capsys, "plan", "run", str(tmp_path / "nope.yaml"))
    assert "file not found" in line
    line = run_error(capsys, "plan", "run", "--scenario", "moon")
    assert "scenario" in line
    line = run_error(capsys, "plan", "substitute", "--scenario", "moon")
    assert "unknown scenario" in line


def test_cli_schema() -> None:
    out = run("plan", "schema")
    assert '"workloads"' in out and '"candidates"' in out


def test_examples_json_schema_is_current() -> None:
    import json

    from suanli.plan.schema import PlanInput

    on_disk = json.loads((ROOT / "examples" / "plan" / "plan.schema.json").read_text())
    assert on_disk == PlanInput.model_json_schema(), "regenerate: suanli plan schema > ..."
