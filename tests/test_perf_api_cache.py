"""job_rate's cache under concurrent callers (the service's API threads + scheduler loop)."""

from __future__ import annotations

import sys
import threading

import pytest

import suanli.perf.api as api
from suanli.catalog.loader import load_catalog
from suanli.catalog.schema import Precision
from suanli.errors import CannotRun
from suanli.perf.workload import Workload


def test_concurrent_callers_with_eviction_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "_CACHE_MAX", 3)  # evict constantly while 4 threads read/write
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: races show up
    api.clear_cache()
    cat = load_catalog()
    chips = [cat.get(c) for c in ("nvidia_a100_sxm4_80gb", "nvidia_h100_sxm5_80gb")]
    work = [Workload(kind="hpc", hpc_kernel="stream"), Workload(kind="hpc", hpc_kernel="hpl")]
    expect = {(i, j, n): api._compute(w, c, n) for i, w in enumerate(work)
              for j, c in enumerate(chips) for n in (1, 2, 4)}
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(200):
                for (i, j, n), v in expect.items():
                    assert api.job_rate(work[i], chips[j], n) == v
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    assert not errors
    assert len(api._cache) <= 3


def test_cannot_run_is_cached_and_raised_fresh_each_time() -> None:
    api.clear_cache()
    cat = load_catalog()
    chip = next(c for c in cat if c.supports(Precision.FP64) is False)  # e.g. an NPU
    w = Workload(kind="hpc", hpc_kernel="hpl")
    with pytest.raises(CannotRun) as first:
        api.job_rate(w, chip, 1)
    with pytest.raises(CannotRun) as second:
        api.job_rate(w, chip, 1)
    assert first.value is not second.value and str(first.value) == str(second.value)
