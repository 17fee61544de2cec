"""Vendor probe parsers on recorded tool output (formats cited in tests/data/probes/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from suanli.catalog import load_catalog
from suanli.probes import get_probe, match_chip, probe_all, probes

DATA = Path(__file__).parent / "data" / "probes"
CAT = load_catalog()


def read(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def parsed(probe: str, fixture: str, tool: str | None = None):
    res = get_probe(probe).parse_result(read(fixture), CAT, tool)
    assert res.status == "ok", res.message
    return res.devices


def test_nvidia_csv_noheader() -> None:
    devs = parsed("nvidia", "nvidia-smi_h800.csv")
    assert [d.index for d in devs] == [0, 1]
    assert {d.chip_id for d in devs} == {"nvidia_h800_sxm"}
    assert devs[1].memory_mib == 81559 and devs[1].memory_used_mib == 40211
    assert devs[1].utilization_pct == 97 and devs[0].driver_version == "535.104.05"
    assert devs[0].bus_id == "00000000:18:00.0"


def test_nvidia_csv_header_units_na_and_memory_disambiguation() -> None:
    devs = parsed("nvidia", "nvidia-smi_mixed_header.csv")
    assert [d.chip_id for d in devs] == ["nvidia_a100_sxm_40", "nvidia_a100_sxm_80", None]
    assert devs[1].utilization_pct is None  # [N/A]
    assert devs[0].memory_mib == 40960
    assert devs[2].note and "no catalogue chip" in devs[2].note


def test_iluvatar_csv() -> None:
    devs = parsed("iluvatar", "ixsmi_bi-v150.csv")
    assert [d.chip_id for d in devs] == ["iluvatar_bi_v150"] * 2
    assert devs[1].utilization_pct == 12 and devs[0].driver_version == "4.4.0"


def test_rocm_smi_json() -> None:
    devs = parsed("amd", "rocm-smi_mi250x.json", "rocm-smi")
    assert [d.chip_id for d in devs] == ["amd_mi250x"] * 2
    assert devs[0].memory_mib == pytest.approx(65520.0)
    assert devs[0].utilization_pct == 100 and devs[0].driver_version == "6.3.6"
    assert devs[1].bus_id == "0000:CA:00.0"


def test_amd_smi_json_both_size_shapes() -> None:
    devs = parsed("amd", "amd-smi_mi300x.json", "amd-smi")
    assert [d.chip_id for d in devs] == ["amd_mi300x"] * 2
    assert [d.memory_mib for d in devs] == [196592, 196592]
    assert devs[1].bus_id == "0000:26:00.0" and devs[0].driver_version == "6.7.0"


def test_hygon_hy_smi_json() -> None:
    devs = parsed("hygon", "hy-smi_k100ai.json")
    assert [d.chip_id for d in devs] == ["hygon_k100_ai"] * 2
    assert devs[1].memory_used_mib == 41230 and devs[1].utilization_pct == 87


def test_mthreads_table() -> None:
    devs = parsed("mthreads", "mthreads-gmi_s4000.txt")
    assert [d.chip_id for d in devs] == ["mthreads_s4000"] * 2
    assert devs[1].memory_used_mib == 20480 and devs[1].memory_mib == 49152
    assert devs[1].utilization_pct == 35 and devs[0].driver_version == "3.0.0"


def test_ascend_table_stops_before_processes() -> None:
    devs = parsed("ascend", "npu-smi_910b.txt")
    assert len(devs) == 2
    assert [d.chip_id for d in devs] == ["ascend_910b3"] * 2
    assert devs[1].memory_used_mib == 60112 and devs[1].memory_mib == 65536
    assert devs[1].utilization_pct == 88 and devs[0].driver_version == "25.2.0"
    assert devs[1].bus_id == "0000:C2:00.0"


def test_ascend_two_chips_per_npu() -> None:
    devs = parsed("ascend", "npu-smi_910c_2chip.txt")
    assert [d.index for d in devs] == [0, 1]
    assert [(d.note or "").split(";")[0] for d in devs] == ["NPU 0 chip 0", "NPU 0 chip 1"]
    # "Ascend910" is the 910A's alias (32 GB): 64 GiB per chip contradicts it, so no chip
    # is assumed and the note says why
    assert [d.chip_id for d in devs] == [None, None]
    assert "name suggests ascend_910" in (devs[0].note or "")
    assert "64 GiB" in (devs[0].note or "")


def test_metax_table() -> None:
    devs = parsed("metax", "mx-smi_c500.txt")
    assert [d.chip_id for d in devs] == ["metax_c500"] * 2
    assert devs[1].memory_used_mib == 50311 and devs[1].utilization_pct == 64
    assert devs[0].driver_version == "2.12.13" and devs[0].stack_version == "MACA 2.29.0.19"


def test_cambricon_blocks() -> None:
    devs = parsed("cambricon", "cnmon-info_mlu370.txt")
    assert [d.chip_id for d in devs] == ["cambricon_mlu370_x8"] * 2
    assert devs[0].memory_mib == 24576 and devs[0].memory_used_mib == 1033  # not virtual
    assert devs[1].utilization_pct == 73 and devs[1].driver_version == "v5.10.22"


def test_kunlunxin_columns() -> None:
    devs = parsed("kunlunxin", "xpu-smi-m_p800.txt")
    assert [d.chip_id for d in devs] == ["kunlunxin_p800"] * 2
    assert devs[1].memory_used_mib == 90112 and devs[1].utilization_pct == 96


def test_kunlunxin_rejects_intel_xpu_smi() -> None:
    res = get_probe("kunlunxin").parse_result(read("intel-xpu-smi.txt"), CAT)
    assert res.status == "unparseable" and "Intel" in res.message


def test_undocumented_tools_are_reported_not_guessed() -> None:
    for name in ("enflame", "biren"):
        res = get_probe(name).parse_result("GCU 0  S60  48GB", CAT)
        assert res.status == "unparseable" and "not publicly documented" in res.message


def test_wrong_tool_output_is_unparseable() -> None:
    assert get_probe("metax").parse_result(read("npu-smi_910b.txt"), CAT).status == "unparseable"
    assert get_probe("hygon").parse_result(read("mx-smi_c500.txt"), CAT).status == "unparseable"
    assert get_probe("nvidia").parse_result(read("hy-smi_k100ai.json"), CAT).status == (
        "unparseable"
    )


def test_absent_tools_are_not_present(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    results = probe_all(CAT)
    assert {r.status for r in results} == {"not_present"}
    assert len(results) == len(probes()) >= 11


def test_runner_paths_ok_error_and_crash() -> None:
    nv = get_probe("nvidia")
    text = read("nvidia-smi_h800.csv")
    calls: list[list[str]] = []

    def ok(argv: list[str], timeout: float) -> tuple[int, str]:
        calls.append(argv)
        return 0, text

    res = nv.probe(CAT, ok)
    assert res.status == "ok" and len(res.devices) == 2
    assert calls[0][0] == "nvidia-smi" and "--format=csv,noheader,nounits" in calls[0]
    failed = nv.probe(CAT, lambda a, t: (9, "NVIDIA-SMI has failed because it couldn't "
                                          "communicate with the NVIDIA driver"))
    assert failed.status == "error" and "exit code 9" in failed.message

    def boom(argv: list[str], timeout: float) -> tuple[int, str]:
        raise RuntimeError("runner broke")

    assert nv.probe(CAT, boom).status == "error"


def test_amd_falls_back_to_rocm_smi() -> None:
    text = read("rocm-smi_mi250x.json")

    def only_rocm(argv: list[str], timeout: float) -> tuple[int, str] | None:
        return None if argv[0] == "amd-smi" else (0, text)

    res = get_probe("amd").probe(CAT, only_rocm)
    assert res.status == "ok" and res.tool == "rocm-smi" and len(res.devices) == 2


def test_match_chip_vendor_scoped() -> None:
    assert match_chip(CAT, "NVIDIA", "NVIDIA H20", 97871)[0] == "nvidia_h20"
    assert match_chip(CAT, "AMD", "NVIDIA H20")[0] is None
    assert match_chip(CAT, "Hygon", "")[0] is None


ALL = [p.name for p in probes()]
TOOLS = {"amd": ["amd-smi", "rocm-smi"]}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(ALL), text=st.text(max_size=400), tool_i=st.integers(0, 1))
def test_fuzz_any_text_gives_devices_or_unparseable(name: str, text: str, tool_i: int) -> None:
    probe = get_probe(name)
    tool = probe.tools[tool_i % len(probe.tools)]
    res = probe.parse_result(text, CAT, tool)
    assert res.status in ("ok", "unparseable")
    if res.status == "ok":
        assert all(d.index >= 0 and d.name for d in res.devices)


@settings(max_examples=100, deadline=None)
@given(
    fixture=st.sampled_from(sorted(p.name for p in DATA.iterdir() if p.suffix != ".md")),
    cut=st.integers(0, 4000),
    junk=st.text(max_size=30),
)
def test_fuzz_truncated_and_spliced_samples(fixture: str, cut: int, junk: str) -> None:
    text = read(fixture)
    mutated = text[:cut] + junk + text[cut:]
    for probe in probes():
        for tool in probe.tools:
            assert probe.parse_result(mutated, CAT, tool).status in ("ok", "unparseable")


class _FakeNvml:
    """Stands in for nvidia-ml-py's ``pynvml`` (the NVML calls the probe makes)."""

    class _Mem:
        total, used = 97871 * 2**20, 1024 * 2**20

    class _Util:
        gpu = 42

    class _Pci:
        busId = b"00000000:18:00.0"

    def __init__(self, fail_init: bool = False) -> None:
        self.fail_init = fail_init
        self.shutdown = 0

    def nvmlInit(self) -> None:
        if self.fail_init:
            raise RuntimeError("NVML Shared Library Not Found")

    def nvmlShutdown(self) -> None:
        self.shutdown += 1

    def nvmlSystemGetDriverVersion(self) -> str:
        return "550.54.15"

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return 12040

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetName(self, h: int) -> bytes:
        return b"NVIDIA H20"

    def nvmlDeviceGetMemoryInfo(self, h: int) -> _Mem:
        return self._Mem()

    def nvmlDeviceGetUtilizationRates(self, h: int) -> _Util:
        return self._Util()

    def nvmlDeviceGetPciInfo(self, h: int) -> _Pci:
        return self._Pci()


