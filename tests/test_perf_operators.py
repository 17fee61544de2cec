"""Per-operator training model: FP8 recipe, roofline per op, overlap, frameworks, pipelines."""

from __future__ import annotations

import json

import numpy as np
import pytest

from suanli.catalog.loader import load_catalog
from suanli.catalog.schema import Chip
from suanli.errors import SuanliError
from suanli.perf.estimate import estimate_train
from suanli.perf.hardware import build_hardware
from suanli.perf.models import get_model
from suanli.perf.train import TrainSpec, evaluate


@pytest.fixture(scope="module")
def h100() -> Chip:
    return load_catalog().get("H100")


def _spec(**kw: object) -> TrainSpec:
    base: dict[str, object] = dict(model=get_model("llama3-8b"), seq_len=8192, global_batch=64)
    base.update(kw)
    return TrainSpec(**base)  # type: ignore[arg-type]


LAY = dict(tp=1, pp=1, dp=8, mb=1, recompute=0, zero=1)


def test_fp8_runs_only_gemms_in_fp8(h100: Chip) -> None:
    b = evaluate(_spec(), build_hardware(h100, "bf16"), **LAY)
    f = evaluate(_spec(), build_hardware(h100, "fp8"), **LAY)
    assert f["t_attention"] == pytest.approx(b["t_attention"])  # attention stays 16-bit
    assert f["t_gemm"] < 0.6 * b["t_gemm"]  # GEMMs at ~2x the rate
    assert f["t_elementwise"] > b["t_elementwise"]  # + quantisation casts
    cur = evaluate(_spec(fp8_recipe="fp8-current"), build_hardware(h100, "fp8"), **LAY)
    assert cur["t_elementwise"] > f["t_elementwise"]  # current scaling: extra amax pass
    assert f["step_time"] > b["step_time"] / 2  # far from a 2x speed-up end to end


def test_bandwidth_poor_chip_loses_mfu(h100: Chip) -> None:
    raw = json.loads(json.dumps(h100.model_dump(mode="json", exclude_none=True)))
    raw["memory"]["bandwidth_gbs"]["value"] /= 4
    slow = Chip.model_validate(raw)
    fast = evaluate(_spec(), build_hardware(h100), **LAY)
    poor = evaluate(_spec(), build_hardware(slow), **LAY)
    assert poor["t_gemm"] == pytest.approx(fast["t_gemm"], rel=0.02)
    assert poor["t_elementwise"] == pytest.approx(4 * fast["t_elementwise"], rel=1e-6)
    assert poor["mfu"] < 0.85 * fast["mfu"]


def test_zero3_without_accumulation_exposes_communication(h100: Chip) -> None:
    hw = build_hardware(h100)
    r = evaluate(_spec(global_batch=8), hw, tp=1, pp=1, dp=8, mb=1, recompute=0, zero=3,
                 n_micro=1)
    assert r["t_comm_dp_exposed"] > 0
    assert r["t_comm_dp_exposed"] < r["t_comm_dp_total"]  # most of it still hidden


def test_frameworks_differ_by_mechanism(h100: Chip) -> None:
    hw = build_hardware(h100)
    kw = dict(tp=8, pp=1, dp=1, mb=1, recompute=0, zero=1)
    meg = evaluate(_spec(framework="megatron"), hw, **kw)
    fsdp = evaluate(_spec(framework="fsdp"), hw, **kw)
    assert meg["t_comm_tp"] < fsdp["t_comm_tp"]  # TP comm overlap
    assert meg["t_comm_tp_total"] == pytest.approx(fsdp["t_comm_tp_total"])
    with pytest.raises(SuanliError, match="framework must be one of"):
        _spec(framework="jax-magic")


def test_search_chooses_virtual_stages(h100: Chip) -> None:
    e = estimate_train("llama3-70b", h100, 64, seq_len=8192, global_batch=64, pp=8, tp=8,
                       search_layouts=True, inter_node_gbps=3200)
    assert e.layout["vp"] > 1  # the bubble of 8 stages is worth interleaving away
    pinned = estimate_train("llama3-70b", h100, 64, seq_len=8192, global_batch=64, pp=8, tp=8,
                            interleave=1, search_layouts=True, inter_node_gbps=3200)
    assert pinned.layout["vp"] == 1 and pinned.tokens_per_s < e.tokens_per_s


