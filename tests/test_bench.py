"""`suanli bench` on the CPU backend (real, small measurements) and backend detection."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from cli_support import run_error, run_json
from needs import need
from suanli.catalog.loader import load_catalog
from suanli.errors import SuanliError


def _need_torch() -> None:
    need(importlib.util.find_spec("torch") is not None,
         "PyTorch (`pip install torch==2.13.0`, .ci/setup.d/50-torch.sh)")


def test_bench_cpu_end_to_end(tmp_path: Path) -> None:
    _need_torch()
    csv_p, ov_p = tmp_path / "bench.csv", tmp_path / "overlay.yaml"
    d = run_json("bench", "--backend", "cpu", "--sizes", "64,128", "--precision", "fp32",
                 "--mem-mb", "8", "--nproc", "2", "--ar-mb", "1", "--repeat", "2",
                 "--label", "ci cpu", "--csv", str(csv_p), "--overlay", str(ov_p))
    assert d["backend"]["name"] == "cpu"
    names = {b["name"]: b for b in d["backends"]}
    assert set(names) == {"cuda", "musa", "npu", "mlu", "xpu", "cpu"}
    assert "torch_musa" in names["musa"]["problem"]  # missing plugin reported, not fatal
    by = {(r["workload"], r["config"]): r for r in d["rows"]}
    assert by[("torch matmul", "128^3")]["value"] > 0
    assert by[("memory bandwidth", "copy")]["value"] > 0
    assert by[("gloo all_reduce", "2 local processes")]["value"] > 0
    assert by[("host-device copy", "H2D")]["value"] is None  # cpu: stated, not invented
    header = csv_p.read_text().splitlines()[0]
    assert header.startswith("chip,suite,workload,precision,config,metric,value,unit")
    # the overlay is a catalogue entry the model uses
    cat = load_catalog([ov_p])
    chip = cat.get("local ci cpu")
    assert chip.tflops("fp32") == pytest.approx(d["best_tflops"]["fp32"], rel=1e-3)
    est = run_json("estimate", "train", "--layers", "2", "--d-model", "128", "--heads", "2",
                   "--ffn-hidden", "256", "--vocab", "1000", "--chip", "local ci cpu",
                   "--devices", "1", "--global-batch", "1", "--seq-len", "128", "--precision",
                   "fp32", "--catalog", str(ov_p))
    assert est["tokens_per_s"] > 0 and est["confidence"]["class"] == "calibrated"
    assert yaml.safe_load(ov_p.read_text())["chips"][0]["efficiency"]["compute"] == 1.0


def test_bench_against_a_catalogue_chip_clamps_and_says_so() -> None:
    _need_torch()
    d = run_json("bench", "--backend", "cpu", "--sizes", "64", "--precision", "fp32",
                 "--mem-mb", "4", "--nproc", "0", "--repeat", "1", "--chip", "A100")
    eff = d["overlay"]["chips"][0]["efficiency"]
    assert d["overlay"]["chips"][0]["id"] == "nvidia_a100_sxm_80"
    assert eff["compute"] == 0.05 and any("clamped" in n for n in d["notes"])


def test_bench_errors(capsys: pytest.CaptureFixture[str],
                      monkeypatch: pytest.MonkeyPatch) -> None:
    _need_torch()
    assert "not available: plugin torch_musa not installed" in run_error(
        capsys, "bench", "--backend", "musa")
    assert "--sizes must be" in run_error(capsys, "bench", "--sizes", "a,b")
    import suanli.perf.bench as b

    def no_torch(name: str) -> object:
        raise ImportError(name)

    monkeypatch.setattr(b.importlib, "import_module", no_torch)
    with pytest.raises(SuanliError, match="PyTorch is not installed"):
        b.detect_backends()
