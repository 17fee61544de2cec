"""Hybrid Mamba-2 / LatentMoE / multi-token-prediction shapes and their operators.

Counts are checked against hand computation on a small configuration; the presets against
their publishers' parameter counts; the MTP module against the FLOPs it adds."""

from __future__ import annotations

import numpy as np
import pytest

from suanli.catalog.loader import load_catalog
from suanli.errors import SuanliError
from suanli.perf.hardware import build_hardware
from suanli.perf.models import ModelShape, get_model, model_from_dict
from suanli.perf.ssm import mamba_flops_per_token, mamba_kernels, mamba_mixer_times
from suanli.perf.train import SSD_GEMM_RATIO, TrainSpec, evaluate

TINY = dict(
    name="tiny-hybrid", n_layers=3, d_model=64, n_heads=4, n_kv_heads=2, head_dim=16,
    d_ff=128, vocab=1000, ffn="gelu", rope=False, n_experts=4, top_k=2,
    hybrid_pattern="M*E", mamba_heads=8, mamba_head_dim=16, mamba_state=32, mamba_groups=2,
    mamba_conv=4, ssd_chunk=8,
)


def tiny(**kw: object) -> ModelShape:
    return ModelShape(**{**TINY, **kw})  # type: ignore[arg-type]


def test_mamba_block_counts_by_hand() -> None:
    m = tiny()
    assert (m.n_attn_layers, m.n_mamba_layers, m.n_moe_layers, m.n_dense_ffn_layers) == \
        (1, 1, 1, 0)
    assert m.d_inner == 8 * 16 == 128
    # in_proj: z, x (128 each) + B, C (2 groups x 32 each) + dt (8 heads)
    assert m.mamba_in_width == 2 * 128 + 2 * 2 * 32 + 8 == 392
    assert m.mamba_conv_dim == 128 + 2 * 2 * 32 == 256
    assert m.mamba_matmul_params == 64 * 392 + 128 * 64
    # + conv taps and bias (256 x 5), A / D / dt bias (3 x 8), gated norm weight (128)
    assert m.mamba_params == 64 * 392 + 128 * 64 + 256 * 5 + 24 + 128
    attn = 64 * 4 * 16 + 2 * 64 * 2 * 16 + 4 * 16 * 64
    moe = 4 * 2 * 64 * 128 + 64 * 4  # 4 experts x 2 matrices + router
    embed = 2 * 1000 * 64
    norms = (3 + 1) * 64  # one norm per hybrid block + the final norm
    assert m.n_params == attn + m.mamba_params + moe + embed + norms
    assert m.n_active == attn + m.mamba_params + 2 * 2 * 64 * 128 + 64 * 4 + embed + norms
    # KV cache: only the attention block
    assert m.kv_elems_per_token() == 2 * 1 * 2 * 16


def test_ssd_flops_by_hand() -> None:
    m = tiny()
    # chunk 8: causal half of the diagonal block (4 keys) x (G N + H P), + C h and B^T x
    assert m.ssd_flops_fwd(1024) == 8 * (2 * 32 + 8 * 16) + 4 * 8 * 32 * 16
    # a sequence shorter than the chunk shrinks the diagonal block
    assert m.ssd_flops_fwd(4) == 4 * (2 * 32 + 8 * 16) + 4 * 8 * 32 * 16
    assert get_model("llama3-8b").ssd_flops_fwd(4096) == 0.0
    # MFU FLOPs: 6 N_matmul + 3 x attention + 3 x SSD of the one Mamba block
    mf = m.model_flops_per_token(1024)
    assert mf == pytest.approx(6.0 * m.matmul_params_active + 3.0 * m.attn_flops_fwd(1024)
                               + 3.0 * m.ssd_flops_fwd(1024))


