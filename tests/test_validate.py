"""`suanli validate` on small files: both row formats, unreadable files, unexpressible rows."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cli_support import run, run_error, run_json
from suanli.catalog.loader import load_catalog
from suanli.errors import SuanliError
from suanli.perf.validate import nemo_case, read_csv, run_validation, stack_of

NEMO_HEADER = ("model,system,precision,n_devices,global_batch_seqs,micro_batch,seq_len,fsdp,tp,"
               "pp,cp,vp,ep,ga,measured_tokens_per_s_per_device,"
               "measured_model_tflops_per_device,container,source,notes")


def _nemo(tmp_path: Path, *rows: str) -> Path:
    (tmp_path / "nemo.csv").write_text(NEMO_HEADER + "\n" + "\n".join(rows) + "\n")
    return tmp_path


def test_nemo_rows_predicted_or_explained(tmp_path: Path) -> None:
    d = run_json("validate", "--data", str(_nemo(
        tmp_path,
        "LLAMA3_70B,DGX-H100,FP8,64,256,1,8192,0,4,8,1,5,,,1664,731,26.04.01,src,",
        "LLAMA3_8B,DGX-B200,BF16,8,128,2,8192,0,1,1,1,,1,8,30624,1576,25.11,src,",
        "Nemotron_3_Nano,DGX-H100,FP8,16,1024,1,8192,0,1,1,1,,8,,14336,321,26.04.01,src,",
        "LLAMA3_70B,DGX-H100,NVFP4,64,256,2,8192,0,1,1,1,,,,7002,3147,26.02.01,src,",
        "LLAMA3_70B,DGX-Z900,BF16,64,256,2,8192,0,1,1,1,,,,7002,3147,26.02.01,src,",
        "LLAMA3_70B,DGX-H100,FP8,64,255,1,8192,0,4,8,1,5,,,1664,731,26.04.01,src,",
        "LLAMA3_70B,DGX-GB300,NVFP4,64,256,2,8192,0,1,1,1,,,,7002,3147,26.02.01,src,",
    )))
    rows = d["rows"]
    assert [r["predicted"] is not None for r in rows] == [True, True, True, False, False, False,
                                                          True]
    # NVFP4 on a Blackwell Ultra system: GEMMs at the datasheet FP4 peak, MFU against it
    assert rows[6]["precision"] == "NVFP4" and rows[6]["gemm_precision"] == "fp4"
    assert rows[0]["chip"] == "H100 SXM5 80GB" and rows[0]["framework"] == "megatron"
    assert rows[0]["precision"] == "FP8"
    # hybrid Mamba-Transformer rows are predicted since the Mamba-2 operators exist
    assert rows[2]["architecture"] == "hybrid Mamba" and not rows[2]["problem"]
    assert "FP4" in rows[3]["problem"]
    assert "unknown system" in rows[4]["problem"]
    assert "not divisible" in rows[5]["problem"]
    g = d["groups"]
    assert g["chip"]["H100 SXM5 80GB"]["rows"] == 4 and g["chip"]["B200"]["predicted"] == 1
    out = run("validate", "--data", str(tmp_path), "--no-rows")
    assert "nemo.csv: 4 of 7 rows in the headline (3 not predicted)" in out
    assert "rows not predicted (3)" in out


def test_nemo_layout_decoding() -> None:
    line = "Qwen3_235B_a22B,DGX-H100,FP8-CS,256,2048,1,4096,0,2,8,1,4,32,128,1575,233,25.11,s,"
    row = dict(zip(NEMO_HEADER.split(","), line.split(","), strict=True))
    c = nemo_case(row)
    assert (c.tp, c.pp, c.cp, c.vp, c.ep, c.dp, c.ga) == (2, 8, 1, 4, 32, 16, 128)
    assert c.precision == "fp8" and c.zero == 1 and c.model.name == "qwen3-235b-a22b"
    row["fsdp"] = "64"
    assert nemo_case(row).zero == 3


def test_blackwell_fallback_chips_only_when_catalogue_lacks_them(tmp_path: Path) -> None:
    rep = run_validation(None, load_catalog().get, files=[_nemo(
        tmp_path, "LLAMA3_8B,DGX-GB200,FP8-CS,8,128,2,8192,0,1,1,1,,1,8,31508,1622,25.11,s,"
    ) / "nemo.csv"])
    assert rep.rows[0].predicted is not None and rep.rows[0].chip == "GB200"


def test_binary_validation_file_is_one_error(capsys: pytest.CaptureFixture[str],
                                             tmp_path: Path) -> None:
    (tmp_path / "garbage.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe" * 50)
    err = run_error(capsys, "validate", "--data", str(tmp_path))
    assert "garbage.csv" in err and "binary" in err
    (tmp_path / "garbage.csv").write_bytes(b"model,chip\n\xff\xfe\xfa,x\n")
    err = run_error(capsys, "validate", "--data", str(tmp_path))
    assert "garbage.csv" in err and "UTF-8" in err


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_read_or_one_error(blob: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "x.csv"
        p.write_bytes(blob)
        try:
            cols, rows = read_csv(p)
        except SuanliError as exc:
            assert "x.csv" in exc.render() and "\n" not in exc.render()
        else:
            assert isinstance(cols, list) and isinstance(rows, list)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(alphabet="0123456789,.-xAB", max_size=12), min_size=19, max_size=19))
def test_any_nemo_row_predicted_or_explained(cells: list[str]) -> None:
    """Arbitrary cell values in a NeMo-format row never raise: predicted or a reason."""
    import tempfile

    cells[0], cells[1] = "LLAMA3_8B", "DGX-H100"
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "n.csv"
        import csv

        with p.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(NEMO_HEADER.split(","))
            w.writerow(cells)
        rep = run_validation(None, load_catalog().get, files=[p])
        for r in rep.rows:
            assert (r.predicted is None) == bool(r.problem)


def test_cross_chip_rows_use_specs_and_microbenchmarks_only() -> None:
    """Nothing in the model is derived from the Blackwell end-to-end rows: their chips run on
    datasheet figures with the generic efficiency defaults (no evidence entry matches them), and
    the validation reports their error per chip."""
    from suanli.perf.efficiency import factors_for
    from suanli.perf.validate import fallback_chips

    chips = [load_catalog().get("B200"), *{c.id: c for c in fallback_chips().values()}.values()]
    assert {c.id for c in chips} >= {"nvidia_b200", "nvidia_b300", "nvidia_gb200_b200",
                                     "nvidia_gb300_b300"}
    for c in chips:
        f = factors_for(c, "fp8")
        # generic defaults, or a cited micro-benchmark (the HGX B200's GEMM sweep and HBM
        # 'add', the GB300 cuBLAS matmul, Transformer Engine's HGX B300 GEMM benchmark);
        # never a figure from the NeMo rows
        assert f.source == "generic defaults" or "pytorch/ao PR #2427" in f.source or \
            "NCCL all-reduce" in f.source or "TransformerEngine" in f.source, (c.id, f.source)
        assert "nemo" not in f.source.lower() and "megatron" not in f.source.lower()
        assert not c.efficiency
    b200 = factors_for(load_catalog().get("B200"), "fp4")
    assert b200.compute == pytest.approx(5370 / 9000)
    # GB200 (same die): the HGX B200's measured fraction, not its absolute TFLOPS; Blackwell
    # Ultra parts (another die) keep the generic defaults
    gb200 = factors_for(fallback_chips()["gb200"], "fp8")
    assert gb200.compute == pytest.approx(1420 / 2250) and "same die" in gb200.source
    assert factors_for(load_catalog().get("B200"), "bf16").memory == pytest.approx(6721 / 8000)
    assert gb200.memory == pytest.approx(6721 / 8000)  # same HBM3e stacks and die
    # Blackwell Ultra (perf8): the HGX B300 runs Transformer Engine's measured kernel rates
    # per precision; GB300 its own cuBLAS 16-bit figure and the B300's low-precision fractions
    b300 = load_catalog().get("B300")
    assert factors_for(b300, "bf16").compute == pytest.approx(1496.9 / 2250)
    assert factors_for(b300, "fp8").compute == pytest.approx(3009.4 / 4500)
    assert factors_for(b300, "fp4").compute == pytest.approx(6007.1 / 13500)
    assert factors_for(b300, "fp8").fp8_block == pytest.approx(2862.7 / 3009.4)
    assert factors_for(b300, "bf16").fp8_block == 1.0
    gb300 = factors_for(fallback_chips()["gb300"], "fp8")
    assert gb300.compute == pytest.approx(3009.4 / 4500)
    assert factors_for(fallback_chips()["gb300"], "bf16").compute == pytest.approx(1717.37 / 2500)
    assert gb300.link == pytest.approx(811 / 900)  # NVL72 NVLink all-reduce measurement
    assert factors_for(b300, "fp8").link == pytest.approx(0.70)
    assert factors_for(b300, "fp8").memory == pytest.approx(0.80)  # no B300 HBM measurement
    # HGX H100: NCCL's effective NVLink ring bandwidth (nccl-tests #212); H800 keeps the default
    assert factors_for(load_catalog().get("H100"), "fp8").link == pytest.approx(370 / 450)
    assert factors_for(load_catalog().get("H800"), "fp8").link == pytest.approx(0.70)
    # chips without a block-scaled measurement run MXFP8 at their FP8 rate
    assert factors_for(load_catalog().get("B200"), "fp8").fp8_block == 1.0


def test_b300_gemm_evidence_is_the_te_benchmark_at_the_reference_shape() -> None:
    """B300_TE_GEMM_TFLOPS are Transformer Engine's published per-layer kernel times (5B config,
    M = 15,872, pre-quantized) divided by the model's own shape factors for those 12 GEMMs --
    recomputed here from the raw milliseconds so the derivation cannot drift."""
    from suanli.perf.efficiency import B300_TE_GEMM_TFLOPS, gemm_rows_factor, gemm_shape_factor

    shapes = [(15872, 12288, 4096), (15872, 4096, 4096), (15872, 16384, 4096),
              (15872, 4096, 16384)]
    per_layer_ms = {"bf16": (2.0, 13.102), "fp8": (1.0, 6.812), "mxfp8": (1.0, 7.161),
                    "nvfp4": (0.5, 3.764)}
    for key, (in_bytes, ms) in per_layer_ms.items():
        sc = 2.0 / in_bytes
        raw = 3 * sum(2.0 * m * n * k for m, n, k in shapes) / (ms * 1e-3) / 1e12
        ref = 3 * sum(2.0 * m * n * k / (float(gemm_shape_factor(min(n, k) / sc))
                                         * float(gemm_rows_factor(m / sc)))
                      for m, n, k in shapes) / (ms * 1e-3) / 1e12
        assert ref == pytest.approx(B300_TE_GEMM_TFLOPS[key], abs=0.1), key
        assert ref >= raw  # the reference shape is never harder than the measured ones
    # raw rates as printed by the benchmark: 1463 / 2815 / 2677 / 5094 TFLOPS
    assert 3 * sum(2.0 * m * n * k for m, n, k in shapes) / 13.102e-3 / 1e12 == \
        pytest.approx(1463.3, abs=0.5)


def test_mxfp8_gemms_run_at_the_block_scaled_rate_where_measured() -> None:
    """On B300 (measured) the FP8 GEMMs of an MXFP8 step run at 0.951 of the per-tensor FP8
    rate; on a chip without the measurement (B200) the two recipes' GEMM time is the same."""
    from suanli.perf.hardware import build_hardware
    from suanli.perf.models import get_model
    from suanli.perf.train import TrainSpec, evaluate

    model = get_model("llama3-8b")
    for chip_name, ratio in (("B300", 2862.7 / 3009.4), ("B200", 1.0)):
        hw = build_hardware(load_catalog().get(chip_name), "fp8")
        t = {}
        for recipe in ("fp8-current", "fp8-block"):
            spec = TrainSpec(model=model, seq_len=8192, global_batch=64, fp8_recipe=recipe)
            res = evaluate(spec, hw, tp=1, pp=1, dp=8, cp=1, ep=1, mb=1, recompute=0, zero=1)
            t[recipe] = float(res["t_gemm"][0]) if hasattr(res["t_gemm"], "__len__") \
                else float(res["t_gemm"])
        # the LM head stays 16-bit under either recipe, so the step's GEMM time grows by a bit
        # less than 1 / ratio (Llama 3 8B: its head is ~12 % of the GEMM time)
        if ratio == 1.0:
            assert t["fp8-block"] == pytest.approx(t["fp8-current"], rel=1e-12), chip_name
        else:
            assert 1.0 + 0.8 * (1 / ratio - 1) < t["fp8-block"] / t["fp8-current"] < 1 / ratio


