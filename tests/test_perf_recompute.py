"""Selective recompute by Megatron-Core submodule (`recompute_modules`): the recomputed
operators' extra forward time and the activations they no longer keep, against hand
computation; the per-row recipe settings of the NeMo validation file."""

from __future__ import annotations

import pytest

from suanli.catalog.loader import load_catalog
from suanli.catalog.schema import Chip
from suanli.errors import SuanliError
from suanli.perf.framework import get_framework
from suanli.perf.hardware import build_hardware
from suanli.perf.models import get_model
from suanli.perf.train import ACT_BYTES, ATTN_BWD_MULT, TrainSpec, evaluate
from suanli.perf.validate import NEMO_RECOMPUTE, nemo_recompute

S = 4096


@pytest.fixture(scope="module")
def h100() -> Chip:
    return load_catalog().get("H100")


def _run(model: str, chip: Chip, mods: tuple[str, ...] | None, rc: int = 1, **lay: int
         ) -> dict[str, float]:
    spec = TrainSpec(model=get_model(model), seq_len=S, global_batch=8, framework="megatron",
                     recompute_modules=mods)
    base = dict(tp=1, pp=1, dp=8, mb=1, recompute=rc, zero=1, n_micro=1)
    base.update(lay)
    r = evaluate(spec, build_hardware(chip, "bf16"), **base)
    return {k: float(v) for k, v in r.items()}


def test_empty_module_list_recomputes_nothing(h100: Chip) -> None:
    none = _run("qwen3-30b-a3b", h100, None, rc=0)
    empty = _run("qwen3-30b-a3b", h100, (), rc=1)
    for key in ("step_time", "t_gemm", "t_attention", "t_elementwise", "mem_activations"):
        assert empty[key] == pytest.approx(none[key], rel=1e-12)


def test_legacy_selective_is_unchanged_by_the_new_input(h100: Chip) -> None:
    # recompute_modules=None keeps the layout search's selective recompute: core attention
    # recomputed -- the same attention time as the "core_attn" module
    legacy = _run("llama3-8b", h100, None)
    core = _run("llama3-8b", h100, ("core_attn",))
    assert core["t_attention"] == pytest.approx(legacy["t_attention"], rel=1e-12)
    assert core["t_gemm"] == pytest.approx(legacy["t_gemm"], rel=1e-12)


def test_core_attn_adds_one_attention_forward(h100: Chip) -> None:
    off = _run("llama3-8b", h100, ())
    on = _run("llama3-8b", h100, ("core_attn",))
    assert on["t_attention"] / off["t_attention"] == pytest.approx(
        (2.0 + ATTN_BWD_MULT) / (1.0 + ATTN_BWD_MULT))
    m = get_model("llama3-8b")
    # it no longer keeps the core attention output: d per attention block per token
    saved = off["mem_activations"] - on["mem_activations"]
    assert saved == pytest.approx(ACT_BYTES * m.n_layers * m.d_model * S)


def test_moe_act_time_and_memory_by_hand(h100: Chip) -> None:
    m = get_model("qwen3-30b-a3b")
    hw = build_hardware(h100, "bf16")
    off = _run("qwen3-30b-a3b", h100, ())
    on = _run("qwen3-30b-a3b", h100, ("moe_act",))
    k_ff = m.top_k * m.d_ff  # activation width of the k routed copies of a token
    # SwiGLU forward again: read the two FC1 halves, write the product (6 bytes per element
    # of the output), for every token of every MoE layer, at the framework's fusion factor
    extra_bytes = S * m.n_moe_layers * 6.0 * k_ff * get_framework("megatron").elementwise_passes
    assert on["t_elementwise"] - off["t_elementwise"] == pytest.approx(extra_bytes / hw.hbm_bw)
    assert on["t_gemm"] == pytest.approx(off["t_gemm"])  # no GEMM re-runs
    # output-discarding checkpoint: the FC2 input (k d_ff per token per MoE layer) is dropped
    saved = off["mem_activations"] - on["mem_activations"]
    assert saved == pytest.approx(ACT_BYTES * m.n_moe_layers * k_ff * S)


def test_mlp_reruns_the_dense_mlp_gemms(h100: Chip) -> None:
    m = get_model("llama3-8b")
    off = _run("llama3-8b", h100, ())
    on = _run("llama3-8b", h100, ("mlp",))
    # FC1 (d -> 2 d_ff) and FC2 (d_ff -> d) forward once more, per token and layer
    flops = 2.0 * S * m.d_model * 3 * m.d_ff * m.n_layers
    assert on["gemm_flops"] - off["gemm_flops"] == pytest.approx(flops, rel=1e-9)
    assert on["t_gemm"] > off["t_gemm"]
    # normal checkpoint: the MLP keeps its input only -- the fused norm's output, the block
    # output and the SwiGLU activations (two FC1 halves + product) are dropped
    saved = off["mem_activations"] - on["mem_activations"]
    assert saved == pytest.approx(ACT_BYTES * m.n_layers * (2 * m.d_model + 3 * m.d_ff) * S)