def test_ssd_operator_time_by_hand() -> None:
    """The Mamba-2 mixer (conv1d, SSD scan, gated norm, layout copies) is the sum over its
    kernels of max(FLOPs / (16-bit GEMM rate x SSD_GEMM_RATIO), bytes / bandwidth): forward
    once, backward (with its recomputation) once."""
    m = tiny()
    hw = build_hardware(load_catalog().get("nvidia_a100_sxm_80"), "bf16")
    s, mb = 1024, 2
    res = evaluate(TrainSpec(model=m, seq_len=s, global_batch=2), hw, tp=1, pp=1, dp=1, mb=mb,
                   recompute=0, zero=1)
    T = mb * s
    rate = hw.flops_16 * SSD_GEMM_RATIO
    by_hand = sum(max(float(k.flops) / rate, float(k.bytes) / hw.hbm_bw)
                  for k in mamba_kernels(m, s, 1, mb))
    assert float(np.ravel(res["t_ssd"])[0]) == pytest.approx(T * by_hand, rel=1e-9)
    # full recompute reruns the forward kernels once more
    res_f = evaluate(TrainSpec(model=m, seq_len=s, global_batch=2), hw, tp=1, pp=1, dp=1,
                     mb=mb, recompute=2, zero=1)
    t_f, _ = mamba_mixer_times(m, s, 1, mb, rate, hw.hbm_bw)
    assert float(np.ravel(res_f["t_ssd"])[0]) - float(np.ravel(res["t_ssd"])[0]) == \
        pytest.approx(T * float(t_f), rel=1e-9)
    # a transformer has no SSD time; removing the Mamba block removes its time and bytes
    res_t = evaluate(TrainSpec(model=get_model("llama3-8b"), seq_len=s, global_batch=2), hw,
                     tp=1, pp=1, dp=1, mb=mb, recompute=0, zero=1)
    assert float(np.ravel(res_t["t_ssd"])[0]) == 0.0
    res_n = evaluate(TrainSpec(model=tiny(hybrid_pattern="-*E", mamba_heads=0), seq_len=s,
                               global_batch=2), hw, tp=1, pp=1, dp=1, mb=mb, recompute=0, zero=1)
    assert float(np.ravel(res_n["t_ssd"])[0]) == 0.0


def test_ssd_kernel_flops_by_hand() -> None:
    """Tensor-core FLOPs per token of mamba_ssm's kernels: forward chunk_state (2 H P N),
    bmm_chunk (2 Q G N, full chunk), chunk_scan (Q H P causal half + 2 H P N); backward
    recomputes chunk_state and bmm_chunk, then dstates, dx, dB, dC (2 H P N each, dx also
    Q H P), dcb and ddAcs (Q H P each) and two bmm_chunk backward passes (2 Q G N each)."""
    m = tiny()
    q, g, n, h, p = 8.0, 2.0, 32.0, 8.0, 16.0
    f, b = mamba_flops_per_token(m, 1024)
    assert f == 4 * h * p * n + q * h * p + 2 * q * g * n
    assert b == 10 * h * p * n + 3 * q * h * p + 6 * q * g * n
    # Nemotron 3 Nano: the backward is ~2.6x the forward, not the 2x of a GEMM
    fn, bn = mamba_flops_per_token(get_model("nemotron3-nano-30b-a3b"), 8192)
    assert 2.5 < bn / fn < 2.8


def test_mamba_kernels_split_with_tp_and_copy_only_for_batches() -> None:
    m = get_model("nemotron3-nano-30b-a3b")
    rate, bw = 200e12, 5e12
    f1, b1 = mamba_mixer_times(m, 8192, 1, 2, rate, bw)
    f2, b2 = mamba_mixer_times(m, 8192, 2, 2, rate, bw)
    # tp = 2 halves every kernel's heads / groups (the dt / state terms scale the same way)
    assert float(f2) == pytest.approx(float(f1) / 2, rel=1e-9)
    assert float(b2) == pytest.approx(float(b1) / 2, rel=1e-9)
    # a single-sequence micro-batch skips the (l, b, d) <-> (b, l, d) copies
    k1 = {k.name: float(k.bytes) for k in mamba_kernels(m, 8192, 1, 1)}
    k2 = {k.name: float(k.bytes) for k in mamba_kernels(m, 8192, 1, 4)}
    copies = [n for n in k1 if "contiguous (" in n or n == "grad y contiguous"]
    assert len(copies) == 4 and all(k1[c] == 0.0 and k2[c] > 0.0 for c in copies)
    # arrays of layouts evaluate at once and agree with the scalars
    fa, ba = mamba_mixer_times(m, 8192, np.array([1, 2]), np.array([2, 2]), rate, bw)
    assert np.allclose(fa, [float(f1), float(f2)]) and np.allclose(ba, [float(b1), float(b2)])


