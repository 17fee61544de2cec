"""`suanli estimate train|infer|hpc` and `suanli validate` through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cli_support import run, run_error, run_json
from needs import shared_file
from suanli.catalog.loader import ENV_VAR, load_catalog
from suanli.commands import common

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _no_env_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(common.console, "width", 250)


@pytest.fixture(scope="module")
def extra_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Test chips: an A100 40GB variant (the validation data uses it) and a chip with no FP64."""
    a100 = load_catalog().get("nvidia_a100_sxm_80").model_dump(mode="json", exclude_none=True)
    forty = json.loads(json.dumps(a100))
    forty.update(id="test_a100_sxm_40", name="Test A100 SXM4 40GB",
                 aliases=["TEST-A100-40"])
    forty["memory"]["size_gb"]["value"] = 40
    forty["memory"]["bandwidth_gbs"]["value"] = 1555
    nofp64 = json.loads(json.dumps(a100))
    nofp64.update(id="test_nofp64", name="Test NoFP64 AI", aliases=["NOFP64"])
    nofp64["peak"]["fp64"] = {"unsupported": True, "note": "test chip"}
    nofp64["peak"]["fp64_tensor"] = {"unsupported": True, "note": "test chip"}
    path = tmp_path_factory.mktemp("cat") / "extra.yaml"
    path.write_text(yaml.safe_dump({"chips": [forty, nofp64]}, allow_unicode=True))
    return path


def test_train_json_and_table() -> None:
    d = run_json("estimate", "train", "--model", "llama2-7b", "--chip", "A100", "--devices",
                 "64", "--seq-len", "4096", "--global-batch", "512", "--tokens", "1e12")
    assert d["layout"]["tp"] * d["layout"]["pp"] * d["layout"]["dp"] * d["layout"]["cp"] == 64
    assert 0 < d["mfu"] < 1 and d["time_to_train_s"] > 0 and d["energy_kwh"] > 0
    assert set(d["breakdown_s"]) == {"compute", "memory", "communication", "bubble"}
    out = run("estimate", "train", "--model", "llama2-7b", "--chip", "A100", "--devices", "64",
              "--search", "--top", "3")
    assert "fastest fitting layouts" in out and "MFU" in out


def test_train_explicit_layout() -> None:
    d = run_json("estimate", "train", "--model", "llama2-13b", "--chip", "A100", "--devices",
                 "32", "--tp", "4", "--pp", "2", "--micro-batch", "1", "--recompute", "full",
                 "--zero", "1", "--global-batch", "64")
    assert d["layout"] == {"tp": 4, "pp": 2, "dp": 4, "cp": 1, "ep": 1, "micro_batch": 1,
                           "grad_accum": 16, "recompute": "full", "zero": 1, "vp": 1}
    assert d["searched"] == 0 and d["breakdown_s"]["bubble"] > 0


def test_train_custom_shape_and_compare(extra_catalog: Path) -> None:
    d = run_json("estimate", "train", "--layers", "12", "--d-model", "768", "--heads", "12",
                 "--ffn-hidden", "3072", "--vocab", "50257", "--ffn", "gelu", "--chip", "A100",
                 "--devices", "8", "--global-batch", "64", "--seq-len", "1024")
    assert d["model"] == "custom"
    rows = run_json("estimate", "train", "--model", "llama2-7b", "--chip", "A100", "--chip",
                    "A100-40GB", "--devices", "16", "--precision", "bf16", "--catalog",
                    str(extra_catalog))
    assert len(rows) == 2 and rows[0]["tokens_per_s"] >= rows[1]["tokens_per_s"] * 0.99
    out = run("estimate", "train", "--model", "llama2-7b", "--chip", "A100", "--chip",
              "NOFP64", "--devices", "16", "--precision", "fp8", "--catalog", str(extra_catalog))
    assert "cannot run: A100 SXM4 80GB has no FP8" in out


def test_infer_and_hpc(extra_catalog: Path) -> None:
    d = run_json("estimate", "infer", "--model", "llama2-70b", "--chip", "A100", "--devices",
                 "8", "--batch", "32", "--prompt", "2048", "--output", "512")
    assert d["tp"] == 8 and d["ttft_s"] > 0 and d["tpot_s"] > 0 and d["fits"]
    assert d["output_tokens_per_s"] < d["decode_tokens_per_s"]
    h = run_json("estimate", "hpc", "--kernel", "hpl", "--chip", "A100", "--devices", "8")
    assert h["unit"] == "flop/s" and h["rate"] > 1e14
    s = run_json("estimate", "hpc", "--kernel", "stream", "--chip", "A100", "--devices", "2")
    assert s["unit"] == "byte/s"
    out = run("estimate", "hpc", "--chip", "A100", "--chip", "NOFP64", "--devices", "4",
              "--catalog", str(extra_catalog))
    assert "cannot run: Test NoFP64 AI has no FP64" in out


