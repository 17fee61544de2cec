"""Measure the local device with PyTorch: GEMM throughput, memory bandwidth, host-device copy and
all-reduce bus bandwidth across local processes (``torch.distributed``).

PyTorch is an optional dependency (``pip install 'suanli[bench]'``) imported lazily. Backends are
detected through torch's device types and vendor plugins: ``cuda`` (also Hygon DTK / ROCm HIP
builds), ``musa`` (torch_musa, Moore Threads), ``npu`` (torch_npu, Ascend), ``mlu`` (torch_mlu,
Cambricon), ``xpu`` (Intel), ``cpu``. A missing plugin is reported, never fatal.

Outputs rows in the columns of ``shared/data/reference/microbenchmarks.csv`` and a catalogue
overlay the performance model uses (``--catalog``).
"""

from __future__ import annotations

import importlib
import os
import platform
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from suanli.errors import SuanliError

CSV_COLUMNS = ("chip", "suite", "workload", "precision", "config", "metric", "value", "unit",
               "mfu_or_ratio", "peak_assumed", "source", "notes")
# backend -> (plugin module that registers it, or None when built into torch)
PLUGINS: dict[str, str | None] = {"cuda": None, "musa": "torch_musa", "npu": "torch_npu",
                                  "mlu": "torch_mlu", "xpu": None, "cpu": None}
DTYPES = {"fp32": "float32", "tf32": "float32", "bf16": "bfloat16", "fp16": "float16"}


@dataclass(frozen=True, slots=True)
class Backend:
    name: str
    available: bool
    devices: int = 0
    device_name: str = ""
    problem: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def import_torch() -> Any:
    try:
        return importlib.import_module("torch")
    except ImportError:
        raise SuanliError(
            "PyTorch is not installed: `pip install 'suanli[bench]'` (or torch) to benchmark"
        ) from None


def detect_backends() -> list[Backend]:
    """Every backend suanli knows, available or with the reason it is not."""
    torch = import_torch()
    out: list[Backend] = []
    for name, plugin in PLUGINS.items():
        if name == "cpu":
            out.append(Backend("cpu", True, 1, platform.processor() or platform.machine()))
            continue
        if plugin is not None:
            try:
                importlib.import_module(plugin)
            except ImportError:
                out.append(Backend(name, False, problem=f"plugin {plugin} not installed"))
                continue
            except Exception as exc:  # a vendor plugin failing to load must not stop us
                out.append(Backend(name, False, problem=f"plugin {plugin} failed: {exc}"[:200]))
                continue
        mod = getattr(torch, name, None)
        if mod is None or not hasattr(mod, "is_available"):
            out.append(Backend(name, False, problem=f"torch has no '{name}' device type"))
            continue
        try:
            ok = bool(mod.is_available())
            n = int(mod.device_count()) if ok else 0
        except Exception as exc:
            out.append(Backend(name, False, problem=f"{name} probe failed: {exc}"[:200]))
            continue
        if not ok:
            out.append(Backend(name, False, problem="no device visible"))
            continue
        dev_name = ""
        try:
            dev_name = str(mod.get_device_name(0))
        except Exception:
            dev_name = name
        if name == "cuda" and getattr(torch.version, "hip", None):
            dev_name += " (HIP build: ROCm / Hygon DTK)"
        out.append(Backend(name, True, n, dev_name))
    return out


def pick_backend(backends: list[Backend], wanted: str | None) -> Backend:
    if wanted:
        for b in backends:
            if b.name == wanted:
                if not b.available:
                    raise SuanliError(f"backend {wanted} is not available: {b.problem}")
                return b
        raise SuanliError(f"unknown backend {wanted!r} (known: {', '.join(PLUGINS)})")
    return next(b for b in backends if b.available)  # accelerators first, cpu last


def _sync(torch: Any, backend: str) -> Callable[[], None]:
    mod = getattr(torch, backend, None)
    fn = getattr(mod, "synchronize", None) if backend != "cpu" else None
    return fn if callable(fn) else (lambda: None)


