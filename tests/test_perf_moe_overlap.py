"""Round 8 (issue 7): attention efficiency by head dimension, the MoE all-to-all overlap of
Megatron-Core (`overlap_moe_expert_parallel_comm`) as a recipe input, and the optimizer step
of expert weights sharded over the expert-DP group. Each test checks the model against a hand
computation of the documented mechanism."""

from __future__ import annotations

from dataclasses import replace

import pytest

from suanli.catalog.loader import load_catalog
from suanli.catalog.schema import Chip
from suanli.perf.efficiency import attention_head_dim_factor
from suanli.perf.hardware import build_hardware
from suanli.perf.models import get_model
from suanli.perf.train import OPT_BYTES_PER_PARAM, TrainSpec, evaluate
from suanli.perf.validate import nemo_a2a_overlap


@pytest.fixture(scope="module")
def h100() -> Chip:
    return load_catalog().get("H100")


def test_head_dim_factor_follows_the_fa3_paper_sweep() -> None:
    """cuDNN 408-412 vs 600-609 TFLOPS, FA2 321-322 vs 368-370, Triton ~400 vs ~390 at head
    dimension 64 vs 128 (FA3 paper, Fig. 5); 1 at 128 and above, linear in between."""
    assert attention_head_dim_factor(64, "cudnn") == pytest.approx(0.68)
    assert attention_head_dim_factor(64, "flash2") == pytest.approx(0.87)
    assert attention_head_dim_factor(64, "flash1") == 1.0
    assert attention_head_dim_factor(128, "cudnn") == 1.0
    assert attention_head_dim_factor(192, "cudnn") == 1.0
    assert attention_head_dim_factor(96, "cudnn") == pytest.approx(0.84)
    assert attention_head_dim_factor(32, "cudnn") == pytest.approx(0.68)
    assert attention_head_dim_factor(64, "unknown") == 1.0


def test_sink_attention_runs_on_cudnn_under_megatron(h100: Chip) -> None:
    """GPT-OSS (head dim 64, learnable-softmax sinks): Transformer Engine can only run it on
    FusedAttention (cuDNN), 0.68 of the head-128 rate; the same shape without sinks uses the
    flash2 class (0.87); FSDP keeps the kernel class. Nothing else changes."""
    oss = get_model("gpt-oss-120b")
    plain = replace(oss, attention_sinks=False)
    hw = build_hardware(h100, "bf16")
    lay = dict(tp=1, pp=1, dp=8, ep=8, mb=1, recompute=0, zero=1)
    a = evaluate(TrainSpec(model=oss, seq_len=4096, global_batch=64), hw, **lay)
    b = evaluate(TrainSpec(model=plain, seq_len=4096, global_batch=64), hw, **lay)
    assert float(a["t_attention"]) == pytest.approx(float(b["t_attention"]) * 0.87 / 0.68)
    assert float(a["t_gemm"]) == pytest.approx(float(b["t_gemm"]))
    f = evaluate(TrainSpec(model=oss, seq_len=4096, global_batch=64, framework="fsdp"), hw,
                 **lay)
    assert float(f["t_attention"]) == pytest.approx(float(b["t_attention"]))
    # head dim 128 models are untouched by the factor
    llama = TrainSpec(model=get_model("llama3-8b"), seq_len=4096, global_batch=64)
    assert attention_head_dim_factor(get_model("llama3-8b").hd, "flash2") == 1.0
    assert float(evaluate(llama, hw, **dict(lay, ep=1))["t_attention"]) > 0


def _exposed(t_ep: float, t_comp: float, unpaired: float, fwd: float) -> float:
    # forward all-to-all behind the partner's backward compute (2/3), backward behind forward
    pair = max(0.0, fwd * t_ep - 2 * t_comp / 3) + max(0.0, (1 - fwd) * t_ep - t_comp / 3)
    return t_ep * unpaired + pair * (1.0 - unpaired)