def test_mamba_gemms_and_activations_scale_with_the_block() -> None:
    hw = build_hardware(load_catalog().get("nvidia_a100_sxm_80"), "bf16")
    kw = dict(tp=1, pp=1, dp=1, mb=1, recompute=0, zero=1)
    one = evaluate(TrainSpec(model=tiny(), seq_len=512, global_batch=1), hw, **kw)
    # "MM*E": 4 blocks, two of them Mamba -> the Mamba GEMM FLOPs double
    two = evaluate(TrainSpec(model=tiny(n_layers=4, hybrid_pattern="MM*E"), seq_len=512,
                             global_batch=1), hw, **kw)
    T = 512.0
    mamba_f = 2.0 * T * tiny().mamba_matmul_params * 3.0  # fwd + dgrad + wgrad
    assert float(np.ravel(two["gemm_flops"])[0]) - float(np.ravel(one["gemm_flops"])[0]) == \
        pytest.approx(mamba_f, rel=1e-9)
    assert float(np.ravel(two["mem_activations"])[0]) > float(np.ravel(one["mem_activations"])[0])


def test_mtp_adds_one_block_a_projection_and_a_head_pass() -> None:
    base, mtp = get_model("deepseek-v3"), get_model("deepseek-v3-mtp")
    assert mtp.mtp_depth == 1 and base.mtp_depth == 0
    d, V = base.d_model, base.vocab
    assert mtp.n_params - base.n_params == mtp.mtp_params
    # 671 B main model + 14 B MTP module in DeepSeek's checkpoint count, which also holds the
    # module's own copy of the embedding and head (2 V d): within 2 %
    assert mtp.mtp_params + 2 * V * d == pytest.approx(14e9, rel=0.05)
    assert mtp.n_active == base.n_active  # "active" counts the main model
    assert mtp.matmul_params_active - base.matmul_params_active == \
        mtp.mtp_params_active + V * d
    hw = build_hardware(load_catalog().get("nvidia_h100_sxm"), "bf16")
    kw = dict(tp=1, pp=1, dp=1, ep=1, mb=1, recompute=0, zero=1)
    s = 1024
    r0 = evaluate(TrainSpec(model=base, seq_len=s, global_batch=1), hw, **kw)
    r1 = evaluate(TrainSpec(model=mtp, seq_len=s, global_batch=1), hw, **kw)
    extra = float(np.ravel(r1["gemm_flops"])[0]) - float(np.ravel(r0["gemm_flops"])[0])
    # fwd + dgrad + wgrad of the module's matmuls (attention, top-8 + shared experts, router,
    # 2d -> d projection) and of one more head pass
    assert extra == pytest.approx(3.0 * 2.0 * s * (mtp.mtp_params_active + V * d), rel=1e-9)
    assert float(np.ravel(r1["step_time"])[0]) > float(np.ravel(r0["step_time"])[0])
    assert float(np.ravel(r1["t_attention"])[0]) > float(np.ravel(r0["t_attention"])[0])


def test_shared_weight_mtp_counts_one_module_computes_every_depth() -> None:
    nano, light = get_model("nemotron3-nano-30b-a3b"), get_model("nemotron3.5-lightning-30b-a3b")
    assert light.mtp_depth == 2 and light.mtp_shared_weights
    assert light.n_params - nano.n_params == light.mtp_params  # one module's weights
    assert light.matmul_params_active - nano.matmul_params_active == \
        2 * (light.mtp_params_active + light.vocab * light.d_model)