def _time(fn: Callable[[], Any], sync: Callable[[], None], repeat: int,
          min_time: float = 0.0) -> float:
    """Best-of-``repeat`` seconds per call (one warm-up call)."""
    fn()
    sync()
    best = float("inf")
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return max(best, 1e-9, min_time)


def gemm_sweep(torch: Any, backend: str, precisions: list[str], sizes: list[int],
               repeat: int = 3) -> list[dict[str, Any]]:
    """TFLOPS of square matmuls per precision and size."""
    dev = torch.device(backend if backend != "cpu" else "cpu")
    sync = _sync(torch, backend)
    rows = []
    for prec in precisions:
        if prec not in DTYPES:
            raise SuanliError(f"precision must be one of {', '.join(DTYPES)}, got {prec!r}")
        dtype = getattr(torch, DTYPES[prec])
        if backend == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = prec == "tf32"
        for n in sizes:
            try:
                a = torch.randn(n, n, device=dev).to(dtype)
                b = torch.randn(n, n, device=dev).to(dtype)
                t = _time(partial(torch.matmul, a, b), sync, repeat)
            except (RuntimeError, TypeError) as exc:
                rows.append({"precision": prec, "size": n, "tflops": None,
                             "problem": str(exc).splitlines()[0][:160]})
                continue
            rows.append({"precision": prec, "size": n, "tflops": 2.0 * n**3 / t / 1e12,
                         "problem": None})
    return rows


