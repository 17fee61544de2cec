"""Inference validation on the bundled, cited serving measurements."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import run, run_json
from suanli.catalog.loader import load_catalog
from suanli.perf.infer_validate import default_file, predict_serving, run_infer_validation
from suanli.perf.validate import read_csv


def test_every_row_is_cited_and_predicted() -> None:
    _cols, rows = read_csv(default_file())
    assert rows and all("docs.nvidia.com" in r["source"] for _, r in rows)
    res = run_infer_validation(load_catalog().get)
    assert all(r.predicted is not None for r in res)


def test_serving_model_mechanics() -> None:
    h100 = load_catalog().get("H100")
    one = predict_serving("llama3-70b", h100, 2, 2, "fp8", 5000, 500, 1)
    many = predict_serving("llama3-70b", h100, 2, 2, "fp8", 5000, 500, 50)
    assert many["itl_ms"] > one["itl_ms"]  # bigger decode batch + interleaved prefills
    assert many["output_tokens_per_s"] > 10 * one["output_tokens_per_s"]
    assert one["output_tokens_per_s"] == pytest.approx(
        500 / (one["ttft_ms"] / 1e3 + 500 * one["itl_ms"] / 1e3))


def test_validate_infer_cli(tmp_path: Path) -> None:
    d = run_json("validate", "--data", str(_mpt_dir(tmp_path)),
                 "--infer")
    s = d["inference"]["summary"]
    assert s["predicted"] == s["rows"] >= 5
    # current figure (docs/perf-model.md): 19.5 %; guards regressions
    assert s["median_abs_error_pct"] <= 22.0
    out = run("validate", "--data", str(_mpt_dir(tmp_path)), "--no-rows", "--infer")
    assert "inference validation" in out and "target <= 20 %" in out


def _mpt_dir(tmp_path: Path) -> Path:
    d = tmp_path / "v"
    d.mkdir(exist_ok=True)
    (d / "rows.csv").write_text(
        "model,d_model,n_heads,n_layers,ffn_mult,vocab,seq_len,chip,n_devices,devices_per_node,"
        "inter_node_link,precision,sharding,tp,pp,micro_batch,grad_accum,global_batch_seqs,"
        "activation_checkpointing,measured_tokens_per_s_per_device,measured_mfu_pct,notes\n"
        "MPT-7b,4096,32,32,4,50368,2048,A100,8,8,1600 Gbps,bf16,FULL_SHARD,1,1,6,2,96,false,"
        "4641,64.23,Triton attention\n")
    return d
