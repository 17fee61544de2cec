"""Confidence classes and intervals of estimates."""

from __future__ import annotations

import json

import pytest

from cli_support import run_json
from needs import shared_file
from suanli.catalog.loader import load_catalog
from suanli.catalog.schema import Chip
from suanli.perf.confidence import classify, intervals_from_rows, stored_intervals
from suanli.perf.estimate import estimate_train
from suanli.perf.validate import interval_rows, run_validation


def _variant(base: str, **changes: object) -> Chip:
    raw = json.loads(json.dumps(load_catalog().get(base).model_dump(mode="json",
                                                                     exclude_none=True)))
    raw.update(changes)
    return Chip.model_validate(raw)


def test_classes() -> None:
    cat = load_catalog()
    assert classify(cat.get("A100"), "bf16").level == "validated"
    twin = _variant("nvidia_a100_sxm_80", id="test_a100x", name="Test A100X", aliases=[])
    assert classify(twin, "bf16").level == "micro-benchmarked"
    weak = json.loads(json.dumps(twin.model_dump(mode="json", exclude_none=True)))
    weak["peak"]["bf16"]["confidence"] = "low"
    c = classify(Chip.model_validate(weak), "bf16")
    assert c.level == "datasheet only" and "peak.bf16" in c.reasons[0]
    cal = _variant("nvidia_a100_sxm_80", id="test_a100c", name="Test A100C", aliases=[],
                   efficiency={"compute": 0.6})
    assert classify(cal, "bf16").level == "calibrated"
    # a validated chip's interval comes from its own rows
    a100 = classify(cat.get("A100"), "bf16")
    assert "nvidia_a100_sxm_80" in a100.basis and a100.low < 1.0 < a100.high * 1.2


def test_estimates_carry_class_and_range() -> None:
    e = estimate_train("llama2-7b", load_catalog().get("A100"), 16, seq_len=4096,
                       global_batch=64)
    lo, hi = e.confidence["likely_range"]
    assert e.confidence["class"] == "validated" and lo < hi
    assert lo == pytest.approx(e.tokens_per_s * e.confidence["low_factor"])
    d = run_json("estimate", "infer", "--model", "llama3-8b", "--chip", "C500", "--devices", "8")
    assert d["confidence"]["class"] == "datasheet only"
    assert any("PCIe" in a or "generic" in a for a in d["assumptions"])


def test_stored_intervals_match_a_fresh_validation() -> None:
    """perf/data/intervals.yaml must be what `suanli validate --write-intervals` produces now
    (regenerate it after changing the model)."""
    data = shared_file("data/validation/mpt_a100_training.csv").parent
    cat = load_catalog()
    rep = run_validation(data, cat.get)
    fresh = intervals_from_rows(interval_rows(rep, cat.get))
    stored = stored_intervals()
    assert set(fresh["classes"]) == set(stored["classes"])
    for key in ("classes", "chips"):
        for name, st in fresh[key].items():
            assert stored[key][name]["n"] == st["n"], name
            for q in ("low", "median", "high"):
                assert stored[key][name][q] == pytest.approx(st[q], abs=0.02), (name, q)