def test_gemm_shape_efficiency_per_op(h100: Chip) -> None:
    """Narrow experts run their GEMMs less efficiently than the same FLOPs in wide GEMMs."""
    hw = build_hardware(h100)
    moe = TrainSpec(model=get_model("qwen3-30b-a3b"), seq_len=4096, global_batch=64)
    r = evaluate(moe, hw, tp=1, pp=1, dp=8, ep=[1, 8], mb=1, recompute=0, zero=1)
    rate = r["gemm_flops"] / r["t_gemm"]
    assert np.all(rate < 0.9 * hw.flops)
    assert rate[1] > rate[0]  # more tokens per local expert with EP 8 -> fuller GEMMs


@pytest.mark.parametrize(("model", "n", "gb"), [("llama3-70b", 512, 512), ("llama2-13b", 64, 256)])
def test_two_pass_vp_search_equals_full_enumeration(h100: Chip, model: str, n: int,
                                                    gb: int) -> None:
    from suanli.perf.train import enumerate_layouts, search

    hw = build_hardware(h100, inter_node_gbps=3200)
    spec = TrainSpec(model=get_model(model), seq_len=8192, global_batch=gb)
    lay = enumerate_layouts(spec, n, 8)  # every (layout, vp)
    full = evaluate(spec, hw, **lay)
    best_full = np.max(full["tokens_per_s"][full["fits"]])
    res, best = search(spec, hw, n)
    assert res["tokens_per_s"][best[0]] == pytest.approx(best_full, rel=1e-12)
    assert res["tokens_per_s"].size < full["tokens_per_s"].size  # it did prune


def test_attention_length_curve_matches_the_published_kernel_sweep() -> None:
    from suanli.perf.efficiency import attention_length_factor

    # pytorch/benchmark #2391 (H100, batch x seq = 16k, 16 x 128 heads): FA3 TFLOPS per length
    sweep = {512: 430.32, 1024: 517.1, 2048: 565.54, 4096: 590.23, 8192: 614.23, 16384: 620.73}
    ref = float(attention_length_factor(16384))
    for seq, tflops in sweep.items():
        assert float(attention_length_factor(seq)) / ref == pytest.approx(tflops / 620.73,
                                                                          rel=0.02)
    assert float(attention_length_factor(8192)) == pytest.approx(1.0)


def test_short_sequences_pay_more_per_attention_flop(h100: Chip) -> None:
    hw = build_hardware(h100, "bf16")
    short = evaluate(_spec(seq_len=1024, global_batch=512), hw, **LAY)
    long = evaluate(_spec(seq_len=32768, global_batch=16), hw, **LAY)
    m = get_model("llama3-8b")
    # attention FLOPs per step (same tokens per micro-batch x ratio of contexts)
    fl_short = m.attn_flops_fwd(512) * 1024
    fl_long = m.attn_flops_fwd(16384) * 32768
    rate_short = fl_short * 512 / 8 / float(short["t_attention"])
    rate_long = fl_long * 16 / 8 / float(long["t_attention"])
    assert rate_short < 0.8 * rate_long  # 512 keys per query block vs 16k
    # context parallelism shortens each ring step's key range
    cp2 = evaluate(_spec(seq_len=32768, global_batch=16), hw, **{**LAY, "dp": 4, "cp": 2})
    assert float(cp2["t_attention"]) > float(long["t_attention"])


def test_nvfp4_runs_gemms_at_the_fp4_peak_with_block_scaled_casts() -> None:
    """NVFP4: the datasheet dense FP4 peak drives the GEMMs only; attention stays 16-bit and
    the casts (amax pass + E2M1 copies + one scale per 16) cost more HBM traffic than MXFP8."""
    from suanli.perf.train import FP8_CAST_BYTES

    b200 = load_catalog().get("B200")
    assert b200.tflops("fp4") == 9000 and b200.tflops("fp8") == 4500
    hw4, hw8 = build_hardware(b200, "fp4"), build_hardware(b200, "fp8")
    assert hw4.gemm_bytes == 0.5 and hw4.flops_16 == pytest.approx(hw8.flops_16)
    f8 = evaluate(_spec(fp8_recipe="fp8-block"), hw8, **LAY)
    f4 = evaluate(_spec(fp8_recipe="fp8-block"), hw4, **LAY)  # FP4 always casts as NVFP4
    assert f4["t_attention"] == pytest.approx(f8["t_attention"])
    assert 0.45 * f8["t_gemm"] < f4["t_gemm"] < 0.75 * f8["t_gemm"]  # 2x rate, wider tiles
    assert FP8_CAST_BYTES["nvfp4"] > FP8_CAST_BYTES["fp8-block"]
    assert f4["t_elementwise"] > f8["t_elementwise"]
    assert f4["step_time"] < f8["step_time"]
    # a chip whose entry lists no FP4 figure cannot run it (optional precision: unknown)
    from suanli.errors import CannotRun

    with pytest.raises(CannotRun, match="FP4 peak is not published"):
        build_hardware(load_catalog().get("H100"), "fp4")