def test_nemo_file_accuracy_does_not_regress() -> None:
    """Current figures (docs/perf-model.md): NeMo headline median |error| 15.4 % over 72 rows
    (mean signed +18.4 %), MPT 7.7 %. MPT meets the issue's
    target (<= 10 % per file); NeMo does not yet, this guards against regressions. History:
    13.5 % at 12.8 %; round 5 added the FP8 casts of every routed MoE copy and moved the median
    to 13.6 % (56 rows). Round 6 (issue 7, hybrid Mamba) made the 16 headline rows of the
    Nemotron 3 hybrid Mamba-Transformer models (and the DeepSeek-V3 w/ MTP row) predictable:
    they come out 45-85 % optimistic except Ultra (+3 / +29 %) and Super on B200 (+17 / -2 %),
    which moved the file's headline median to 17.3 %. Round 7 (recipe recompute settings,
    `recompute_modules` per row from the Megatron-Bridge files) moved it to 17.0 % (mean signed
    +19.4 -> +18.6 %). Round 8, two parts: (mamba7) the Mamba-2 mixer kernel by kernel and the
    Nemotron 3 MTP depths in BF16 moved the hybrid group +43.3 -> +34.8 %; (moe7) attention
    efficiency by head dimension (FA3 paper kernel sweep), the recipes' MoE all-to-all overlap
    (`moe_a2a_overlap`, from the Megatron-Bridge workload configs), the expert optimizer shard
    over the expert-DP group and the GPT-3 5B launcher config's dropout moved the 56 dense /
    MoE rows 13.6 -> 12.2 % but made four GPT-OSS rows whose recipes set the all-to-all
    overlap (sourced: gpt_oss_workload_base_configs.py) faster still (they were already
    optimistic -- a cost of GPT-OSS is missing, see docs/perf-model.md). Together: headline
    median 17.0 -> 15.4 %, mean signed +18.6 -> +18.2 %. The Blackwell systems' errors (specs
    and micro-benchmarks only, nothing derived from their rows) are reported per chip."""
    from statistics import median

    from needs import shared_file

    data = shared_file("data/validation/nemo_megatron_pretraining.csv").parent
    rep = run_validation(data, load_catalog().get)
    g = rep.groups()["file"]
    # all 134 predicted rows (superseded included): 16.5 -> 16.9 (perf8) -- the H100 NVLink ring
    # figure (NCCL, 370 of 450 GB/s) makes the 28 H100 rows, already optimistic, 1-5 points more
    # so; the Blackwell micro-benchmarks alone had taken this median to 16.2
    assert g["nemo_megatron_pretraining.csv"]["median_abs_error_pct"] <= 16.9
    assert g["mpt_a100_training.csv"]["median_abs_error_pct"] <= 10.0
    head = rep.headline()
    # 15.5 -> 16.7 (perf8): the Blackwell Ultra parts' generic 0.70 GEMM factor was replaced by
    # micro-benchmarks (Transformer Engine's HGX B300 GEMM benchmark per precision, cuBLAS on
    # GB300) and B200 / GB200 got a measured HBM figure (CUB 'add'). Mean signed +18.4 ->
    # +16.6 %, B300 +36.2 -> +30.4 %, NVFP4 +25.9 -> +18.0 %, the 56 dense / MoE rows 12.3 ->
    # 12.0 %; the headline median rises because GB300 dense rows that sat near 0 with the
    # generic factor become 3-12 % pessimistic. Sourced, kept although the median is worse.
    assert head["nemo_megatron_pretraining.csv"]["headline"]["median_abs_error_pct"] <= 16.7
    # 18.3 -> 18.4 (perf7b): two sourced mechanisms make already-optimistic rows faster --
    # the MTP depths kept BF16 by `keep_mtp_spec_in_bf16` no longer pay FP8 casts, and the
    # five Blackwell MXFP8 rows whose workload configs set `fp8_dot_product_attention`
    # (deepseek / gpt_oss *_workload_base_configs.py) run the attention forward at the
    # FlashAttention-3 paper's FP8 rate. Nothing fitted; kept although worse.
    # 18.4 -> 16.9 (perf8; measured 16.82): the Blackwell micro-benchmarks take it to 16.6,
    # the H100 NVLink ring bandwidth from NCCL (370 of 450 GB/s, not the generic 0.70) to 16.9,
    # no FP8 attention for GPT-OSS's sink attention (TE has no FP8 backend for it) to 16.8
    # 16.9 -> 16.0 (moe8; measured 15.91): GPT-OSS's expert output bias, added per local expert
    # in eager PyTorch by Megatron-Core's TEGroupedMLP._apply_bias (memory-bound), takes the 8
    # GPT-OSS headline rows 5-10 points less optimistic; no other row moves
    assert head["nemo_megatron_pretraining.csv"]["headline"]["mean_signed_error_pct"] <= 16.0
    assert head["nemo_megatron_pretraining.csv"]["headline"]["predicted"] == 72
    old = [abs(r.error_pct) for r in rep.rows
           if r.file == "nemo_megatron_pretraining.csv" and r.stack == "current"
           and r.error_pct is not None and r.architecture in ("dense", "MoE")]
    assert len(old) == 56 and median(old) <= 12.1
    assert head["mpt_a100_training.csv"]["superseded"] == 0
    hybrid = rep.groups(headline=True)["architecture"]["hybrid Mamba"]
    assert hybrid["predicted"] == 16 and hybrid["mean_signed_error_pct"] <= 32.9
    assert hybrid["median_abs_error_pct"] <= 37.3
    chips = rep.groups(headline=True)["chip"]
    for name in ("B200", "B300", "GB200", "GB300"):
        assert chips[name]["predicted"] >= 5 and chips[name]["mean_signed_error_pct"] is not None


