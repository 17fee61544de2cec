"""Performance model: presets, training physics, inference, HPC, efficiency factors, job_rate."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from suanli.catalog.loader import load_catalog
from suanli.catalog.schema import Chip, Precision
from suanli.errors import CannotRun, SuanliError
from suanli.perf import Workload, job_rate
from suanli.perf.efficiency import factors_for, gemm_shape_factor
from suanli.perf.estimate import estimate_infer, estimate_train
from suanli.perf.hardware import GIB, build_hardware
from suanli.perf.hpc import estimate_hpc
from suanli.perf.models import ModelShape, get_model, load_model_file, preset_names
from suanli.perf.train import TrainSpec, enumerate_layouts, evaluate, search


@pytest.fixture(scope="module")
def a100() -> Chip:
    return load_catalog().get("nvidia_a100_sxm_80")


def make_chip(base: Chip, **changes: Any) -> Chip:
    """A copy of ``base`` with top-level / nested changes, validated like a catalogue entry."""
    data = base.model_dump(mode="json")
    for key, value in changes.items():
        target = data
        parts = key.split(".")
        for p in parts[:-1]:
            target = target[p]
        target[parts[-1]] = value
    return Chip.model_validate(data)


def no_fp64_chip(base: Chip) -> Chip:
    return make_chip(
        base, id="test_no_fp64", name="Test NoFP64", aliases=[],
        **{"peak.fp64": {"unsupported": True, "note": "test"},
           "peak.fp64_tensor": {"unsupported": True, "note": "test"}},
    )


# -- presets ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", [n for n in preset_names() if get_model(n).published_params])
def test_preset_params_match_published(name: str) -> None:
    m = get_model(name)
    assert m.published_params is not None
    # the publishers' counts are of the main model (MTP modules left out)
    assert abs(m.n_params_main / m.published_params - 1) < 0.03


def test_moe_active_vs_total() -> None:
    m = get_model("deepseek-v3")
    assert m.is_moe and m.is_mla
    assert abs(m.n_active / 37e9 - 1) < 0.05
    assert m.n_params > 15 * m.n_active
    dense = get_model("llama3-70b")
    assert dense.n_active == dense.n_params


def test_kv_cache_is_gqa_aware() -> None:
    l2_70 = get_model("llama2-70b")  # 80 layers, 8 KV heads of 128
    assert l2_70.kv_elems_per_token() == 2 * 80 * 8 * 128
    l2_13 = get_model("llama2-13b")  # MHA: 40 heads of 128
    assert l2_13.kv_elems_per_token() == 2 * 40 * 40 * 128
    assert get_model("deepseek-v3").kv_elems_per_token() == 61 * (512 + 64)


def test_model_flops_formula() -> None:
    m = get_model("mpt-7b")
    s = 2048
    expect = 6 * m.matmul_params_active + 12 * m.n_layers * m.d_model * s
    assert m.model_flops_per_token(s) == pytest.approx(expect)


def test_unknown_model_and_bad_shape(tmp_path: Any) -> None:
    with pytest.raises(SuanliError, match="unknown model 'gpt-9'"):
        get_model("gpt-9")
    with pytest.raises(SuanliError, match="n_kv_heads"):
        ModelShape("bad", n_layers=2, d_model=64, n_heads=8, n_kv_heads=3, d_ff=128, vocab=10)
    f = tmp_path / "m.yaml"
    f.write_text("model: {name: tiny, n_layers: 4, d_model: 256, n_heads: 4, d_ff: 1024, "
                 "vocab: 1000, ffn: gelu}\n")
    m = load_model_file(f)
    assert m.n_layers == 4 and m.n_params > 4 * 12 * 256 * 256
    f.write_text("model: {n_layers: 4, wings: 2}\n")
    with pytest.raises(SuanliError, match="unknown field"):
        load_model_file(f)


# -- efficiency ----------------------------------------------------------------------
def test_efficiency_from_evidence_and_overrides(a100: Chip) -> None:
    f = factors_for(a100, Precision.BF16)
    assert f.compute == pytest.approx(259.2 / 312)
    assert 0.8 < f.memory < 0.9
    assert f.link == pytest.approx(467.87 / 600)
    chip = make_chip(a100, efficiency={"compute": 0.5})
    assert factors_for(chip, "bf16").compute == 0.5
    assert factors_for(chip, "bf16", {"compute": 0.6}).compute == 0.6
    with pytest.raises(SuanliError, match="efficiency"):
        factors_for(a100, "bf16", {"compute": 1.5})
    unknown = make_chip(a100, id="test_x", name="Test X", aliases=[])
    assert factors_for(unknown, "bf16").compute == pytest.approx(0.70)


def test_gemm_shape_factor_monotone() -> None:
    w = np.array([256, 768, 2048, 4096, 8192, 16384])
    g = gemm_shape_factor(w)
    assert np.all(np.diff(g) >= 0) and g[-1] == 1.0 and g[0] < 0.8


# -- training physics ------------------------------------------------------------------
def _spec(name: str = "llama2-7b", seq: int = 4096, gb: int = 512) -> TrainSpec:
    return TrainSpec(model=get_model(name), seq_len=seq, global_batch=gb)


def test_vectorised_equals_scalar(a100: Chip) -> None:
    hw = build_hardware(a100)
    spec = _spec()
    lay = enumerate_layouts(spec, 64, 8)
    res = evaluate(spec, hw, **lay)
    for i in range(0, len(lay["tp"]), max(1, len(lay["tp"]) // 25)):
        one = evaluate(spec, hw, **{k: v[i] for k, v in lay.items()})
        for key in ("step_time", "mem_total", "mfu"):
            assert float(np.ravel(one[key])[0]) == pytest.approx(float(res[key][i]))


def test_recompute_costs_compute_saves_memory(a100: Chip) -> None:
    hw = build_hardware(a100)
    r = evaluate(_spec(), hw, tp=1, pp=1, dp=8, mb=2, recompute=[0, 1, 2], zero=3)
    assert r["t_compute"][0] < r["t_compute"][1] < r["t_compute"][2]
    assert r["mem_activations"][0] > r["mem_activations"][1] > r["mem_activations"][2]
    assert r["mfu"][2] < r["mfu"][0]  # same useful work, more time
    assert r["hfu"][2] > r["mfu"][2]  # full recompute: HFU counts the extra forward


def test_zero_stages_shrink_state_memory(a100: Chip) -> None:
    hw = build_hardware(a100)
    r = evaluate(_spec(), hw, tp=1, pp=1, dp=64, mb=1, recompute=2, zero=[0, 1, 2, 3])
    states = r["mem_weights"] + r["mem_grads"] + r["mem_optimizer"]
    assert np.all(np.diff(states) < 0)
    p = get_model("llama2-7b").n_params
    assert states[0] == pytest.approx(16 * p)


def test_pipeline_bubble_fraction(a100: Chip) -> None:
    hw = build_hardware(a100)
    spec = _spec("llama2-13b", gb=64)
    for pp, m in ((2, 8), (4, 16), (8, 8)):
        r = evaluate(spec, hw, tp=1, pp=pp, dp=1, mb=1, recompute=1, zero=0, n_micro=m)
        frac = r["t_bubble"] / (r["t_bubble"] + m * r["t_micro"])
        assert float(frac) == pytest.approx((pp - 1) / (m + pp - 1))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    dp=st.sampled_from([1, 2, 4, 8, 16]), tp=st.sampled_from([1, 2, 4, 8]),
    mb=st.sampled_from([1, 2, 4]), rc=st.integers(0, 2), z=st.integers(0, 3),
    seq=st.sampled_from([1024, 2048, 8192]),
)
def test_invariants(a100: Chip, dp: int, tp: int, mb: int, rc: int, z: int, seq: int) -> None:
    # a network so fast that communication is free: more data-parallel replicas never make
    # the per-micro-batch work slower, and the per-device throughput stays the same or better
    hw = build_hardware(a100, link_gbs=1e9, inter_node_gbps=1e12)
    spec = _spec("llama2-7b", seq=seq, gb=256)
    r1 = evaluate(spec, hw, tp=tp, pp=1, dp=dp, mb=mb, recompute=rc, zero=z)
    r2 = evaluate(spec, hw, tp=tp, pp=1, dp=2 * dp, mb=mb, recompute=rc, zero=z)
    assert r2["step_time"] <= r1["step_time"] * (1 + 1e-9)
    assert 0 < r1["mfu"] <= 1 and r1["hfu"] >= r1["mfu"] * (1 - 1e-9)
    # a bigger model needs more memory on the same layout
    big = evaluate(_spec("llama2-13b", seq=seq, gb=256), hw, tp=tp, pp=1, dp=dp, mb=mb,
                   recompute=rc, zero=z)
    assert big["mem_total"] > r1["mem_total"]
    # step time is the sum of its parts
    parts = r1["t_compute"] + r1["t_memory"] + r1["t_comm"] + r1["t_bubble"]
    assert float(parts) == pytest.approx(float(r1["step_time"]))


def test_slow_network_costs_time(a100: Chip) -> None:
    spec = _spec("llama2-13b", gb=256)
    fast = build_hardware(a100, inter_node_gbps=3200)
    slow = build_hardware(a100, inter_node_gbps=25)
    kw: dict[str, Any] = dict(tp=1, pp=1, dp=64, mb=1, recompute=2, zero=3)
    assert evaluate(spec, slow, **kw)["step_time"] > evaluate(spec, fast, **kw)["step_time"]
    r = evaluate(spec, slow, **kw)
    assert r["t_comm_dp_exposed"] > 0


def test_search_best_fits_and_is_sorted(a100: Chip) -> None:
    hw = build_hardware(a100)
    spec = _spec("llama3-70b", seq=8192, gb=512)
    res, best = search(spec, hw, 256)
    assert best.size > 0
    assert np.all(res["fits"][best])
    tps = res["tokens_per_s"][best]
    assert np.all(np.diff(tps) <= 0)
    assert tps[0] == res["tokens_per_s"][res["fits"]].max()
    prod = res["tp"] * res["pp"] * res["dp"] * res["cp"]
    assert np.all(prod == 256)
    assert np.all(get_model("llama3-70b").n_heads % res["tp"] == 0)
    assert np.all(res["tp"] <= 8)


def test_estimate_train_outputs(a100: Chip) -> None:
    e = estimate_train("llama2-7b", a100, 64, seq_len=4096, global_batch=512, tokens=2e12,
                       pue=1.2, price_cny_per_hour=10.0)
    d = e.as_dict()
    assert d["tokens_per_s"] == pytest.approx(d["tokens_per_s_per_device"] * 64)
    assert d["time_to_train_s"] == pytest.approx(2e12 / d["tokens_per_s"])
    assert d["accelerator_hours"] == pytest.approx(d["time_to_train_s"] / 3600 * 64)
    assert d["energy_kwh"] == pytest.approx(400 * 64 * d["time_to_train_s"] / 3.6e6 * 1.2)
    assert d["cost_cny"] == pytest.approx(d["accelerator_hours"] * 10.0)
    assert d["bottleneck"] in ("compute", "memory", "communication", "pipeline bubble")
    assert e.alternatives and e.searched > 10
    assert e.memory_gb["total"] <= e.memory_gb["usable"]


def test_estimate_train_errors(a100: Chip) -> None:
    with pytest.raises(SuanliError, match="divisible by tp"):
        estimate_train("llama2-7b", a100, 12, tp=8)
    with pytest.raises(CannotRun, match=r"does not fit: needs \d+ GB per device, A100.*80 GB; try"):
        estimate_train("llama3-70b", a100, 8, tp=8, zero=0, global_batch=8)
    with pytest.raises(CannotRun, match="has no FP8"):
        estimate_train("llama2-7b", a100, 8, precision="fp8")
    with pytest.raises(SuanliError, match="positive"):
        estimate_train("llama2-7b", a100, -4)
    with pytest.raises(CannotRun, match="no layout fits"):
        estimate_train("llama3-405b", a100, 8, global_batch=8)


# -- inference -----------------------------------------------------------------------
def test_inference_physics(a100: Chip) -> None:
    small = estimate_infer("llama2-70b", a100, 8, batch=1, prompt=2048, output=256)
    big = estimate_infer("llama2-70b", a100, 8, batch=64, prompt=2048, output=256)
    assert small.decode_bound == "memory"
    assert big.decode_tokens_per_s > 10 * small.decode_tokens_per_s  # batching amortises weights
    assert big.tpot_s > small.tpot_s and big.ttft_s > small.ttft_s
    # TPOT lower bound: the weights must stream from HBM once per step
    weights = get_model("llama2-70b").n_params * 2 / 8
    assert small.tpot_s >= weights / (2039e9)
    assert small.kv_bytes_per_token == 2 * 80 * 8 * 128 * 2
    long = estimate_infer("llama2-70b", a100, 8, batch=1, prompt=32768, output=256)
    assert long.tpot_s > small.tpot_s
    with pytest.raises(CannotRun, match="does not fit"):
        estimate_infer("llama3-405b", a100, 1, batch=1)
    fp8 = make_chip(a100, id="test_fp8", name="Test FP8", aliases=[],
                    **{"peak.fp8": {"value": 624, "source": "ds"}})
    q = estimate_infer("llama2-70b", fp8, 8, batch=1, precision="fp8")
    assert q.memory_gb["weights"] == pytest.approx(small.memory_gb["weights"] / 2)
    assert q.tpot_s < small.tpot_s


# -- HPC -----------------------------------------------------------------------------
def test_hpc(a100: Chip) -> None:
    hpl = estimate_hpc(a100, 8, "hpl")
    assert hpl.precision == "fp64_tensor"
    assert 0.5 < hpl.fraction_of_peak < 0.95
    assert hpl.rate < 8 * 19.5e12
    st8 = estimate_hpc(a100, 8, "stream")
    assert st8.rate == pytest.approx(8 * 2039e9 * factors_for(a100, "fp64").memory)
    assert estimate_hpc(a100, 16, "stream").rate == pytest.approx(2 * st8.rate)
    with pytest.raises(CannotRun, match=r"^Test NoFP64 has no FP64$"):
        estimate_hpc(no_fp64_chip(a100), 4, "hpl")
    no_tensor = make_chip(a100, id="test_v", name="Test V", aliases=[],
                          **{"peak.fp64_tensor": {"unsupported": True, "note": "x"}})
    assert estimate_hpc(no_tensor, 1, "hpl").precision == "fp64"


# -- job_rate --------------------------------------------------------------------------
def test_job_rate(a100: Chip) -> None:
    w = Workload("train", "llama2-7b", seq_len=4096, batch=256)
    r64 = job_rate(w, a100, 64)
    assert r64 == job_rate(w, a100, 64)  # cached, identical
    assert r64 > job_rate(w, a100, 8)
    assert job_rate(Workload("train"), a100, 8) > 0  # default model
    est = estimate_train("llama2-7b", a100, 64, seq_len=4096, global_batch=256)
    assert r64 == pytest.approx(est.tokens_per_s)
    assert job_rate(Workload("infer", "llama2-7b", batch=8), a100, 1) > 0
    assert job_rate(Workload("hpc"), a100, 2) == pytest.approx(estimate_hpc(a100, 2).rate)
    with pytest.raises(CannotRun, match="has no FP8"):
        job_rate(Workload("train", "llama2-7b", precision=Precision.FP8), a100, 8)
    with pytest.raises(CannotRun, match="has no FP64"):
        job_rate(Workload("hpc"), no_fp64_chip(a100), 8)
    with pytest.raises(CannotRun):
        job_rate(Workload("train", "llama3-405b", batch=4), a100, 2)


def test_memory_capacity_units(a100: Chip) -> None:
    assert build_hardware(a100).mem_capacity == pytest.approx(80 * GIB)


def test_interleave_cp_ep_effects(a100: Chip) -> None:
    hw = build_hardware(a100)
    base = _spec("llama2-13b", seq=8192, gb=64)
    inter = TrainSpec(model=base.model, seq_len=8192, global_batch=64, interleave=2)
    kw: dict[str, Any] = dict(tp=2, pp=4, dp=1, mb=1, recompute=1, zero=1)
    ri, rb = evaluate(inter, hw, **kw), evaluate(base, hw, **kw)
    # interleaving halves the bubble, up to the doubled point-to-point traffic it adds
    assert rb["t_bubble"] / 2 < ri["t_bubble"] < rb["t_bubble"] / 2 * 1.02
    assert ri["t_comm_pp"] == pytest.approx(2 * rb["t_comm_pp"], rel=1e-9)
    assert ri["mem_activations"] > rb["mem_activations"]  # more micro-batches in flight
    r = evaluate(base, hw, tp=1, pp=1, dp=8, cp=[1, 2, 4], mb=1, recompute=0, zero=3)
    assert np.all(np.diff(r["mem_activations"]) < 0)
    moe = TrainSpec(model=get_model("deepseek-v3"), seq_len=4096, global_batch=1024)
    r = evaluate(moe, hw, tp=8, pp=8, dp=16, ep=[1, 4, 16], mb=1, recompute=2, zero=1)
    assert np.all(np.diff(r["mem_weights"]) < 0)  # experts split over more ranks
    assert r["t_comm_ep"][0] == 0 and r["t_comm_ep"][2] > 0


def test_moe_search(a100: Chip) -> None:
    e = estimate_train("deepseek-v3", a100, 2048, seq_len=4096, global_batch=4096)
    assert e.fits and e.layout["ep"] >= 1
    # MFU counts activated parameters only: far below what 671 B dense would need
    dense_tokens = e.mfu * 2048 * 312e12 / (6 * get_model("deepseek-v3").n_params)
    assert e.tokens_per_s > 5 * dense_tokens


def test_job_rate_odd_device_counts(a100: Chip) -> None:
    w = Workload("train", "llama3-8b", seq_len=2048, batch=256)
    assert job_rate(w, a100, 7) > 0  # dp = 7 does not divide 256: per-replica batch rounded up
    with pytest.raises(SuanliError):
        job_rate(w, a100, 0)