def test_sliding_window_layers_attend_to_the_window_only(h100: Chip) -> None:
    """GPT-OSS: 18 of 36 layers see 128 keys; FLOPs and attention time drop, not to half
    (short key ranges run the flash kernel less efficiently)."""
    from dataclasses import replace

    oss = get_model("gpt-oss-120b")
    full = replace(oss, sliding_window=0, n_window_layers=0)
    assert oss.attention_sinks and oss.n_window_layers == 18
    s = 4096.0
    assert oss.attn_flops_fwd(s / 2) == pytest.approx(full.attn_flops_fwd(s / 2) * (18 * 2048
                                                      + 18 * 128) / (36 * 2048))
    hw = build_hardware(h100, "bf16")
    lay = dict(tp=1, pp=1, dp=8, ep=8, mb=1, recompute=0, zero=1)
    a = evaluate(TrainSpec(model=oss, seq_len=4096, global_batch=64), hw, **lay)
    b = evaluate(TrainSpec(model=full, seq_len=4096, global_batch=64), hw, **lay)
    assert 0.5 * b["t_attention"] < a["t_attention"] < 0.65 * b["t_attention"]
    assert a["t_gemm"] == pytest.approx(b["t_gemm"])
    with pytest.raises(SuanliError, match="n_window_layers"):
        replace(oss, sliding_window=0)


def test_moe_dispatch_and_imbalance_inputs(h100: Chip) -> None:
    """DeepEP-style dispatch sends a token once per remote node (fewer NIC bytes than one copy
    per remote expert); load imbalance slows the expert GEMMs and the all-to-all."""
    ds = get_model("deepseek-v3")
    hw = build_hardware(h100, "bf16", inter_node_gbps=3200)
    lay = dict(tp=1, pp=8, dp=32, ep=32, mb=1, recompute=1, zero=1)
    base = TrainSpec(model=ds, seq_len=4096, global_batch=256)
    a2a = evaluate(base, hw, **lay)
    from dataclasses import replace

    dedup = evaluate(replace(base, ep_dispatch="deepep"), hw, **lay)
    # 32 ranks over 4 nodes, top-8: 6 remote-expert copies vs ~2.7 remote nodes per token
    assert 0.35 < dedup["t_comm_ep"] / a2a["t_comm_ep"] < 0.55
    inside = dict(lay, ep=8)  # all inside one node: nothing to deduplicate
    assert evaluate(replace(base, ep_dispatch="deepep"), hw, **inside)["t_comm_ep"] == \
        pytest.approx(evaluate(base, hw, **inside)["t_comm_ep"], rel=0.2)
    skew = evaluate(replace(base, moe_imbalance=1.3), hw, **lay)
    assert skew["t_gemm"] > a2a["t_gemm"] and skew["t_comm_ep"] == pytest.approx(
        1.3 * a2a["t_comm_ep"], rel=0.02)
    for bad in (dict(moe_imbalance=0.5), dict(ep_dispatch="nccl")):
        with pytest.raises(SuanliError):
            replace(base, **bad)


def test_expert_gradients_reduce_over_the_expert_data_parallel_group(h100: Chip) -> None:
    """Expert weights are reduced over world / (pp ep) ranks, one per node when ep = devices
    per node: that ring runs on one NIC share, the dense ring on the whole node's NICs."""
    m = get_model("gpt-oss-120b")
    hw = build_hardware(h100, "bf16", devices_per_node=8, inter_node_gbps=1600)
    spec = TrainSpec(model=m, seq_len=4096, global_batch=256)
    lay = dict(tp=1, pp=1, mb=1, recompute=0, zero=1)
    r = evaluate(spec, hw, dp=64, ep=8, **lay)
    p_exp = m.expert_params_total / 8
    p_dense = m.n_params - m.expert_params_total
    per_param = 2.0 + spec.grad_reduce_bytes  # parameter all-gather + gradient reduce-scatter
    bw_dense = min(hw.link_bw, hw.node_net_bw)  # 8 DP peers per node share all its NICs
    expect = (p_dense * per_param * 63 / 64 / bw_dense
              + p_exp * per_param * 7 / 8 / (hw.node_net_bw / 8))
    lat = 2 * m.n_layers * 63 * hw.alpha_inter
    assert float(r["t_comm_dp_total"]) == pytest.approx(expect + lat, rel=0.01)
    # inside one node the expert-DP group has a single member: only dense gradients move
    one = evaluate(spec, hw, dp=8, ep=8, **lay)
    assert float(one["t_comm_dp_total"]) < 0.2 * float(r["t_comm_dp_total"])
    # twice the NIC bandwidth halves the (NIC-bound) expert part
    hw2 = build_hardware(h100, "bf16", devices_per_node=8, inter_node_gbps=3200)
    r2 = evaluate(spec, hw2, dp=64, ep=8, **lay)
    assert float(r2["t_comm_dp_total"]) < 0.6 * float(r["t_comm_dp_total"])