def test_stack_and_architecture_groups(tmp_path: Path) -> None:
    """A row measured again on a newer container is reported as 'superseded'; MoE vs dense."""
    rep = run_validation(_nemo(
        tmp_path,
        "Qwen3_30B_a3B,DGX-B200,MXFP8,8,512,4,4096,0,1,1,1,,8,,27136,1,26.04.01,src,",
        "Qwen3_30B_a3B,DGX-B200,FP8-MX,8,512,1,4096,0,1,1,1,,8,,9299,1,25.11,src,",
        "Qwen3_30B_a3B,DGX-H100,FP8-CS,16,512,2,4096,0,1,2,1,24,8,,5275,1,25.11,src,",
        "LLAMA3_8B,DGX-B200,BF16,8,128,2,8192,0,1,1,1,,1,8,30624,1576,25.11,src,",
    ), load_catalog().get)
    by_line = {r.line: r for r in rep.rows}
    assert by_line[2].stack == "current" and by_line[3].stack == "superseded"
    assert by_line[4].stack == "current"  # another system: not the same measurement
    assert by_line[2].architecture == "MoE" and by_line[5].architecture == "dense"
    g = rep.groups()
    assert g["stack"]["superseded"]["rows"] == 1 and g["architecture"]["MoE"]["rows"] == 3
    # rows without a container (the MPT format) are one stack
    assert stack_of([(2, {"model": "MPT-7b", "chip": "A100"})]) == {}