def test_mla_up_proj_reruns_the_up_projections(h100: Chip) -> None:
    m = get_model("deepseek-v3")
    lay = dict(pp=16, dp=8, ep=8)
    off = _run("deepseek-v3", h100, (), **lay)
    on = _run("deepseek-v3", h100, ("mla_up_proj",), **lay)
    n_a = -(-m.n_layers // 16)  # attention blocks on the busiest stage (61 layers / 16 stages)
    per_tok = (m.q_lora_rank * m.n_heads * m.qk_dim
               + m.kv_lora_rank * m.n_heads * (m.qk_nope_dim + m.v_dim))
    assert on["gemm_flops"] - off["gemm_flops"] == pytest.approx(2.0 * S * n_a * per_tok,
                                                                 rel=1e-9)


def test_moe_recompute_dispatches_again(h100: Chip) -> None:
    lay = dict(dp=8, ep=8)
    off = _run("qwen3-30b-a3b", h100, (), **lay)
    on = _run("qwen3-30b-a3b", h100, ("moe",), **lay)
    # dispatch + combine forward, twice each way backward, + one recomputed forward pair
    assert on["t_comm_ep"] / off["t_comm_ep"] == pytest.approx(6.0 / 4.0)
    assert on["t_gemm"] > off["t_gemm"] and on["mem_activations"] < off["mem_activations"]


def test_unknown_module_is_an_error() -> None:
    with pytest.raises(SuanliError, match="mamba_mixer"):
        TrainSpec(model=get_model("llama3-8b"), recompute_modules=("mamba_mixer",))


def test_nemo_recipe_recompute_is_sourced_and_layout_checked() -> None:
    lay = (1, 1, 1, 1, 64, 4)
    mods, note = nemo_recompute("gpt-oss-120b", "dgxgb200", "BF16", "26.04.01", lay)
    assert mods == ("layernorm", "moe_act")
    assert "gpt_oss_workload_base_configs.py@" in note
    # another layout ran another config version: unset, with the reason
    mods, note = nemo_recompute("gpt-oss-120b", "dgxgb200", "BF16", "26.04.01",
                                (1, 1, 1, 1, 8, 4))
    assert mods is None and note.startswith("unset")
    # NeMo 24.07 rows predate the Megatron-Bridge recipes
    assert nemo_recompute("gpt-oss-120b", "dgxgb200", "BF16", "24.07", lay)[0] is None
    for (model, _sys, _prec), (modules, _src, layout) in NEMO_RECOMPUTE.items():
        get_model(model)
        assert len(layout) == 6
        TrainSpec(model=get_model(model), recompute_modules=modules)  # every module is known


def test_estimate_takes_recompute_modules(h100: Chip) -> None:
    from suanli.perf.estimate import estimate_train, parse_recompute_modules

    assert parse_recompute_modules(" moe_act, layernorm ") == ("moe_act", "layernorm")
    assert parse_recompute_modules("none") == () and parse_recompute_modules(None) is None
    # 16 devices (expert-DP group of 2): on 8 with ep 8 each rank keeps the whole optimizer
    # state of its experts (perf7b memory shard) and the no-recompute layout does not fit
    kw = dict(seq_len=S, global_batch=64, ep=8, micro_batch=1)
    base = estimate_train("qwen3-30b-a3b", h100, 16, recompute="none", **kw)  # type: ignore[arg-type]
    act = estimate_train("qwen3-30b-a3b", h100, 16, recompute_modules="moe_act",
                         **kw)  # type: ignore[arg-type]
    d = act.as_dict()
    assert d["layout"]["recompute"] == "selective"  # the modules pin selective recompute
    assert d["step_time_s"] > base.as_dict()["step_time_s"]
    with pytest.raises(SuanliError, match="unknown"):
        estimate_train("qwen3-30b-a3b", h100, 8, recompute_modules="attn", **kw)  # type: ignore[arg-type]


def test_block_recompute_of_some_layers(h100: Chip) -> None:
    m = get_model("llama3-8b")
    hw = build_hardware(h100, "bf16")
    lay = dict(tp=1, pp=1, dp=8, mb=1, zero=1, n_micro=1)

    def run(rc: int, n: int | None) -> dict[str, float]:
        spec = TrainSpec(model=m, seq_len=S, global_batch=8, recompute_layers=n)
        return {k: float(v) for k, v in evaluate(spec, hw, recompute=rc, **lay).items()}

    none, every = run(0, None), run(2, None)
    assert run(2, m.n_layers)["step_time"] == pytest.approx(every["step_time"], rel=1e-12)
    five = run(2, 5)
    # 5 of 32 layers run their forward again: 5/32 of full recompute's extra GEMM FLOPs
    extra = every["gemm_flops"] - none["gemm_flops"]
    assert five["gemm_flops"] - none["gemm_flops"] == pytest.approx(extra * 5 / m.n_layers)
    assert none["step_time"] < five["step_time"] < every["step_time"]
    assert every["mem_activations"] < five["mem_activations"] < none["mem_activations"]
    with pytest.raises(SuanliError):
        TrainSpec(model=m, recompute_layers=-1)


def test_recompute_modules_alone_keep_the_layout_search(h100: Chip) -> None:
    from suanli.perf.estimate import estimate_train

    d = estimate_train("qwen3-30b-a3b", h100, 8, seq_len=S, global_batch=64,
                       recompute_modules="moe_act").as_dict()
    assert d["searched"] > 1  # searched, with selective recompute pinned
    assert d["layout"]["recompute"] == "selective"