def test_lm_head_stays_16_bit_under_fp8(h100: Chip) -> None:
    """Megatron's output layer is not a Transformer Engine module: it runs at the 16-bit rate
    under FP8, so the vocabulary's share of GEMM time is the same as in a BF16 run."""
    from dataclasses import replace

    small = get_model("llama3-8b")
    big = replace(small, vocab=4 * small.vocab)
    t = {}
    for prec in ("bf16", "fp8"):
        hw = build_hardware(h100, prec)
        for name, m in (("small", small), ("big", big)):
            r = evaluate(_spec(model=m), hw, **LAY)
            t[prec, name] = float(r["t_gemm"])
    head_bf16 = t["bf16", "big"] - t["bf16", "small"]
    head_fp8 = t["fp8", "big"] - t["fp8", "small"]
    assert head_bf16 > 0
    assert head_fp8 == pytest.approx(head_bf16, rel=1e-9)
    assert t["fp8", "small"] < 0.7 * t["bf16", "small"]  # the layers' GEMMs do run in FP8


def test_fp8_moe_quantises_every_routed_copy(h100: Chip) -> None:
    """Transformer Engine's GroupedLinear quantises its own (dispatched) input: the k routed
    copies of a token, and per copy again for the expert FC2 output gradient. With k x d_ff
    held constant (same activation width), going from top-2 to top-8 adds exactly
    6 d elements per token per MoE layer in each direction at the recipe's cast bytes."""
    from dataclasses import replace

    from suanli.perf.train import FP8_CAST_BYTES

    q = get_model("qwen3-30b-a3b")  # 128 experts, top-8, expert width 768, no shared expert
    k2 = replace(q, top_k=2, d_ff=q.d_ff * 4)
    lay = dict(tp=1, pp=1, dp=8, ep=8, mb=1, recompute=0, zero=1)
    delta = {}
    for name, m in (("k8", q), ("k2", k2)):
        spec = TrainSpec(model=m, seq_len=4096, global_batch=64, fp8_recipe="fp8-current")
        f = evaluate(spec, build_hardware(h100, "fp8"), **lay)
        b = evaluate(spec, build_hardware(h100, "bf16"), **lay)
        delta[name] = float(f["t_elementwise"] - b["t_elementwise"])
    hw = build_hardware(h100, "fp8")
    n_micro = 64 / 8
    tokens = 4096 * q.n_moe_layers * n_micro
    extra = tokens * FP8_CAST_BYTES["fp8-current"] * 6 * q.d_model * 2 / hw.hbm_bw
    assert delta["k8"] - delta["k2"] == pytest.approx(extra, rel=1e-6)


def test_alltoall_dispatcher_sorts_received_copies_by_local_expert(h100: Chip) -> None:
    """Megatron-Core's plain all-to-all dispatcher re-sorts the received copies by local
    expert ("permutation 2", `sort_chunks_by_idxs`) when a rank holds more than one expert,
    and sorts them back before the combine: one more read + write of every routed copy each
    way, which the flex (DeepEP / HybridEP) dispatcher does not do."""
    from dataclasses import replace

    from suanli.perf.framework import get_framework

    m = get_model("qwen3-30b-a3b")
    hw = build_hardware(h100, "bf16")
    base = TrainSpec(model=m, seq_len=4096, global_batch=64)
    lay = dict(tp=1, pp=1, dp=8, mb=1, recompute=0, zero=1)
    a2a = evaluate(base, hw, ep=8, **lay)  # 16 local experts per rank
    flex = evaluate(replace(base, ep_dispatch="deepep"), hw, ep=8, **lay)
    fw = get_framework(base.framework)
    tokens = 4096 * m.n_moe_layers * (64 / 8)
    extra = tokens * 8 * m.top_k * m.d_model * fw.elementwise_passes * 3 / hw.hbm_bw
    assert float(a2a["t_elementwise"] - flex["t_elementwise"]) == pytest.approx(extra, rel=1e-6)
    # without expert parallelism there is no all-to-all and nothing to re-sort
    assert float(evaluate(base, hw, ep=1, **lay)["t_elementwise"]) == pytest.approx(
        float(evaluate(replace(base, ep_dispatch="deepep"), hw, ep=1, **lay)["t_elementwise"]))