def test_headline_leaves_superseded_rows_out(tmp_path: Path) -> None:
    """The headline per file is judged on current-stack rows; superseded ones get their own
    figures and stay in the 'stack' group."""
    rep = run_validation(_nemo(
        tmp_path,
        "Qwen3_30B_a3B,DGX-B200,MXFP8,8,512,4,4096,0,1,1,1,,8,,27136,1,26.04.01,src,",
        "Qwen3_30B_a3B,DGX-B200,FP8-MX,8,512,1,4096,0,1,1,1,,8,,9299,1,25.11,src,",
        "LLAMA3_8B,DGX-B200,BF16,8,128,2,8192,0,1,1,1,,1,8,30624,1576,25.11,src,",
    ), load_catalog().get)
    by_line = {r.line: r for r in rep.rows}
    h = rep.headline()["nemo.csv"]
    assert h["superseded"] == 1 and h["headline"]["predicted"] == 2
    cur = [by_line[2].error_pct, by_line[4].error_pct]
    assert h["headline"]["mean_signed_error_pct"] == pytest.approx(sum(cur) / 2)
    assert h["superseded_rows"]["mean_signed_error_pct"] == pytest.approx(by_line[3].error_pct)
    assert h["all_predicted"]["predicted"] == 3
    hg = rep.groups(headline=True)
    assert hg["chip"]["B200"]["predicted"] == 2 and hg["stack"]["superseded"]["predicted"] == 1