@pytest.mark.parametrize("pp,vp", [(1, 1), (8, 2), (4, 4)])
def test_a2a_overlap_hides_behind_the_paired_passes_compute(h100: Chip, pp: int,
                                                             vp: int) -> None:
    """Exposed all-to-all = all of it in the unpaired warm-up / cool-down share
    ((2 (pp - 1) + (v - 1) pp) / (m v) with a pipeline, 1 / m without), and in the paired
    share what exceeds the partner's compute (forward all-to-all behind 2/3 of the compute,
    backward behind 1/3); the hidden part counts as SM contention. Selective recompute
    without "moe" keeps 4 all-to-alls per MoE layer, 2 of them in the forward."""
    ds = get_model("deepseek-v3")
    hw = build_hardware(h100, "fp8", inter_node_gbps=3200)
    spec = TrainSpec(model=ds, seq_len=4096, global_batch=2048, interleave=vp,
                     ep_dispatch="deepep")
    lay = dict(tp=1, pp=pp, dp=256 // pp, ep=32, mb=1, recompute=1, zero=1)
    off = evaluate(spec, hw, **lay)
    on = evaluate(replace(spec, ep_a2a_overlap=True), hw, **lay)
    m = float(off["n_micro"])
    t_ep = float(off["t_comm_ep"]) / m
    t_comp = float(off["t_gemm"] + off["t_attention"] + off["t_ssd"]) / m
    unpaired = ((2 * (pp - 1) + (vp - 1) * pp) / (m * vp)) if pp > 1 else 1 / m
    want = _exposed(t_ep, t_comp, unpaired, 0.5)
    assert float(on["t_comm_ep"]) / m == pytest.approx(want, rel=1e-9)
    assert float(on["t_comm_ep"]) < float(off["t_comm_ep"])
    # the hidden all-to-all still holds SMs: compute part grows by 0.12 x the hidden time
    hidden = (t_ep - want) * m
    assert float(on["t_compute"] - off["t_compute"]) == pytest.approx(0.12 * hidden, rel=1e-6)
    # GEMMs, attention, element-wise work are the same
    assert float(on["t_gemm"]) == pytest.approx(float(off["t_gemm"]))
    assert float(on["step_time"]) < float(off["step_time"])


def test_a2a_overlap_needs_moe_and_ep(h100: Chip) -> None:
    """A dense model or ep = 1 has nothing to overlap: identical results."""
    hw = build_hardware(h100, "bf16")
    dense = TrainSpec(model=get_model("llama3-8b"), seq_len=4096, global_batch=64)
    lay = dict(tp=1, pp=1, dp=8, mb=1, recompute=0, zero=1)
    a = evaluate(dense, hw, **lay)
    b = evaluate(replace(dense, ep_a2a_overlap=True), hw, **lay)
    assert float(a["step_time"]) == float(b["step_time"])
    moe = TrainSpec(model=get_model("qwen3-30b-a3b"), seq_len=4096, global_batch=64)
    c = evaluate(moe, hw, **dict(lay, ep=1))
    d = evaluate(replace(moe, ep_a2a_overlap=True), hw, **dict(lay, ep=1))
    assert float(c["step_time"]) == float(d["step_time"])


def test_expert_optimizer_state_is_sharded_over_the_expert_dp_group(h100: Chip) -> None:
    """Distributed optimizer: dense weights sharded over dp, expert weights over
    dp_e = tp cp dp / ep -- with ep = dp every rank steps all of its local experts."""
    m = get_model("gpt-oss-120b")
    hw = build_hardware(h100, "bf16")
    spec = TrainSpec(model=m, seq_len=4096, global_batch=256)
    r = evaluate(spec, hw, tp=1, pp=1, dp=64, ep=64, mb=1, recompute=0, zero=1)
    p_exp = m.expert_params_total / 64
    p_dense = m.n_params - m.expert_params_total
    want = (p_dense / 64 + p_exp / 1) * OPT_BYTES_PER_PARAM / hw.hbm_bw
    assert float(r["t_optimizer"]) == pytest.approx(want, rel=1e-9)
    r8 = evaluate(spec, hw, tp=1, pp=1, dp=64, ep=8, mb=1, recompute=0, zero=1)
    want8 = (p_dense / 64 + m.expert_params_total / 8 / 8) * OPT_BYTES_PER_PARAM / hw.hbm_bw
    assert float(r8["t_optimizer"]) == pytest.approx(want8, rel=1e-9)
    # no distributed optimizer (ZeRO-0): every rank steps everything it holds
    r0 = evaluate(spec, hw, tp=1, pp=1, dp=64, ep=64, mb=1, recompute=0, zero=0)
    assert float(r0["t_optimizer"]) == pytest.approx((p_dense + p_exp) * OPT_BYTES_PER_PARAM
                                                     / hw.hbm_bw, rel=1e-9)


def test_nemo_rows_take_the_a2a_overlap_from_the_recorded_recipe() -> None:
    """Only a Megatron-Bridge container with the recorded layout gets the overlap."""
    lay = (2, 8, 1, 4, 32, 1)
    assert nemo_a2a_overlap("qwen3-235b-a22b", "dgxh100", "FP8", "26.06", lay)
    assert not nemo_a2a_overlap("qwen3-235b-a22b", "dgxh100", "FP8", "24.07", lay)
    assert not nemo_a2a_overlap("qwen3-235b-a22b", "dgxh100", "FP8", "26.06",
                                (2, 8, 1, 2, 32, 1))
    assert not nemo_a2a_overlap("qwen3-235b-a22b", "dgxb200", "MXFP8", "26.06",
                                (1, 8, 1, 1, 8, 1))
    assert nemo_a2a_overlap("deepseek-v3", "dgxb200", "MXFP8", "26.04", (1, 8, 1, 2, 32, 1))
    assert not nemo_a2a_overlap("llama3-8b", "dgxh100", "FP8", "26.06", (1, 1, 1, 1, 1, 1))


def test_cli_flag_turns_the_overlap_on() -> None:
    """`suanli estimate train --ep-a2a-overlap` evaluates the same layout with the overlap."""
    import json

    from typer.testing import CliRunner

    from suanli.cli import app

    args = ["estimate", "train", "--model", "deepseek-v3", "--chip", "B200", "--devices", "256",
            "--seq-len", "4096", "--global-batch", "4096", "--pp", "8", "--interleave", "2",
            "--ep", "32", "--micro-batch", "1", "--precision", "fp8", "--ep-dispatch", "deepep",
            "--inter-node-gbps", "3200", "--json"]
    runner = CliRunner()
    off = runner.invoke(app, args)
    on = runner.invoke(app, [*args, "--ep-a2a-overlap"])
    assert off.exit_code == 0 and on.exit_code == 0, off.output + on.output

    def tps(out: str) -> float:
        data = json.loads(out)
        row = data[0] if isinstance(data, list) else data
        est = row.get("estimate", row)
        return float(est["tokens_per_s"])

    assert tps(on.output) > 1.2 * tps(off.output)


def test_dropout_costs(h100: Chip) -> None:
    """Attention dropout: forward passes at 0.80, backward at 0.65 of the no-dropout rate
    (FA4 PR #2597); hidden dropout: a 1-byte mask per block output written and read back,
    kept in memory until the backward."""
    from suanli.errors import SuanliError
    from suanli.perf.train import ATTN_BWD_MULT, ATTN_DROPOUT_RATE

    m = get_model("gpt3-5b")
    hw = build_hardware(h100, "bf16")
    base = TrainSpec(model=m, seq_len=2048, global_batch=64)
    lay = dict(tp=1, pp=1, dp=8, mb=4, recompute=0, zero=1)
    a = evaluate(base, hw, **lay)
    b = evaluate(replace(base, attention_dropout=0.1), hw, **lay)
    f, bw_ = ATTN_DROPOUT_RATE
    ratio = (1 / f + ATTN_BWD_MULT / bw_) / (1 + ATTN_BWD_MULT)
    assert float(b["t_attention"]) == pytest.approx(float(a["t_attention"]) * ratio)
    assert float(b["t_elementwise"]) == pytest.approx(float(a["t_elementwise"]))
    c = evaluate(replace(base, hidden_dropout=0.1), hw, **lay)
    tokens = 4 * 2048 * float(a["n_micro"])
    mask = tokens * 2 * m.n_layers * m.d_model * 2.0  # 2 blocks per layer, write + read
    assert float(c["t_elementwise"] - a["t_elementwise"]) == pytest.approx(mask / hw.hbm_bw)
    in_flight = 4 * 2048 * 2 * m.n_layers * m.d_model  # one micro-batch in flight (pp 1)
    assert float(c["mem_activations"] - a["mem_activations"]) == pytest.approx(in_flight)
    assert float(c["t_attention"]) == pytest.approx(float(a["t_attention"]))
    for bad in (dict(attention_dropout=1.0), dict(hidden_dropout=-0.1)):
        with pytest.raises(SuanliError, match="dropout"):
            replace(base, **bad)


def test_nemo_dropout_only_for_the_recorded_launcher_config() -> None:
    from suanli.perf.validate import nemo_dropout

    lay = (1, 1, 1, 1, 1, 4)
    assert nemo_dropout("gpt3-5b", "dgxh100", "FP8", "24.07", lay) == (0.1, 0.1)
    assert nemo_dropout("gpt3-5b", "dgxh100", "FP8", "25.11", lay) == (0.0, 0.0)
    assert nemo_dropout("gpt3-5b", "dgxh100", "FP8", "24.07", (1, 1, 1, 1, 1, 2)) == (0.0, 0.0)
    assert nemo_dropout("llama2-7b", "dgxh100", "FP8", "24.07", lay) == (0.0, 0.0)


def test_expert_optimizer_memory_is_sharded_over_the_expert_dp_group(h100: Chip) -> None:
    """Memory follows the same shard as the optimizer step: with the distributed optimizer
    (ZeRO-1) each rank keeps bf16 weights + grads of everything it holds (4 B / param) and
    12 B / param of fp32 master + Adam state over its shard: dense / dp + experts / dp_e."""
    m = get_model("gpt-oss-120b")
    hw = build_hardware(h100, "bf16")
    spec = TrainSpec(model=m, seq_len=4096, global_batch=256)
    p_dense = m.n_params - m.expert_params_total
    for ep, dp_e in ((64, 1), (8, 8)):
        r = evaluate(spec, hw, tp=1, pp=1, dp=64, ep=ep, mb=1, recompute=0, zero=1)
        p_exp = m.expert_params_total / ep
        assert float(r["mem_optimizer"]) == pytest.approx(
            12.0 * (p_dense / 64 + p_exp / dp_e), rel=1e-9)
        assert float(r["mem_weights"]) == pytest.approx(2.0 * (p_dense + p_exp), rel=1e-9)
    # ZeRO-2: gradients sharded the same way
    r2 = evaluate(spec, hw, tp=1, pp=1, dp=64, ep=8, mb=1, recompute=0, zero=2)
    shard = p_dense / 64 + m.expert_params_total / 8 / 8
    assert float(r2["mem_grads"]) == pytest.approx(2.0 * shard, rel=1e-9)
    # a dense model is unchanged (dp_e = dp without experts)
    d = TrainSpec(model=get_model("llama3-8b"), seq_len=4096, global_batch=64)
    rd = evaluate(d, hw, tp=1, pp=1, dp=8, mb=1, recompute=0, zero=1)
    n = get_model("llama3-8b").n_params
    assert float(rd["mem_optimizer"]) == pytest.approx(12.0 * n / 8, rel=1e-9)


def test_fp8_attention_runs_the_forward_at_the_fa3_fp8_rate(h100: Chip) -> None:
    """fp8_dot_product_attention: under FP8 GEMMs the attention forward runs 1.2 / 0.74 x
    faster (FlashAttention-3 paper, FP8 vs FP16 forward), the backward (2.5 forward units)
    stays 16-bit; at BF16 or with the plain kernel the flag changes nothing."""
    from suanli.perf.train import ATTN_BWD_MULT, FP8_ATTN_FWD_SPEEDUP

    spec = TrainSpec(model=get_model("llama3-8b"), seq_len=8192, global_batch=8)
    lay = dict(tp=1, pp=1, dp=8, mb=1, recompute=0, zero=1)
    fp8 = build_hardware(h100, "fp8")
    a = float(evaluate(spec, fp8, **lay)["t_attention"])
    b = float(evaluate(replace(spec, fp8_attention=True), fp8, **lay)["t_attention"])
    fwd = a / (1.0 + ATTN_BWD_MULT)
    assert b == pytest.approx(fwd / FP8_ATTN_FWD_SPEEDUP + fwd * ATTN_BWD_MULT, rel=1e-9)
    bf16 = build_hardware(h100, "bf16")
    for s in (spec, replace(spec, attention_kernel="plain")):
        hw = bf16 if s is spec else fp8
        assert float(evaluate(s, hw, **lay)["step_time"]) == float(
            evaluate(replace(s, fp8_attention=True), hw, **lay)["step_time"])


def test_fp8_attention_does_not_reach_learnable_softmax_attention(h100: Chip) -> None:
    """Transformer Engine has no FP8 backend for learnable-softmax (sink) attention (its backend
    selection disables FusedAttention and UnfusedDotProductAttention for softmax_type != vanilla
    in FP8, FlashAttention for any non-vanilla softmax): GPT-OSS under Megatron keeps its 16-bit
    attention with the flag set; the same shapes without sinks do take the FP8 forward."""
    gpt_oss = get_model("gpt-oss-120b")
    hw = build_hardware(h100, "fp8")
    lay = dict(tp=1, pp=1, dp=8, ep=8, mb=1, recompute=0, zero=1)
    spec = TrainSpec(model=gpt_oss, seq_len=4096, global_batch=8)
    a = float(evaluate(spec, hw, **lay)["t_attention"])
    assert float(evaluate(replace(spec, fp8_attention=True), hw, **lay)["t_attention"]) == a
    plain = replace(spec, model=replace(gpt_oss, attention_sinks=False))
    c = float(evaluate(plain, hw, **lay)["t_attention"])
    assert float(evaluate(replace(plain, fp8_attention=True), hw, **lay)["t_attention"]) < c


def test_nemo_rows_take_fp8_attention_from_the_recorded_recipe() -> None:
    """Only the Blackwell MXFP8 configs that set fp8_dot_product_attention, at their layout."""
    from suanli.perf.validate import nemo_fp8_attention

    assert nemo_fp8_attention("deepseek-v3", "dgxgb300", "MXFP8", "26.04", (1, 2, 1, 8, 32, 1))
    assert nemo_fp8_attention("deepseek-v3", "dgxb300", "MXFP8", "26.04", (1, 8, 1, 2, 8, 1))
    # GB200 / B200 DeepSeek-V3 MXFP8 configs do not set it
    assert not nemo_fp8_attention("deepseek-v3", "dgxgb200", "MXFP8", "26.04",
                                  (1, 4, 1, 4, 64, 1))
    assert not nemo_fp8_attention("deepseek-v3", "dgxb200", "MXFP8", "26.04",
                                  (1, 8, 1, 2, 32, 1))
    assert nemo_fp8_attention("gpt-oss-120b", "dgxgb200", "MXFP8", "26.04", (1, 1, 1, 1, 64, 4))
    assert not nemo_fp8_attention("gpt-oss-120b", "dgxgb200", "MXFP8", "26.04",
                                  (1, 1, 1, 1, 64, 1))  # another layout
    assert not nemo_fp8_attention("gpt-oss-120b", "dgxgb200", "MXFP8", "24.07",
                                  (1, 1, 1, 1, 64, 4))  # before Megatron-Bridge
    assert not nemo_fp8_attention("gpt-oss-120b", "dgxgb200", "BF16", "26.04",
                                  (1, 1, 1, 1, 64, 4))


def test_cli_fp8_attention_flag() -> None:
    """`suanli estimate train --fp8-attention` is faster under FP8, unchanged under BF16."""
    import json

    from typer.testing import CliRunner

    from suanli.cli import app

    runner = CliRunner()

    def tps(prec: str, *extra: str) -> float:
        out = runner.invoke(app, [
            "estimate", "train", "--model", "llama3-8b", "--chip", "B200", "--devices", "8",
            "--seq-len", "8192", "--global-batch", "64", "--micro-batch", "1",
            "--precision", prec, "--json", *extra])
        assert out.exit_code == 0, out.output
        d = json.loads(out.output)
        return float((d[0] if isinstance(d, list) else d)["tokens_per_s_per_device"])

    assert tps("fp8", "--fp8-attention") > tps("fp8")
    assert tps("bf16", "--fp8-attention") == tps("bf16")
