"""`suanli calibrate`: recovers planted efficiency factors and writes a usable overlay."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from cli_support import run, run_error, run_json
from suanli.catalog.loader import load_catalog
from suanli.perf.validate import mpt_case, predict_case

HEADER = ["model", "d_model", "n_heads", "n_layers", "ffn_mult", "vocab", "seq_len", "chip",
          "n_devices", "devices_per_node", "inter_node_link", "precision", "sharding", "tp",
          "pp", "micro_batch", "grad_accum", "global_batch_seqs", "activation_checkpointing",
          "measured_tokens_per_s_per_device", "notes"]
SHAPES = [("m1", 2048, 16, 24), ("m3", 2560, 20, 32), ("m7", 4096, 32, 32)]
PLANTED = {"compute": 0.55, "memory": 0.6, "link": 0.5}


def _runs(path: Path, chip: str = "A100") -> Path:
    """Runs whose 'measured' throughput is the model's own prediction with PLANTED factors."""
    c = load_catalog().get(chip)
    rows = []
    for name, d, h, layers in SHAPES:
        for seq, n, mb in ((2048, 8, 4), (4096, 16, 2), (8192, 32, 1)):
            row = dict(zip(HEADER, [name, d, h, layers, 4, 50368, seq, chip, n, 8,
                                    "1600 Gbps", "bf16", "FULL_SHARD", 1, 1, mb, 2,
                                    mb * 2 * n, "true", 1.0, "Triton"], strict=True))
            sr = {k: str(v) for k, v in row.items()}
            pred = predict_case(mpt_case(sr), c, efficiency=PLANTED)["tokens_per_s_per_device"]
            sr["measured_tokens_per_s_per_device"] = f"{pred:.3f}"
            rows.append(sr)
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=HEADER)
        w.writeheader()
        w.writerows(rows)
    return path


def test_recovers_planted_factors_and_overlay_is_usable(tmp_path: Path) -> None:
    runs = _runs(tmp_path / "runs.csv")
    out = tmp_path / "overlay.yaml"
    d = run_json("calibrate", str(runs), "--out", str(out), "--no-loo")
    fit = d["chips"][0]
    assert fit["chip"] == "nvidia_a100_sxm_80" and fit["runs"] == 9
    # compute dominates these FSDP runs: the fit moves it most of the way from the prior to
    # the planted value (the prior keeps factors the runs cannot separate near the evidence)
    gap = abs(fit["prior"]["compute"] - PLANTED["compute"])
    assert abs(fit["fitted"]["compute"] - PLANTED["compute"]) < 0.4 * gap
    over = yaml.safe_load(out.read_text())
    assert over["chips"][0]["efficiency"] == fit["fitted"]
    # the overlay drives every command: estimates become 'calibrated' and predict the runs
    est = run_json("estimate", "train", "--model", "llama2-7b", "--chip", "A100", "--devices",
                   "8", "--catalog", str(out))
    assert est["confidence"]["class"] == "calibrated"
    v = run_json("validate", "--data", str(tmp_path), "--catalog", str(out))
    v0 = run_json("validate", "--data", str(tmp_path))
    assert v["summary"]["median_abs_error_pct"] < 0.4 * v0["summary"]["median_abs_error_pct"]


def test_leave_one_out_and_holdout(tmp_path: Path) -> None:
    runs = _runs(tmp_path / "runs.csv")
    (tmp_path / "hold").mkdir()
    hold = _runs(tmp_path / "hold" / "more.csv")
    d = run_json("calibrate", str(runs), "--holdout", str(hold))
    fit = d["chips"][0]
    assert len(fit["loo_after_pct"]) == 9
    assert fit["loo_median_abs_error_after_pct"] < 0.4 * fit["loo_median_abs_error_before_pct"]
    h = d["holdout"]
    assert h["after"]["median_abs_error_pct"] < 0.4 * h["before"]["median_abs_error_pct"]
    out = run("calibrate", str(runs), "--no-loo")
    assert "A100 SXM4 80GB" in out and "->" in out


def test_bad_input(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_bytes(b"\x00\x01garbage")
    assert "x.csv" in run_error(capsys, "calibrate", str(tmp_path / "x.csv"))
    assert "file not found" in run_error(capsys, "calibrate", str(tmp_path / "none.csv"))
