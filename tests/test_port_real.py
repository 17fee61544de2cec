"""port-check on real source distributions downloaded from PyPI by .ci/setup.d/40-port-samples.sh
(SUANLI_TEST_SDIST_DIR). The expected verdicts and items were checked by hand against the
sources (docs/ports.md lists them)."""

from __future__ import annotations

import os
import tarfile
from collections import Counter
from pathlib import Path

import pytest

from needs import need
from suanli.port import analyze

SDISTS = {"accelerate": "accelerate-1.1.1.tar.gz", "mmcv": "mmcv-2.1.0.tar.gz"}


def _unpack(name: str, tmp: Path) -> Path:
    d = os.environ.get("SUANLI_TEST_SDIST_DIR", "")
    path = Path(d) / SDISTS[name] if d else Path("/nonexistent")
    need(path.exists(), f"{SDISTS[name]} in $SUANLI_TEST_SDIST_DIR "
                        "(.ci/setup.d/40-port-samples.sh downloads it)")
    with tarfile.open(path) as tf:
        tf.extractall(tmp, filter="data")
    return tmp / SDISTS[name].removesuffix(".tar.gz")


@pytest.fixture(scope="module")
def accelerate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _unpack("accelerate", tmp_path_factory.mktemp("acc"))


@pytest.fixture(scope="module")
def mmcv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _unpack("mmcv", tmp_path_factory.mktemp("mmcv"))


def test_accelerate_training_library(accelerate: Path) -> None:
    r = analyze(accelerate)
    assert r.problems == []
    rules = Counter(f.rule for f in r.findings)
    # checked by hand: torch.cuda calls, 'cuda' devices, NCCL_IB_DISABLE/NCCL_P2P_DISABLE in the
    # launcher, backend = "nccl" in state.py, allow_tf32 in state.py, float8 in modeling.py
    assert rules["py.cuda-api"] > 50 and rules["py.cuda-device"] > 30
    assert rules["env.nccl"] >= 4 and rules["py.nccl-backend"] >= 1
    assert rules["py.fp8"] == 1 and rules["py.tf32"] == 1
    assert rules["pkg.bitsandbytes"] > 0 and rules["pkg.deepspeed"] > 0
    assert rules["cpp.cuda-source"] == 0 and rules["py.cpp-extension"] == 0  # no kernels
    by = {(f.file, f.rule) for f in r.findings}
    assert ("src/accelerate/state.py", "py.nccl-backend") in by
    assert ("src/accelerate/utils/modeling.py", "py.fp8") in by
    assert ("src/accelerate/utils/environment.py", "pkg.nvidia-wheels") in by  # import pynvml
    v = {x.stack: x for x in r.verdicts}
    assert v["cuda"].verdict == "unchanged"
    # ROCm: pynvml (NVML) is NVIDIA-only, and allow_tf32 is ignored (no TF32 on ROCm)
    assert v["rocm"].verdict == "port"
    assert sorted(i.finding.rule for i in v["rocm"].by_outcome("port")) == [
        "pkg.nvidia-wheels", "py.tf32"]
    # the FP8 path: blocked only if no catalogued Ascend chip had FP8 (the 950PR has it)
    assert v["cann"].verdict == "port"
    assert [i.finding.file for i in v["cann"].items if i.finding.rule == "py.fp8"] == [
        "src/accelerate/utils/modeling.py"]
    assert "from torch_npu.contrib import transfer_to_npu" in v["cann"].shims
    for s in ("dtk", "musa", "neuware", "xpu", "topsrider", "supa"):
        assert v[s].verdict == "port", s  # optional bitsandbytes / TE / pynvml integrations
    assert v["corex"].verdict == "unknown" and v["maca"].verdict == "unknown"
    assert r.allowed_stacks() == ["cuda"]


def test_mmcv_custom_cuda_kernels(mmcv: Path) -> None:
    r = analyze(mmcv)
    assert r.problems == []
    rules = Counter(f.rule for f in r.findings)
    cu_files = {p.relative_to(mmcv).as_posix() for p in mmcv.rglob("*")
                if p.suffix in (".cu", ".cuh")}
    assert rules["cpp.cuda-source"] == len(cu_files) == 111
    assert rules["py.cpp-extension"] >= 1  # setup.py builds CUDAExtension
    assert ("setup.py", "py.cpp-extension") in {(f.file, f.rule) for f in r.findings}
    v = {x.stack: x.verdict for x in r.verdicts}
    assert v["cuda"] == "unchanged"
    for s in ("rocm", "dtk", "musa", "cann", "neuware", "xpu", "topsrider", "supa"):
        assert v[s] == "port", s
    assert v["corex"] == "unknown" and v["maca"] == "unknown"
    assert r.allowed_stacks() == ["cuda"]
    # mmcv already carries some Ascend (ACL) and Cambricon (CNNL/mlu_op) code: reported, and it
    # does not turn "needs porting" into anything better (its 111 CUDA files remain)
    vendor = {x.stack: x.vendor_files for x in r.verdicts}
    assert "mmcv/ops/csrc/common/pytorch_npu_helper.hpp" in vendor["cann"]
    assert vendor["neuware"] and vendor["rocm"]


def test_pruned_walk_loses_nothing_on_real_code(accelerate: Path, mmcv: Path) -> None:
    import ast

    from suanli.port import load_rules
    from suanli.port.scan_python import make_trigger, scan_python_tree, trigger_lines

    imports = load_rules().import_index()
    trigger = make_trigger(list(imports))
    n = 0
    for p in [*accelerate.rglob("*.py"), *mmcv.rglob("*.py")]:
        data = p.read_bytes()
        tree = ast.parse(data)
        text = data.decode("utf-8", errors="replace")
        full = {(f.line, f.rule) for f in scan_python_tree(tree, "f", text, imports)}
        pruned = {(f.line, f.rule) for f in scan_python_tree(
            tree, "f", text, imports, None, trigger_lines(data, trigger))}
        assert full == pruned, p
        n += 1
    assert n > 200