def test_hpc_missing_fp64_is_one_line(capsys: pytest.CaptureFixture[str],
                                      extra_catalog: Path) -> None:
    err = run_error(capsys, "estimate", "hpc", "--chip", "NOFP64", "--devices", "4",
                    "--catalog", str(extra_catalog))
    assert err == "error: cannot run: Test NoFP64 AI has no FP64"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--model", "gpt-9", "--chip", "A100", "--devices", "8"], "unknown model 'gpt-9'"),
        (["--model", "llama2-7b", "--chip", "Z9000", "--devices", "8"], "unknown chip 'Z9000'"),
        (["--model", "llama2-7b", "--chip", "A100", "--devices", "-8"],
         "--devices: must be >= 1"),
        (["--model", "llama2-7b", "--chip", "A100", "--devices", "12", "--tp", "8"],
         "must be divisible by tp*pp*cp"),
        (["--model", "llama3-70b", "--chip", "A100", "--devices", "8", "--tp", "8", "--zero", "0",
          "--global-batch", "8"], "does not fit: needs"),
        (["--model", "llama2-7b", "--chip", "A100", "--devices", "8", "--precision", "fp8"],
         "cannot run: A100 SXM4 80GB has no FP8"),
        (["--model", "llama2-7b", "--chip", "A100", "--devices", "8", "--recompute", "most"],
         "recompute must be one of"),
        (["--model", "llama2-7b", "--chip", "A100", "--devices", "8", "--zero", "7"],
         "zero must be"),
        (["--model", "llama2-7b", "--chip", "A100", "--devices", "8", "--eff-compute", "2"],
         "--eff-compute: must be > 0 and <= 1, got 2"),
    ],
)
def test_train_bad_input(capsys: pytest.CaptureFixture[str], args: list[str], needle: str) -> None:
    err = run_error(capsys, "estimate", "train", *args)
    assert needle in err


def test_does_not_fit_message_suggests_fix(capsys: pytest.CaptureFixture[str]) -> None:
    err = run_error(capsys, "estimate", "train", "--model", "llama3-70b", "--chip", "A100",
                    "--devices", "8", "--tp", "8", "--zero", "0", "--global-batch", "8")
    assert "A100 SXM4 80GB has 80 GB; try --zero 3 or more devices" in err


def test_infer_hpc_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert "does not fit" in run_error(capsys, "estimate", "infer", "--model", "llama3-405b",
                                       "--chip", "A100", "--devices", "1")
    assert "kernel must be hpl or stream" in run_error(capsys, "estimate", "hpc", "--kernel",
                                                       "linpack", "--chip", "A100", "--devices",
                                                       "1")
    line = run_error(capsys, "estimate", "infer", "--model", "llama2-7b", "--chip", "A100",
                     "--devices", "0")
    assert "--devices: must be >= 1" in line


def test_validate_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    err = run_error(capsys, "validate", "--data", str(tmp_path / "nowhere"))
    assert "validation data directory not found" in err
    (tmp_path / "bad.csv").write_text("model,chip\nx,A100\n")
    assert "missing column(s)" in run_error(capsys, "validate", "--data", str(tmp_path))


def test_validate_small_file(tmp_path: Path) -> None:
    header = ("model,d_model,n_heads,n_layers,ffn_mult,vocab,seq_len,chip,n_devices,"
              "devices_per_node,inter_node_link,precision,sharding,tp,pp,micro_batch,grad_accum,"
              "global_batch_seqs,activation_checkpointing,measured_tokens_per_s_per_device,"
              "measured_mfu_pct,notes")
    rows = ["MPT-7b,4096,32,32,4,50368,2048,A100,8,8,1600 Gbps,bf16,FULL_SHARD,1,1,6,2,96,false,"
            "4641,64.23,Triton attention",
            "MPT-7b,4096,32,32,4,50368,2048,NoSuchChip,8,8,1600 Gbps,bf16,FULL_SHARD,1,1,6,2,96,"
            "false,4641,64.23,x"]
    (tmp_path / "rows.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    d = run_json("validate", "--data", str(tmp_path))
    assert d["summary"]["rows"] == 2 and d["summary"]["predicted"] == 1
    r = d["rows"][0]
    assert r["error_pct"] == pytest.approx((r["predicted"] - 4641) / 4641 * 100)
    assert "unknown chip" in d["rows"][1]["problem"]


def test_validation_median_error_target(extra_catalog: Path) -> None:
    """Every file of ../shared/data/validation is read; every row is predicted or carries the
    reason it cannot be; the MPT/A100 file keeps its median |error| target."""
    data = shared_file("data/validation/mpt_a100_training.csv").parent
    shared_file("data/validation/nemo_megatron_pretraining.csv")
    d = run_json("validate", "--data", str(data), "--catalog", str(extra_catalog))
    s = d["summary"]
    assert s["rows"] >= 270 and s["predicted"] + s["skipped"] == s["rows"]
    assert set(d["files"]) >= {"mpt_a100_training.csv", "nemo_megatron_pretraining.csv"}
    for r in d["rows"]:
        assert (r["predicted"] is None) == bool(r["problem"]), r
    by_file = d["groups"]["file"]
    assert by_file["mpt_a100_training.csv"]["predicted"] == 139
    assert by_file["mpt_a100_training.csv"]["median_abs_error_pct"] <= 15.0
    assert by_file["nemo_megatron_pretraining.csv"]["predicted"] >= 95


def test_validate_default_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --data the command finds ../shared/data/validation from the project root."""
    shared_file("data/validation/mpt_a100_training.csv")
    monkeypatch.chdir(ROOT)
    d = run_json("validate")
    assert d["summary"]["rows"] >= 100
    for r in d["rows"]:
        assert (r["predicted"] is None) == (r["problem"] is not None)