@pytest.mark.parametrize(("name", "total", "active"), [
    ("nemotron3-nano-30b-a3b", 31.6e9, 3.6e9),  # report: 3.2 B active, 3.6 B with embeddings
    ("nemotron3-super-120b-a12b", 120e9, 12e9),
    ("nemotron3-ultra-550b-a55b", 550e9, 55e9),
])
def test_hybrid_presets_match_published_counts(name: str, total: float, active: float) -> None:
    m = get_model(name)
    assert m.is_hybrid and m.source
    main = m.n_params_main  # publishers count the main model
    assert main == pytest.approx(total, rel=0.02)
    # active, embeddings included: 3.58 / 12.8 / 56.1 B against 3.6 / 12 / 55 B
    assert m.n_active == pytest.approx(active, rel=0.07)
    assert m.n_attn_layers + m.n_mamba_layers + m.n_ffn_layers == m.n_layers


def test_preset_names_and_nemo_names_resolve() -> None:
    from suanli.perf.validate import nemo_model

    assert get_model("Nemotron-3-Nano").name == "nemotron3-nano-30b-a3b"
    assert get_model("nemotron_3_super").name == "nemotron3-super-120b-a12b"
    for label, name in (("Nemotron_3_Nano", "nemotron3-nano-30b-a3b"),
                        ("Nemotron_3_Super", "nemotron3-super-120b-a12b"),
                        ("Nemotron_3_Ultra", "nemotron3-ultra-550b-a55b"),
                        ("Nemotron_3_5_Lightning", "nemotron3.5-lightning-30b-a3b"),
                        ("DeepSeekV3 (w/ MTP)", "deepseek-v3-mtp"),
                        ("DeepSeekV3 (w/o MTP)", "deepseek-v3")):
        assert nemo_model(label).name == name
    from suanli.errors import CannotRun

    with pytest.raises(CannotRun, match="compressed sparse attention"):
        nemo_model("DeepSeekV4 Flash")


def test_hybrid_shape_from_yaml_mapping_and_bad_patterns() -> None:
    m = model_from_dict({"base": "nemotron3-nano-30b-a3b", "name": "nano-short",
                         "n_layers": 4, "hybrid_pattern": "ME*E"})
    assert (m.n_mamba_layers, m.n_moe_layers, m.n_attn_layers) == (1, 2, 1)
    assert m.published_params is None
    with pytest.raises(SuanliError, match="hybrid_pattern"):
        tiny(hybrid_pattern="MX*")
    with pytest.raises(SuanliError, match="n_layers"):
        tiny(hybrid_pattern="M*EE")
    with pytest.raises(SuanliError, match="n_experts"):
        tiny(n_experts=0, top_k=0)
    with pytest.raises(SuanliError, match="mamba_heads"):
        tiny(mamba_heads=0)
    with pytest.raises(SuanliError, match="mamba_groups"):
        tiny(mamba_groups=3)


