"""How many nodes of a configuration each workload needs, from the performance model.

Only public functions of :mod:`suanli.perf` are called (``estimate_train``, ``estimate_infer``,
``estimate_hpc``, and ``confidence.classify`` for the robustness margins). Results are
cached per (workload shape, chip, node configuration, nodes), so
workloads that share a model and shape share the evaluations.

* **train**: required tokens/s = tokens / (deadline - lead time), or ``tokens_per_s``. The
  smallest node count whose searched layout (multi-node scaling, memory fit, fixed global
  batch) reaches it: grid 1, 2, 3, 4, 6, 8, ... nodes evaluated in increasing order, then a
  binary search inside the last gap. Throughput is assumed non-decreasing in nodes between
  grid points (checked at every evaluated point).
* **infer**: per node, the highest request rate meeting the SLOs: TTFT of one request's
  prefill <= ``ttft_ms`` and the decode step (TPOT) at batch b <= ``itl_ms``, over replica
  sizes (1..chips per node, and 2-4 nodes) and batches 1..512; times ``infer_headroom`` for
  queueing. Nodes needed = requests/s / that capacity (fractional; the MILP splits a service
  across chip types and rounds nodes up).
* **hpc**: FP64 HPL-like flop/s, same node search as training.

Queueing delay, prefill/decode interference (continuous batching) and time-sharing of nodes
between workloads are not modelled: every workload gets dedicated nodes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from suanli.catalog.schema import Chip, Precision
from suanli.errors import CannotRun
from suanli.perf import estimate_hpc, estimate_infer, estimate_train
from suanli.perf.confidence import classify
from suanli.plan.schema import HpcWorkload, InferWorkload, TrainWorkload

NODE_GRID = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024,
             1536, 2048, 3072, 4096)
BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
MAX_NODES_DEFAULT = 4096

# Pessimistic derating of the model's rates (robustness re-solve): the performance model's own
# interval (suanli.perf.confidence, 10th-90th percentile of measured / predicted over the
# validation rows of the estimate's confidence class, or of the chip's own rows when it is
# validated). The pessimistic rate is the lower end of the estimate's likely range, i.e. the
# rate is multiplied by the interval's low factor; margin = 1 - low factor (never negative: a
# class whose rows ran faster than predicted is not derated upwards).

AnyWorkload = TrainWorkload | InferWorkload | HpcWorkload


@dataclass(frozen=True)
class NodeConfig:
    """What the performance model needs to know about a node configuration."""

    chip: Chip
    chips_per_node: int
    inter_node_gbps: float

    @property
    def key(self) -> tuple[str, int, float]:
        return (self.chip.id, self.chips_per_node, self.inter_node_gbps)


@dataclass(frozen=True)
class Need:
    """Nodes a workload needs on a configuration (or why it cannot run there)."""

    nodes: float  # train/hpc: integer; infer: fractional (requests/s / capacity per node)
    integer: bool
    rate: float  # train tokens/s, infer requests/s per node, hpc flop/s at ``nodes``
    finish_days: float | None = None  # train/hpc: lead time + run time
    detail: str = ""

    @property
    def ok(self) -> bool:
        return math.isfinite(self.nodes)


def cannot(reason: str) -> Need:
    return Need(math.inf, True, 0.0, None, reason)


def model_confidence(chip: Chip, precision: Precision | str = Precision.BF16
                     ) -> tuple[str, float]:
    """(what the estimate's interval rests on, pessimistic margin) for a chip.

    The margin is ``1 - low`` of the performance model's likely range for an estimate on this
    chip at ``precision`` (:func:`suanli.perf.confidence.classify`)."""
    conf = classify(chip, precision)
    margin = min(0.95, max(0.0, 1.0 - conf.low))
    why = f"{conf.level}: likely {conf.low:.2f}-{conf.high:.2f} x the estimate ({conf.basis})"
    if conf.reasons:
        why += "; " + "; ".join(conf.reasons)
    return why, round(margin, 4)


class CapacityModel:
    """Cached rate curves and node needs. ``derate`` maps chip id -> pessimistic margin."""

    def __init__(self, infer_headroom: float = 0.8) -> None:
        self.infer_headroom = infer_headroom
        self._rate: dict[tuple[object, ...], float | str] = {}
        self._infer: dict[tuple[object, ...], tuple[float, str]] = {}
        self._conf: dict[str, tuple[str, float]] = {}
        self.evaluations = 0

    def confidence(self, chip: Chip) -> tuple[str, float]:
        if chip.id not in self._conf:
            self._conf[chip.id] = model_confidence(chip)
        return self._conf[chip.id]

    # -- rate curves (train / hpc) -----------------------------------------------------
    def train_rate(self, w: TrainWorkload, cfg: NodeConfig, nodes: int) -> float | str:
        key = ("train", w.model, w.seq_len, w.global_batch, w.precision, cfg.key, nodes)
        hit = self._rate.get(key)
        if hit is not None:
            return hit
        self.evaluations += 1
        try:
            val: float | str = estimate_train(
                w.model, cfg.chip, nodes * cfg.chips_per_node, seq_len=w.seq_len,
                global_batch=w.global_batch, precision=w.precision, search_layouts=True,
                top_k=1, strict_batch=False, devices_per_node=cfg.chips_per_node,
                inter_node_gbps=cfg.inter_node_gbps).tokens_per_s
        except CannotRun as exc:
            val = exc.problem
        self._rate[key] = val
        return val

    def hpc_rate(self, cfg: NodeConfig, nodes: int) -> float | str:
        key = ("hpc", cfg.key, nodes)
        hit = self._rate.get(key)
        if hit is not None:
            return hit
        self.evaluations += 1
        try:
            val: float | str = estimate_hpc(cfg.chip, nodes * cfg.chips_per_node, "hpl",
                                            devices_per_node=cfg.chips_per_node,
                                            inter_node_gbps=cfg.inter_node_gbps).rate
        except CannotRun as exc:
            val = exc.problem
        self._rate[key] = val
        return val

    def _smallest(self, rate_at: object, target: float, max_nodes: int,
                  unit: str) -> tuple[int, float] | str:
        """Smallest node count with rate >= target (grid, then binary search in the gap)."""
        f = rate_at  # callable int -> float | str
        prev_n, last_err, best = 0, "", (0, 0.0)
        falling = 0
        for n in [g for g in NODE_GRID if g <= max_nodes] + (
                [max_nodes] if max_nodes not in NODE_GRID else []):
            r = f(n)  # type: ignore[operator]
            if isinstance(r, str):
                last_err, prev_n = r, n
                continue
            if r >= target:
                lo, hi, r_hi = prev_n, n, r
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    rm = f(mid)  # type: ignore[operator]
                    if isinstance(rm, float) and rm >= target:
                        hi, r_hi = mid, rm
                    else:
                        lo = mid
                return hi, r_hi
            if r <= best[1]:
                falling += 1
                if falling >= 3:
                    break
            else:
                falling = 0
                best = (n, r)
            prev_n = n
        if best[1] <= 0:
            return last_err or "does not run"
        return (f"needs {target:.4g} {unit}, reaches at most {best[1]:.4g} at {best[0]} nodes"
                + (f" (cap {max_nodes})" if max_nodes < NODE_GRID[-1] else ""))

    # -- public ------------------------------------------------------------------------
    def need(self, w: AnyWorkload, cfg: NodeConfig, lead_time_days: float = 0.0,
             max_nodes: int = MAX_NODES_DEFAULT, deadline_scale: float = 1.0,
             derate: float = 0.0) -> Need:
        """Nodes ``w`` needs on ``cfg`` (``derate``: pessimistic fraction off every rate)."""
        keep = 1.0 - derate
        if isinstance(w, InferWorkload):
            cap, why = self.infer_capacity(w, cfg)
            cap *= keep
            if cap <= 0:
                return cannot(why)
            return Need(w.requests_per_s / cap, False, cap, None, why)
        # train / hpc: required rate
        if isinstance(w, TrainWorkload):
            work, unit = w.tokens, "tokens/s"
            direct = w.tokens_per_s

            def rate_at(n: int) -> float | str:
                r = self.train_rate(w, cfg, n)
                return r * keep if isinstance(r, float) else r
        else:
            work = None if w.fp64_tflop is None else w.fp64_tflop * 1e12
            unit, direct = "flop/s", None if w.fp64_tflops is None else w.fp64_tflops * 1e12

            def rate_at(n: int) -> float | str:
                r = self.hpc_rate(cfg, n)
                return r * keep if isinstance(r, float) else r
        if direct is not None:
            target, days = direct, None
        else:
            assert work is not None and w.deadline_days is not None
            days = w.deadline_days * deadline_scale - lead_time_days
            if days <= 0:
                return cannot(f"lead time {lead_time_days:.0f} d >= deadline "
                              f"{w.deadline_days * deadline_scale:.0f} d")
            target = work / (days * 86400.0)
        got = self._smallest(rate_at, target, max_nodes, unit)
        if isinstance(got, str):
            return cannot(got)
        n, r = got
        finish = None if work is None else lead_time_days + work / r / 86400.0
        return Need(float(n), True, r, finish, f"{n} nodes at {r:.4g} {unit}")

    def infer_capacity(self, w: InferWorkload, cfg: NodeConfig) -> tuple[float, str]:
        """(requests/s per node within the SLOs x headroom, how) or (0, why not)."""
        key = (w.model, w.prompt, w.output, w.precision, w.ttft_ms, w.itl_ms, cfg.key)
        hit = self._infer.get(key)
        if hit is not None:
            return hit
        cpn = cfg.chips_per_node
        sizes = [d for d in (1, 2, 4, 8, 16, 32, 64) if d <= cpn and cpn % d == 0]
        sizes += [cpn * 2, cpn * 4]
        best, how, why = 0.0, "", "does not fit"
        kw = dict(prompt=w.prompt, output=w.output, precision=w.precision,
                  devices_per_node=cpn, inter_node_gbps=cfg.inter_node_gbps)
        for d in sizes:
            self.evaluations += 1
            try:
                one = estimate_infer(w.model, cfg.chip, d, batch=1, tp=d, **kw)  # type: ignore[arg-type]
            except CannotRun as exc:
                why = exc.problem
                continue
            if one.ttft_s * 1000 > w.ttft_ms:
                why = f"TTFT {one.ttft_s * 1000:.0f} ms > {w.ttft_ms:g} ms on {d} devices"
                continue
            if one.tpot_s * 1000 > w.itl_ms:
                why = f"ITL {one.tpot_s * 1000:.0f} ms > {w.itl_ms:g} ms on {d} devices"
                continue
            for b in BATCHES:
                self.evaluations += 1
                try:
                    e = estimate_infer(w.model, cfg.chip, d, batch=b, tp=d, **kw)  # type: ignore[arg-type]
                except CannotRun:
                    break
                if e.tpot_s * 1000 > w.itl_ms:
                    break
                per_node = e.output_tokens_per_s / w.output * (cpn / d)
                if per_node > best:
                    best = per_node
                    how = (f"replicas of {d} devices, batch {b}: TTFT {one.ttft_s * 1000:.0f} ms,"
                           f" ITL {e.tpot_s * 1000:.0f} ms")
            if best > 0 and d >= cpn:
                break  # multi-node replicas only when nothing smaller meets the SLOs
        out = (best * self.infer_headroom, how) if best > 0 else (0.0, why)
        self._infer[key] = out
        return out