def memory_bandwidth(torch: Any, backend: str, mbytes: int, repeat: int = 3) -> float:
    """Device memory bandwidth, GB/s: copy of an ``mbytes`` MB buffer (read + write)."""
    dev = torch.device(backend if backend != "cpu" else "cpu")
    n = max(1, mbytes * 1_000_000 // 4)
    src = torch.empty(n, dtype=torch.float32, device=dev).fill_(1.0)
    dst = torch.empty_like(src)
    t = _time(lambda: dst.copy_(src), _sync(torch, backend), repeat)
    return 2.0 * n * 4 / t / 1e9


def host_device_copy(torch: Any, backend: str, mbytes: int, repeat: int = 3
                     ) -> tuple[float | None, str | None]:
    """Host -> device copy GB/s (pinned host memory when supported); None on the cpu backend."""
    if backend == "cpu":
        return None, "cpu backend: host and device memory are the same"
    n = max(1, mbytes * 1_000_000 // 4)
    try:
        host = torch.empty(n, dtype=torch.float32).pin_memory()
    except RuntimeError:
        host = torch.empty(n, dtype=torch.float32)
    dev = torch.device(backend)
    t = _time(lambda: host.to(dev, non_blocking=False), _sync(torch, backend), repeat)
    return n * 4 / t / 1e9, None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _allreduce_worker(rank: int, world: int, port: int, mbytes: int, repeat: int,
                      queue: Any) -> None:  # pragma: no cover - runs in child processes
    import torch
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world,
                            init_method=f"tcp://127.0.0.1:{port}")
    try:
        x = torch.ones(max(1, mbytes * 1_000_000 // 4), dtype=torch.float32)
        dist.all_reduce(x)
        best = float("inf")
        for _ in range(max(1, repeat)):
            dist.barrier()
            t0 = time.perf_counter()
            dist.all_reduce(x)
            best = min(best, time.perf_counter() - t0)
        if rank == 0:
            queue.put(best)
    finally:
        dist.destroy_process_group()


def allreduce_busbw(nproc: int, mbytes: int, repeat: int = 3, timeout: float = 120.0
                    ) -> float:
    """Bus bandwidth (GB/s) of a gloo all-reduce of ``mbytes`` MB across ``nproc`` local
    processes: ``2 (n-1)/n x bytes / time`` (the NCCL-tests convention)."""
    import multiprocessing as mp

    if nproc < 2:
        raise SuanliError(f"all-reduce needs >= 2 processes, got {nproc}")
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_allreduce_worker, args=(r, nproc, port, mbytes, repeat, q))
             for r in range(nproc)]
    for p in procs:
        p.start()
    deadline = time.monotonic() + timeout
    for p in procs:
        p.join(max(0.1, deadline - time.monotonic()))
    hung = [p for p in procs if p.is_alive()]
    for p in hung:
        p.terminate()
        p.join(5)
    if hung or any(p.exitcode != 0 for p in procs) or q.empty():
        raise SuanliError(f"gloo all-reduce across {nproc} processes failed or timed out")
    t = float(q.get())
    nbytes = max(1, mbytes * 1_000_000 // 4) * 4
    return 2.0 * (nproc - 1) / nproc * nbytes / t / 1e9


@dataclass(slots=True)
class BenchResult:
    backend: Backend
    backends: list[Backend]
    gemm: list[dict[str, Any]]
    memory_gbs: float
    h2d_gbs: float | None
    h2d_note: str | None
    allreduce_busbw_gbs: float | None
    allreduce_nproc: int
    allreduce_note: str | None
    torch_version: str
    memory_gb: float | None = None  # device memory size as the runtime reports it

    def best_tflops(self) -> dict[str, float]:
        best: dict[str, float] = {}
        for r in self.gemm:
            if r["tflops"] is not None:
                best[r["precision"]] = max(best.get(r["precision"], 0.0), r["tflops"])
        return best

    def csv_rows(self, label: str) -> list[dict[str, Any]]:
        src = f"suanli bench (torch {self.torch_version}, {self.backend.name}) on {label}"
        rows = []
        for r in self.gemm:
            rows.append(dict(chip=label, suite="suanli bench", workload="torch matmul",
                             precision=r["precision"].upper(), config=f"{r['size']}^3",
                             metric="throughput", value=r["tflops"], unit="TFLOPS",
                             mfu_or_ratio="", peak_assumed="", source=src,
                             notes=r["problem"] or ""))
        rows.append(dict(chip=label, suite="suanli bench", workload="memory bandwidth",
                         precision="-", config="copy", metric="bandwidth",
                         value=self.memory_gbs, unit="GB/s", mfu_or_ratio="", peak_assumed="",
                         source=src, notes="read + write bytes / time"))
        rows.append(dict(chip=label, suite="suanli bench", workload="host-device copy",
                         precision="-", config="H2D", metric="bandwidth", value=self.h2d_gbs,
                         unit="GB/s", mfu_or_ratio="", peak_assumed="", source=src,
                         notes=self.h2d_note or ""))
        rows.append(dict(chip=label, suite="suanli bench", workload="gloo all_reduce",
                         precision="-", config=f"{self.allreduce_nproc} local processes",
                         metric="bus bw", value=self.allreduce_busbw_gbs, unit="GB/s",
                         mfu_or_ratio="", peak_assumed="", source=src,
                         notes=self.allreduce_note or "2(n-1)/n x bytes / time"))
        return rows


def run_bench(*, backend: str | None = None, precisions: list[str] | None = None,
              sizes: list[int] | None = None, mem_mbytes: int = 256, nproc: int = 2,
              ar_mbytes: int = 64, repeat: int = 3) -> BenchResult:
    torch = import_torch()
    backends = detect_backends()
    b = pick_backend(backends, backend)
    if b.name == "cpu":
        torch.set_num_threads(max(1, min(torch.get_num_threads(), os.cpu_count() or 1)))
    gemm = gemm_sweep(torch, b.name, precisions or ["fp32", "bf16"],
                      sizes or [1024, 2048, 4096], repeat)
    mem = memory_bandwidth(torch, b.name, mem_mbytes, repeat)
    h2d, h2d_note = host_device_copy(torch, b.name, mem_mbytes, repeat)
    ar: float | None = None
    ar_note: str | None = None
    if nproc >= 2:
        try:
            ar = allreduce_busbw(nproc, ar_mbytes, repeat)
            ar_note = "gloo over 127.0.0.1 (host memory): a lower bound for device links"
        except SuanliError as exc:
            ar_note = exc.problem
    else:
        ar_note = "skipped (--nproc < 2)"
    return BenchResult(b, backends, gemm, mem, h2d, h2d_note, ar, nproc, ar_note,
                       str(torch.__version__), device_memory_gb(torch, b.name))


def device_memory_gb(torch: Any, backend: str) -> float | None:
    """Device memory (GiB) reported by the runtime; host RAM for the cpu backend."""
    try:
        if backend == "cpu":
            return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) / 1024**3
        props = getattr(torch, backend).get_device_properties(0)
        return float(props.total_memory) / 1024**3
    except (AttributeError, OSError, ValueError, RuntimeError):
        return None


def overlay_for(result: BenchResult, chip: Any | None, label: str) -> tuple[dict[str, Any],
                                                                             list[str]]:
    """Catalogue overlay from a bench result, and notes on what was clamped / left out.

    With ``chip`` (the catalogue entry this device is): that entry plus efficiency factors
    measured / datasheet. Without: a new entry for the local device whose peaks ARE the
    measured figures (confidence medium: measured on this device) with efficiency 1.
    """
    notes: list[str] = []
    best = result.best_tflops()
    src_ref = f"suanli bench (torch {result.torch_version}) on {label}"
    if chip is not None:
        raw = chip.model_dump(mode="json", exclude_none=True)
        eff: dict[str, float] = {}
        for prec in ("bf16", "fp16", "fp32"):
            peak = chip.tflops(prec)
            if prec in best and peak:
                eff["compute"] = best[prec] / peak
                break
        if chip.memory_bw_gbs:
            eff["memory"] = result.memory_gbs / chip.memory_bw_gbs
        if result.allreduce_busbw_gbs and chip.link_gbs:
            eff["link"] = result.allreduce_busbw_gbs / (chip.link_gbs / 2)
        for k, v in list(eff.items()):
            if not 0.05 <= v <= 1.0:
                notes.append(f"{k} efficiency {v:.3f} outside [0.05, 1]: clamped (is this "
                             f"device really a {chip.name}?)")
            eff[k] = round(min(1.0, max(0.05, v)), 4)
        raw["efficiency"] = eff
        raw["notes"] = (f"{raw.get('notes', '')} efficiency measured by {src_ref}").strip()
        return {"chips": [raw]}, notes

    def fig(v: float | None) -> dict[str, Any]:
        if v is None:
            return {"value": None, "note": "not measured"}
        return {"value": float(f"{v:.5g}"), "source": "bench", "confidence": "medium",
                "note": "measured by suanli bench, not a datasheet figure"}

    peak = {p: fig(None) for p in ("fp64", "fp64_tensor", "fp32", "tf32", "bf16", "fp16",
                                   "fp8", "int8", "int4")}
    for p, v in best.items():
        peak[p] = fig(v)
    if "fp32" in best and "tf32" not in best:
        peak["tf32"] = fig(best["fp32"])
    dev_id = "local_" + "".join(c if c.isalnum() else "_" for c in label.lower())[:40]
    raw = {
        "id": dev_id, "name": f"local {label}", "vendor": "local", "aliases": [],
        "sources": {"bench": {"ref": src_ref, "confidence": "medium"}},
        "memory": {"type": "unknown", "size_gb": fig(result.memory_gb),
                   "bandwidth_gbs": fig(result.memory_gbs)},
        "peak": peak, "tdp_w": {"value": None, "note": "not measured"},
        "interconnect": {"name": "local", "bandwidth_gbs":
                         fig(2 * result.allreduce_busbw_gbs if result.allreduce_busbw_gbs
                             else None)},
        "stack": {"name": result.backend.name, "frameworks": ["PyTorch"],
                  "cuda_compat": "native" if result.backend.name == "cuda" else "port"},
        "export_control": {"status": "n/a (local measurement)"},
        "efficiency": {"compute": 1.0, "memory": 1.0, "link": 1.0},
        "notes": f"measured device; peaks are {src_ref} figures",
    }
    notes.append("no --chip given: the overlay describes the local device with its measured "
                 "figures as its peaks")
    return {"chips": [raw]}, notes
