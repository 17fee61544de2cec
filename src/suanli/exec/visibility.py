"""Which environment variable tells a vendor's runtime which accelerators a process may use.

A launcher sets it to the assigned device indices (``"0,1"``); the runtime then renumbers
them from 0 inside the process. Every entry names where the variable is documented or used,
with a confidence like the catalogue's figures. Vendors are matched on the catalogue's
``Chip.vendor`` (case-insensitive) or a short key (``nvidia``, ``hygon``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Visibility:
    vendor: str  # short key
    variable: str
    source: str
    confidence: str  # high | medium | low
    also: tuple[str, ...] = ()  # further variables set to the same value
    note: str = ""


VISIBILITY: dict[str, Visibility] = {
    v.vendor: v
    for v in (
        Visibility(
            "nvidia", "CUDA_VISIBLE_DEVICES",
            "NVIDIA CUDA C++ Programming Guide, 'CUDA Environment Variables' "
            "(docs.nvidia.com/cuda/cuda-c-programming-guide/#env-vars)", "high"),
        Visibility(
            "amd", "HIP_VISIBLE_DEVICES",
            "AMD ROCm documentation, 'GPU isolation techniques' "
            "(rocm.docs.amd.com/en/latest/conceptual/gpu-isolation.html)", "high",
            note="ROCR_VISIBLE_DEVICES also exists at the ROCr level"),
        Visibility(
            "hygon", "HIP_VISIBLE_DEVICES",
            "Hygon DTK is HIP-based (DCU developer community docs, developer.sourcefind.cn); "
            "vendor tables in public multi-chip launchers map Hygon DCU to "
            "HIP_VISIBLE_DEVICES", "medium"),
        Visibility(
            "moore threads", "MUSA_VISIBLE_DEVICES",
            "Moore Threads MUSA runtime (torch_musa docs; MUSA SDK reads "
            "MUSA_VISIBLE_DEVICES at driver init)", "medium"),
        Visibility(
            "huawei", "ASCEND_RT_VISIBLE_DEVICES",
            "Huawei CANN environment variable reference, ASCEND_RT_VISIBLE_DEVICES "
            "(hiascend.com); Ray's NPU accelerator manager uses the same variable", "high",
            note="ASCEND_VISIBLE_DEVICES is the container-runtime variable, not the process one"),
        Visibility(
            "cambricon", "MLU_VISIBLE_DEVICES",
            "Cambricon CNToolkit / Cambricon PyTorch user guide (MLU_VISIBLE_DEVICES)",
            "medium"),
        Visibility(
            "kunlunxin", "XPU_VISIBLE_DEVICES",
            "Kunlunxin XRE runtime; PaddlePaddle XPU docs (XPU_VISIBLE_DEVICES)", "medium"),
        Visibility(
            "iluvatar corex", "CUDA_VISIBLE_DEVICES",
            "Iluvatar CoreX SDK is CUDA-compatible and honours CUDA_VISIBLE_DEVICES "
            "(DeepSpark / vendor tables in public multi-chip launchers)", "medium"),
        Visibility(
            "metax", "MACA_VISIBLE_DEVICES",
            "MetaX MACA runtime (MACA_VISIBLE_DEVICES, per MetaX-enabled Ray/vLLM plugins)",
            "low", also=("CUDA_VISIBLE_DEVICES",),
            note="MetaX PyTorch builds also read CUDA_VISIBLE_DEVICES; both are set"),
        Visibility(
            "enflame", "TOPS_VISIBLE_DEVICES",
            "Enflame TopsRider runtime (TOPS_VISIBLE_DEVICES; vLLM GCU platform "
            "device_control_env_var)", "medium"),
        Visibility(
            "biren", "SUPA_VISIBLE_DEVICES",
            "Biren SUPA runtime (SUPA_VISIBLE_DEVICES; Ray's SUPA accelerator manager)",
            "medium"),
    )
}

_ALIASES = {
    "iluvatar": "iluvatar corex",
    "mthreads": "moore threads",
    "moore_threads": "moore threads",
    "ascend": "huawei",
}


def visibility_for(vendor: str | None) -> Visibility | None:
    """The entry for ``vendor`` (catalogue vendor name or short key), or None when unknown."""
    if not vendor:
        return None
    key = vendor.strip().casefold()
    key = _ALIASES.get(key, key)
    return VISIBILITY.get(key)


def visibility_env(vendor: str | None, devices: list[int]) -> dict[str, str]:
    """Environment that limits a process to ``devices`` of ``vendor``'s accelerators.

    An unknown vendor gets no variable (the caller reports it; nothing is guessed)."""
    vis = visibility_for(vendor)
    if vis is None:
        return {}
    value = ",".join(str(d) for d in devices)
    return {vis.variable: value, **{v: value for v in vis.also}}
