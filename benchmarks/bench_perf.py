"""Speed of the performance model (a benchmark, not a test).

Prints evaluations/second of the vectorised training model (target >= 100,000 evals/s on one
core) and the wall time of a full layout search for Llama-3 405B on 16,384 chips (target < 2 s),
plus the cost of a cached and an uncached ``job_rate`` call.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

from suanli.catalog.loader import load_catalog
from suanli.perf import Workload, job_rate
from suanli.perf.api import clear_cache
from suanli.perf.estimate import estimate_train
from suanli.perf.hardware import build_hardware
from suanli.perf.models import get_model
from suanli.perf.train import TrainSpec, enumerate_layouts, evaluate


def best_of(fn, repeat: int = 5) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> int:
    chip = load_catalog().get("nvidia_a100_sxm_80")
    hw = build_hardware(chip)
    spec = TrainSpec(model=get_model("llama3-70b"), seq_len=8192, global_batch=1024)
    rng = np.random.default_rng(0)
    n = 200_000
    lay = {
        "tp": rng.choice([1, 2, 4, 8], n), "pp": rng.choice([1, 2, 4, 8, 16], n),
        "dp": rng.choice([1, 2, 4, 8, 16, 32, 64], n), "cp": rng.choice([1, 2], n),
        "ep": np.ones(n), "mb": rng.choice([1, 2, 4], n), "recompute": rng.integers(0, 3, n),
        "zero": rng.integers(0, 4, n), "vp": rng.choice([1, 2, 4], n),
    }
    t = best_of(lambda: evaluate(spec, hw, **lay))
    rate = n / t
    print(f"vectorised training model: {n:,} layouts in {t * 1e3:.1f} ms = "
          f"{rate:,.0f} evals/s (target >= 100,000)")

    spec405 = TrainSpec(model=get_model("llama3-405b"), seq_len=8192, global_batch=2048)
    n_lay = len(enumerate_layouts(spec405, 16384, 8)["tp"])
    h100 = load_catalog().get("H100")
    kw = dict(seq_len=8192, global_batch=2048, inter_node_gbps=3200.0)
    t_search = best_of(lambda: estimate_train(  # type: ignore[arg-type]
        "llama3-405b", h100, 16384, search_layouts=True, **kw), 3)
    est = estimate_train("llama3-405b", h100, 16384, **kw)  # type: ignore[arg-type]
    print(f"search llama3-405b on 16,384 x H100 (seq 8192, batch 2048, incl. virtual stages): "
          f"{n_lay:,} layouts in {t_search:.3f} s (target < 2 s); best {est.layout}, "
          f"MFU {est.mfu:.1%}")

    w = Workload("train", "llama2-7b", seq_len=4096, batch=256)
    clear_cache()
    t0 = time.perf_counter()
    job_rate(w, chip, 64)
    t_cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(10_000):
        job_rate(w, chip, 64)
    t_warm = (time.perf_counter() - t0) / 10_000
    print(f"job_rate: first call {t_cold * 1e3:.1f} ms, cached call {t_warm * 1e6:.1f} us")
    ok = rate >= 100_000 and t_search < 2.0
    print("targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