def test_nvidia_prefers_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    fake = _FakeNvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    res = get_probe("nvidia").probe(CAT)
    assert res.status == "ok" and res.tool == "nvml"
    assert [d.chip_id for d in res.devices] == ["nvidia_h20", "nvidia_h20"]
    d = res.devices[1]
    assert d.index == 1 and d.utilization_pct == 42 and d.memory_used_mib == 1024
    assert d.driver_version == "550.54.15" and d.stack_version == "CUDA 12.4"
    assert d.bus_id == "00000000:18:00.0" and fake.shutdown == 1


def test_nvidia_falls_back_to_nvidia_smi_when_nvml_cannot_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "pynvml", _FakeNvml(fail_init=True))
    tool = tmp_path / "nvidia-smi"
    tool.write_text(f"#!/bin/sh\n/bin/cat '{DATA / 'nvidia-smi_h800.csv'}'\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    res = get_probe("nvidia").probe(CAT)
    assert res.status == "ok" and res.tool == "nvidia-smi" and len(res.devices) == 2


def test_real_nvml_without_a_driver_is_not_present(monkeypatch: pytest.MonkeyPatch) -> None:
    """nvidia-ml-py (a dev dependency) is importable here, but no driver library exists."""
    import pynvml  # noqa: F401  (the real bindings)

    monkeypatch.setenv("PATH", "/nonexistent")
    res = get_probe("nvidia").probe(CAT)
    assert res.status == "not_present"
