"""Stable entry points of the performance model used by the scheduler and simulator.

``job_rate`` is cheap on repeated calls: results are cached by (workload, chip identity and
figures, n_devices).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from suanli.catalog.schema import Chip, Precision
from suanli.errors import CannotRun, SuanliError
from suanli.perf.estimate import estimate_infer, estimate_train
from suanli.perf.hpc import estimate_hpc
from suanli.perf.models import DEFAULT_INFER_MODEL, DEFAULT_TRAIN_MODEL
from suanli.perf.workload import Workload

INFER_PROMPT = 1024  # job_rate inference: prompt / output tokens per request (documented)
INFER_OUTPUT = 256
_CACHE_MAX = 65536
_cache: OrderedDict[tuple[object, ...], float | CannotRun] = OrderedDict()
# The service calls job_rate from its API threads and its scheduler loop at once: the cache's
# reorder and eviction are guarded (the computation itself runs outside the lock). A chip that
# cannot run a workload is a cached *answer*; each caller gets a fresh CannotRun.
_lock = threading.Lock()


def _chip_key(chip: Chip) -> tuple[object, ...]:
    peaks = tuple(sorted((p.value, f.value) for p, f in chip.peak.items()))
    return (chip.id, chip.memory_gb, chip.memory_bw_gbs, chip.link_gbs, peaks,
            tuple(sorted(chip.efficiency.items())))


def job_rate(workload: Workload, chip: Chip, n_devices: int) -> float:
    """Work units per second (``workload.unit``) of ``workload`` on ``n_devices`` x ``chip``.

    * train: tokens/s of the fastest fitting layout (searched) for a global batch of
      ``workload.batch`` sequences of ``workload.seq_len`` tokens (when no data-parallel degree
      divides it, the per-replica batch is rounded up); model ``workload.model`` or
      ``llama3-8b``;
    * infer: end-to-end output tokens/s for ``workload.batch`` concurrent requests of
      ``seq_len`` prompt tokens (default 1024) and 256 output tokens; model default
      ``llama3-8b``;
    * hpc: flop/s (hpl, FP64) or byte/s (stream).

    Raises CannotRun when the chip lacks the precision or no layout fits.
    """
    if n_devices < 1:
        raise SuanliError(f"n_devices must be >= 1, got {n_devices}")
    key = (workload, _chip_key(chip), int(n_devices))
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
    if hit is not None:
        if isinstance(hit, CannotRun):
            raise CannotRun(hit.problem)
        return hit
    try:
        val: float | CannotRun = _compute(workload, chip, int(n_devices))
    except CannotRun as exc:
        val = exc
    with _lock:
        _cache[key] = val
        if len(_cache) > _CACHE_MAX:
            _cache.popitem(last=False)
    if isinstance(val, CannotRun):
        raise CannotRun(val.problem)
    return val


def _compute(w: Workload, chip: Chip, n: int) -> float:
    prec = Precision(w.precision)
    if w.kind == "hpc":
        return estimate_hpc(chip, n, w.hpc_kernel).rate
    if w.kind == "infer":
        return estimate_infer(
            w.model or DEFAULT_INFER_MODEL, chip, n, batch=max(1, w.batch),
            prompt=w.seq_len or INFER_PROMPT, output=INFER_OUTPUT, precision=prec,
        ).output_tokens_per_s
    if w.kind == "train":
        kw = dict(seq_len=w.seq_len, global_batch=max(1, w.batch), precision=prec,
                  search_layouts=True, top_k=1)
        model = w.model or DEFAULT_TRAIN_MODEL
        try:  # the global batch as given (dp must divide it) ...
            return estimate_train(model, chip, n, **kw).tokens_per_s  # type: ignore[arg-type]
        except CannotRun:  # ... else round the per-replica batch up
            est = estimate_train(model, chip, n, strict_batch=False, **kw)  # type: ignore[arg-type]
            return est.tokens_per_s
    raise SuanliError(f"unknown workload kind {w.kind!r}")


def clear_cache() -> None:
    with _lock:
        _cache.clear()