def test_expert_gemms_are_timed_per_local_expert(h100: Chip) -> None:
    """Routed-expert GEMMs are costed as ``E / ep`` GEMMs of (tokens per local expert) x
    expert width each -- the shape the grouped GEMM sees per expert -- not as one GEMM of the
    aggregated tokens. Same expert FLOPs per device at ep 1 and ep 8 (balanced routing), but
    8x more tokens per expert at ep 8, so only the rows factor of the per-expert GEMM differs
    (issue 7, moe8: the "many small experts" check)."""
    from suanli.perf.efficiency import gemm_rows_factor
    from suanli.perf.train import _gemm

    m = get_model("qwen3-30b-a3b")
    hw = build_hardware(h100, "bf16")
    spec = TrainSpec(model=m, seq_len=4096, global_batch=64)
    lay = dict(tp=1, pp=1, dp=8, mb=1, recompute=0, zero=1)
    r1, r8 = evaluate(spec, hw, ep=1, **lay), evaluate(spec, hw, ep=8, **lay)
    E, k, ff, d = float(m.n_experts), float(m.top_k), float(m.d_ff), float(m.d_model)

    def experts(ep: float) -> float:
        m_e = 4096.0 * k * ep / E  # tokens per local expert
        t_up, _ = _gemm(m_e, 2.0 * ff, d, hw.flops, hw.hbm_bw, 2.0, E / ep)
        t_dn, _ = _gemm(m_e, d, ff, hw.flops, hw.hbm_bw, 2.0, E / ep)
        return float(t_up + t_dn)

    n_micro, passes = 64 / 8, 3.0  # micro-batches per replica; forward + dgrad + wgrad
    want = n_micro * m.n_moe_layers * passes * (experts(1.0) - experts(8.0))
    assert float(r1["t_gemm"] - r8["t_gemm"]) == pytest.approx(want, rel=1e-9)
    # 256 vs 2048 tokens per expert: the per-expert rows factor, not the aggregate's
    assert experts(1.0) / experts(8.0) == pytest.approx(
        float(gemm_rows_factor(2048.0) / gemm_rows_factor(256.0)), rel=1e-9)


def test_expert_output_bias_is_added_outside_the_grouped_gemm(h100: Chip) -> None:
    """GPT-OSS's routed experts carry biases; Megatron-Core's TEGroupedMLP adds the FC2 bias
    after the grouped GEMM in eager PyTorch (`_apply_bias`: per-expert `t + b * p`, then
    `cat`): 12 bytes per routed-copy element forward (again when recomputed) and 16 backward,
    memory-bound. Only where that code runs (megatron), only for models with expert biases."""
    from dataclasses import replace

    m = get_model("gpt-oss-120b")
    assert m.expert_bias
    hw = build_hardware(h100, "bf16")
    lay = dict(tp=1, pp=1, dp=8, ep=8, mb=1, zero=1)
    biased = TrainSpec(model=m, seq_len=4096, global_batch=64)
    plain = replace(biased, model=replace(m, expert_bias=False))
    copies = 4096 * m.n_moe_layers * m.top_k * m.d_model * (64 / 8)  # per device per step
    for rc, fwd_passes in ((0, 1.0), (2, 2.0)):  # full recompute runs the forward again
        extra = float(evaluate(biased, hw, recompute=rc, **lay)["t_elementwise"]
                      - evaluate(plain, hw, recompute=rc, **lay)["t_elementwise"])
        assert extra == pytest.approx(copies * (12.0 * fwd_passes + 16.0) / hw.hbm_bw, rel=1e-9)
    fsdp = replace(biased, framework="fsdp")
    assert float(evaluate(fsdp, hw, recompute=0, **lay)["t_elementwise"]) == pytest.approx(
        float(evaluate(replace(fsdp, model=plain.model), hw, recompute=0, **lay)["t_elementwise"]))
    # models without expert biases are untouched
    assert not get_model("qwen3-30b-a3b").expert_bias
    assert not get_model("deepseek-v3").expert_bias