def test_mtp_kept_bf16_costs_its_gemms_at_16_bit_only_under_low_precision() -> None:
    """keep_mtp_spec_in_bf16: the MTP depths' GEMMs run at the 16-bit rate while the main
    model's run FP8; at BF16 the flag changes nothing."""
    from dataclasses import replace

    from suanli.perf.train import _mtp_bf16_extra

    light = get_model("nemotron3.5-lightning-30b-a3b")
    assert light.mtp_bf16 and get_model("nemotron3-super-120b-a12b").mtp_bf16
    plain = replace(light, mtp_bf16=False)
    kw = dict(tp=1, pp=1, dp=1, ep=1, mb=1, recompute=0, zero=1)
    spec = dict(seq_len=4096, global_batch=1)
    fp8 = build_hardware(load_catalog().get("nvidia_h100_sxm"), "fp8")
    r_keep = evaluate(TrainSpec(model=light, **spec), fp8, **kw)
    r_fp8 = evaluate(TrainSpec(model=plain, **spec), fp8, **kw)
    diff = float(np.ravel(r_keep["t_gemm"])[0]) - float(np.ravel(r_fp8["t_gemm"])[0])
    m = light
    out_k = float(m.n_heads * m.v_dim)
    in_n = (m.attn_params - out_k * m.d_model) / m.d_model
    extra = _mtp_bf16_extra(m, 4096.0, 1, 1, in_n, out_k, fp8.flops, fp8.flops_16,
                            fp8.hbm_bw, fp8.gemm_bytes, 1.0)
    assert diff > 0.0
    # forward + dgrad + wgrad of two depths
    assert diff == pytest.approx(3.0 * 2 * float(np.ravel(extra)[0]), rel=1e-6)
    bf16 = build_hardware(load_catalog().get("nvidia_h100_sxm"), "bf16")
    a = evaluate(TrainSpec(model=light, **spec), bf16, **kw)
    b = evaluate(TrainSpec(model=plain, **spec), bf16, **kw)
    assert float(np.ravel(a["step_time"])[0]) == float(np.ravel(b["step_time"])[0])


def test_hybrid_layouts_evaluate_as_arrays_like_one_by_one() -> None:
    """The vectorised layout evaluation (arrays of tp / cp / mb, as the search passes them)
    gives each layout the same Mamba time as evaluating it alone."""
    hw = build_hardware(load_catalog().get("nvidia_h100_sxm"), "fp8")
    spec = TrainSpec(model=get_model("nemotron3-nano-30b-a3b"), seq_len=8192, global_batch=64)
    lay = dict(tp=np.array([1, 2, 1]), cp=np.array([1, 1, 2]), mb=np.array([1, 2, 2]),
               pp=np.ones(3), dp=np.array([8, 4, 4]), ep=np.array([8, 8, 8]),
               recompute=np.zeros(3, dtype=int), zero=np.ones(3, dtype=int))
    res = evaluate(spec, hw, **lay)  # type: ignore[arg-type]
    for i in range(3):
        one = evaluate(spec, hw, **{k: v[i].item() for k, v in lay.items()})  # type: ignore[arg-type]
        assert float(np.ravel(res["t_ssd"])[i]) == pytest.approx(
            float(np.ravel(one["t_ssd"])[0]), rel=1e-12)
        assert float(np.ravel(res["t_ssd"])[i]) > 0.0


@pytest.mark.parametrize("name", ["nemotron3.5-lightning-30b-a3b", "nemotron3-super-120b-a12b"])
def test_mtp_kept_bf16_adds_no_fp8_casts(name: str) -> None:
    """keep_mtp_spec_in_bf16: the MTP depths quantise nothing (no activation / gradient casts
    per token, no weight casts per step), so under FP8 they add exactly the element-wise and
    optimizer work they add to a BF16 run; without the flag they add their casts too."""
    from dataclasses import replace

    m = get_model(name)
    base = replace(m, mtp_depth=0, mtp_shared_weights=False, mtp_bf16=False)
    kw = dict(tp=1, pp=1, dp=8, ep=8, mb=1, recompute=0, zero=1)
    spec = dict(seq_len=4096, global_batch=8)
    chip = load_catalog().get("nvidia_h100_sxm")

    def added(model: ModelShape, prec: str, key: str) -> float:
        hw = build_hardware(chip, prec)
        a = evaluate(TrainSpec(model=model, **spec), hw, **kw)  # type: ignore[arg-type]
        b = evaluate(TrainSpec(model=base, **spec), hw, **kw)  # type: ignore[arg-type]
        return float(np.ravel(a[key])[0]) - float(np.ravel(b[key])[0])

    for key in ("t_elementwise", "t_optimizer"):
        bf16 = added(m, "bf16", key)
        assert bf16 > 0.0
        assert added(m, "fp8", key) == pytest.approx(bf16, rel=1e-9)
        assert added(replace(m, mtp_bf16=False), "fp8", key) > bf16 * 1.01