def test_rack_systems_use_their_own_datasheet_entry(tmp_path: Path) -> None:
    """DGX-GB200 / GB300 rows use the NVL72 datasheet entries (higher power limit: 5000 FP8
    dense), not the HGX B300 part the catalogue's GB300 alias names (4500)."""
    from suanli.perf.validate import _resolver

    rep = run_validation(_nemo(
        tmp_path,
        "LLAMA3_70B,DGX-GB300,FP8,64,256,2,8192,64,1,1,1,,,,5248,2348,26.04.01,src,",
        "LLAMA3_70B,DGX-B300,FP8,64,256,2,8192,64,1,1,1,,,,5248,2348,26.04.01,src,",
    ), load_catalog().get)
    assert [r.chip_id for r in rep.rows] == ["nvidia_gb300_b300", "nvidia_b300"]
    assert [r.chip for r in rep.rows] == ["GB300", "B300"]  # group labels stay the system's
    gb300 = _resolver(load_catalog().get)("system:nvidia_gb300_b300")
    assert gb300.tflops("fp8") == 5000 and gb300.tflops("fp4") == 15000
    assert rep.rows[0].predicted > rep.rows[1].predicted


def test_moe_dispatcher_is_the_recipes_recorded_input() -> None:
    """The dispatcher comes from NeMo's public recipe table per model / system / precision."""
    from suanli.perf.validate import nemo_dispatch

    assert nemo_dispatch("deepseek-v3", "dgxb200", "MXFP8") == "deepep"
    assert nemo_dispatch("qwen3-235b-a22b", "dgxb200", "MXFP8") == "alltoall"
    assert nemo_dispatch("qwen3-235b-a22b", "dgxgb200", "BF16") == "deepep"
    assert nemo_dispatch("gpt-oss-120b", "dgxgb300", "BF16") == "alltoall"
    assert nemo_dispatch("gpt-oss-120b", "dgxgb300", "MXFP8") == "deepep"
    assert nemo_dispatch("llama3-70b", "dgxh100", "FP8") == "alltoall"
    row = {"model": "DeepSeekV3", "system": "DGX-B200", "precision": "MXFP8",
           "n_devices": "256", "global_batch_seqs": "4096", "micro_batch": "1",
           "seq_len": "4096", "pp": "8", "vp": "2", "ep": "32"}
    assert nemo_case(row).ep_dispatch == "deepep"


def test_plain_fp8_label_is_current_scaling_on_megatron_bridge_containers() -> None:
    """Megatron-Bridge's performance harness offers only fp8_cs / fp8_mx / fp8_sc presets: a
    row labelled plain "FP8" on its containers ran current scaling; the 24.07 rows (before
    Transformer Engine had current scaling) ran delayed scaling. Explicit labels win."""
    from suanli.perf.validate import fp8_recipe_of

    assert fp8_recipe_of("fp8", "26.04.01") == "fp8-current"
    assert fp8_recipe_of("fp8", "25.11") == "fp8-current"
    assert fp8_recipe_of("fp8", "24.07") == "fp8-delayed"
    assert fp8_recipe_of("fp8", None) == "fp8-delayed"
    assert fp8_recipe_of("fp8ds", "26.06") == "fp8-delayed"
    assert fp8_recipe_of("mxfp8", "26.06") == "fp8-block"
    assert fp8_recipe_of("fp8cs", "24.07") == "fp8-current"
    assert fp8_recipe_of("bf16", "26.06") == "fp8-delayed"  # unused for 16-bit rows
