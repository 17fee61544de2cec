"""Plain-Python estimates (used by the CLI, the demo report and the scheduler).

* :func:`estimate_train` -> :class:`TrainEstimate`
* :func:`estimate_infer` -> :class:`InferEstimate`
* :func:`suanli.perf.hpc.estimate_hpc` -> :class:`~suanli.perf.hpc.HpcResult`

Every result has ``.as_dict()`` (JSON-ready). Bad input raises SuanliError; a job that cannot
run (missing precision, does not fit, no valid layout) raises CannotRun.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from suanli.catalog.schema import Chip, Precision
from suanli.errors import CannotRun, SuanliError
from suanli.perf.hardware import (
    DEFAULT_DEVICES_PER_NODE,
    DEFAULT_INTER_NODE_GBPS,
    GIB,
    Hardware,
    build_hardware,
)
from suanli.perf.infer import InferResult, check_fit, evaluate_infer
from suanli.perf.models import ModelShape, resolve_model
from suanli.perf.train import (
    RECOMPUTE,
    Fixed,
    TrainSpec,
    bottleneck_of,
    evaluate,
    precision_bytes,
    recompute_code,
    search,
    zero_code,
)

DEFAULT_PUE = 1.3
DEFAULT_ELECTRICITY_CNY_KWH = 0.5


@dataclass(frozen=True, slots=True)
class TrainEstimate:
    model: str
    chip: str
    chip_id: str
    precision: str
    n_devices: int
    seq_len: int
    global_batch: int
    layout: dict[str, Any]
    step_time_s: float
    breakdown_s: dict[str, float]  # compute, memory, communication (exposed), bubble
    comm_detail_s: dict[str, float]
    tokens_per_s: float
    tokens_per_s_per_device: float
    mfu: float
    hfu: float
    bottleneck: str
    memory_gb: dict[str, float]  # per device
    fits: bool
    tokens: float | None
    time_to_train_s: float | None
    accelerator_hours: float | None
    energy_kwh: float | None
    cost_cny: float | None
    cost_basis: str | None
    efficiency: dict[str, Any]
    searched: int = 0  # layouts evaluated (search)
    alternatives: list[dict[str, Any]] = field(default_factory=list)
    # confidence class + likely range of tokens/s (see perf/confidence.py); missing figures
    confidence: dict[str, Any] = field(default_factory=dict)
    assumptions: list[str] = field(default_factory=list)

    @property
    def days(self) -> float | None:
        return None if self.time_to_train_s is None else self.time_to_train_s / 86400.0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["days"] = self.days
        return out


def _row(res: dict[str, np.ndarray], i: int) -> dict[str, float]:
    return {k: np.ravel(v)[i].item() for k, v in res.items()}


def _layout_of(r: dict[str, float]) -> dict[str, Any]:
    return {
        "tp": int(r["tp"]), "pp": int(r["pp"]), "dp": int(r["dp"]), "cp": int(r["cp"]),
        "ep": int(r["ep"]), "micro_batch": int(r["mb"]), "grad_accum": round(r["n_micro"]),
        "recompute": RECOMPUTE[int(r["recompute"])], "zero": int(r["zero"]),
        "vp": int(r.get("vp", 1)),
    }


def _summary_row(r: dict[str, float]) -> dict[str, Any]:
    return {
        **_layout_of(r), "tokens_per_s": r["tokens_per_s"], "mfu": r["mfu"],
        "step_time_s": r["step_time"], "mem_gb": r["mem_total"] / GIB,
    }


def _check_positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise SuanliError(f"{name} must be >= 1, got {value}")


def estimate_train(
    model: str | ModelShape,
    chip: Chip,
    n_devices: int,
    *,
    seq_len: int = 4096,
    global_batch: int = 1024,
    precision: Precision | str = Precision.BF16,
    tp: int | None = None,
    pp: int | None = None,
    cp: int | None = None,
    ep: int | None = None,
    micro_batch: int | None = None,
    recompute: str | int | None = None,
    recompute_modules: str | tuple[str, ...] | list[str] | None = None,
    zero: str | int | None = None,
    search_layouts: bool | None = None,
    top_k: int = 10,
    tokens: float | None = None,
    devices_per_node: int = DEFAULT_DEVICES_PER_NODE,
    inter_node_gbps: float = DEFAULT_INTER_NODE_GBPS,
    link_gbs: float | None = None,
    efficiency: dict[str, float] | None = None,
    interleave: int | None = None,
    attention_kernel: str = "flash2",
    grad_reduce_bytes: float = 2.0,
    framework: str | None = None,
    fp8_recipe: str = "fp8-delayed",
    moe_imbalance: float = 1.0,
    ep_dispatch: str = "alltoall",
    ep_a2a_overlap: bool = False,
    fp8_attention: bool = False,
    pue: float = DEFAULT_PUE,
    price_cny_per_hour: float | None = None,
    electricity_cny_kwh: float = DEFAULT_ELECTRICITY_CNY_KWH,
    strict_batch: bool = True,
) -> TrainEstimate:
    """Estimate a training job. Without any layout argument (or with ``search_layouts=True``)
    the fastest fitting layout is searched (pinned arguments constrain the search); with layout
    arguments and ``search_layouts`` not True, exactly that layout is evaluated (defaults:
    tp=pp=cp=ep=1, micro_batch=1, recompute selective, ZeRO-1). ``recompute_modules`` (Megatron-
    Core submodule names, a list or a comma-separated string; "" = none) makes selective
    recompute re-run exactly those submodules and pins recompute to selective unless
    ``recompute`` says otherwise."""
    m = resolve_model(model)
    if n_devices is None or n_devices < 1:
        raise SuanliError(f"devices must be a positive integer, got {n_devices}")
    for name, v in (("tp", tp), ("pp", pp), ("cp", cp), ("ep", ep),
                    ("micro batch", micro_batch), ("devices per node", devices_per_node)):
        _check_positive(name, v)
    if pue < 1:
        raise SuanliError(f"PUE must be >= 1, got {pue}")
    _check_positive("interleave", interleave)
    spec = TrainSpec(model=m, seq_len=seq_len, global_batch=global_batch,
                     interleave=interleave or 1, attention_kernel=attention_kernel,
                     grad_reduce_bytes=grad_reduce_bytes,
                     framework=framework or default_framework(chip),
                     fp8_recipe=fp8_recipe, moe_imbalance=moe_imbalance,
                     ep_dispatch=ep_dispatch, ep_a2a_overlap=ep_a2a_overlap,
                     fp8_attention=fp8_attention,
                     recompute_modules=parse_recompute_modules(recompute_modules))
    hw = build_hardware(chip, precision, devices_per_node=devices_per_node,
                        inter_node_gbps=inter_node_gbps, link_gbs=link_gbs, efficiency=efficiency)
    rc = recompute_code(recompute) if recompute is not None else None
    zr = zero_code(zero) if zero is not None else None
    pinned = any(v is not None for v in (tp, pp, cp, ep, micro_batch, rc, zr))
    if rc is None and recompute_modules is not None:
        rc = 1  # the modules are what selective recompute runs again (the layout is searched)
    do_search = search_layouts if search_layouts is not None else not pinned
    alternatives: list[dict[str, Any]] = []
    searched = 0
    if do_search:
        fixed = Fixed(tp=tp, pp=pp, cp=cp, ep=ep, mb=micro_batch, recompute=rc, zero=zr,
                      vp=interleave)
        res, best = search(spec, hw, n_devices, fixed, top_k=top_k, strict_batch=strict_batch)
        searched = int(np.size(res["step_time"]))
        if best.size == 0:
            i_min = int(np.argmin(res["mem_total"]))
            raise _no_fit(hw, float(res["mem_total"][i_min]), searched=True)
        r = _row(res, int(best[0]))
        alternatives = [_summary_row(_row(res, int(i))) for i in best]
    else:
        t, p, c, e = tp or 1, pp or 1, cp or 1, ep or 1
        if n_devices % (t * p * c):
            raise SuanliError(
                f"devices ({n_devices}) must be divisible by tp*pp*cp ({t}*{p}*{c} = {t * p * c})"
            )
        if m.n_heads % t:
            raise SuanliError(f"tp ({t}) must divide the {m.n_heads} attention heads of {m.name}")
        if p > m.n_layers:
            raise SuanliError(f"pp ({p}) exceeds the {m.n_layers} layers of {m.name}")
        dp = n_devices // (t * p * c)
        if dp % e:
            raise SuanliError(f"ep ({e}) must divide the data-parallel degree ({dp})")
        b = micro_batch or 1
        if global_batch % (dp * b):
            raise SuanliError(
                f"global batch ({global_batch}) must be divisible by dp x micro-batch "
                f"({dp} x {b})"
            )
        res = evaluate(spec, hw, tp=t, pp=p, dp=dp, cp=c, ep=e, mb=b,
                       recompute=1 if rc is None else rc, zero=1 if zr is None else zr)
        r = _row(res, 0)
        if not r["fits"]:
            raise _no_fit(hw, r["mem_total"], searched=False, zero=int(r["zero"]))
    return _finish(m, hw, spec, n_devices, r, tokens, pue, price_cny_per_hour,
                   electricity_cny_kwh, searched, alternatives)


def parse_recompute_modules(
    mods: str | tuple[str, ...] | list[str] | None,
) -> tuple[str, ...] | None:
    """'moe_act, layernorm' / ['moe_act'] -> ('moe_act', 'layernorm'); '' or 'none' -> ();
    None -> None (the layout search's own selective recompute). Unknown names are rejected by
    TrainSpec."""
    if mods is None:
        return None
    items = mods.split(",") if isinstance(mods, str) else list(mods)
    names = tuple(x.strip().lower() for x in items if x.strip())
    return () if names == ("none",) else names


def default_framework(chip: Chip) -> str:
    """The training stack a chip's vendor ships: MindSpeed on Ascend (CANN), else Megatron."""
    stack = (chip.stack.name or "").upper()
    return "mindspeed" if "CANN" in stack else "megatron"


def _no_fit(hw: Hardware, need_bytes: float, *, searched: bool, zero: int = 1) -> CannotRun:
    hint = "more devices" if searched or zero >= 3 else "--zero 3 or more devices"
    if not searched:
        hint += " or --recompute full"
    what = "no layout fits" if searched else "does not fit"
    return CannotRun(
        f"{what}: needs {need_bytes / GIB:.0f} GB per device, {hw.chip_name} has "
        f"{hw.memory_gb:.0f} GB; try {hint}"
    )


def _finish(
    m: ModelShape, hw: Hardware, spec: TrainSpec, n: int, r: dict[str, float],
    tokens: float | None, pue: float, price: float | None,
    elec: float, searched: int, alternatives: list[dict[str, Any]],
) -> TrainEstimate:
    i = 0
    tps = r["tokens_per_s"]
    t_train = acc_h = energy = cost = None
    basis = None
    if tokens is not None:
        if tokens <= 0:
            raise SuanliError(f"token budget must be > 0, got {tokens}")
        t_train = tokens / tps
        acc_h = t_train / 3600.0 * n
        if hw.tdp_w is not None:
            energy = hw.tdp_w * n * t_train / 3600.0 / 1000.0 * pue
        if price is not None:
            cost, basis = acc_h * price, f"{price} CNY per accelerator-hour"
        elif energy is not None:
            cost, basis = energy * elec, f"electricity only at {elec} CNY/kWh"
    one = {k: np.atleast_1d(v) for k, v in r.items()}
    return TrainEstimate(
        model=m.name, chip=hw.chip_name, chip_id=hw.chip_id, precision=hw.precision.value,
        n_devices=n, seq_len=spec.seq_len, global_batch=round(r["n_micro"] * r["mb"] * r["dp"]),
        layout=_layout_of(r), step_time_s=r["step_time"],
        breakdown_s={"compute": r["t_compute"], "memory": r["t_memory"],
                     "communication": r["t_comm"], "bubble": r["t_bubble"]},
        comm_detail_s={"tp": r["t_comm_tp"], "dp_total": r["t_comm_dp_total"],
                       "dp_exposed": r["t_comm_dp_exposed"], "pp": r["t_comm_pp"],
                       "ep": r["t_comm_ep"], "cp": r["t_comm_cp"]},
        tokens_per_s=tps, tokens_per_s_per_device=r["tokens_per_s_per_device"],
        mfu=r["mfu"], hfu=r["hfu"], bottleneck=bottleneck_of(one, i),
        memory_gb={"weights": r["mem_weights"] / GIB, "grads": r["mem_grads"] / GIB,
                   "optimizer": r["mem_optimizer"] / GIB,
                   "activations": r["mem_activations"] / GIB, "total": r["mem_total"] / GIB,
                   "capacity": hw.memory_gb, "usable": hw.mem_usable / GIB},
        fits=bool(r["fits"]), tokens=tokens, time_to_train_s=t_train, accelerator_hours=acc_h,
        energy_kwh=energy, cost_cny=cost, cost_basis=basis,
        efficiency={"compute": hw.eff.compute, "memory": hw.eff.memory, "link": hw.eff.link,
                    "network": hw.eff.network, "overlap": hw.eff.overlap,
                    "source": hw.eff.source},
        searched=searched, alternatives=alternatives,
        confidence=_confidence(hw, tps), assumptions=list(hw.assumptions),
    )


def _confidence(hw: Hardware, value: float) -> dict[str, Any]:
    from suanli.perf.confidence import classify_hw

    return classify_hw(hw).as_dict(value)


@dataclass(frozen=True, slots=True)
class InferEstimate:
    model: str
    chip: str
    chip_id: str
    precision: str
    n_devices: int
    batch: int
    prompt: int
    output: int
    tp: int
    replicas: int
    ttft_s: float
    tpot_s: float
    output_tokens_per_s: float
    decode_tokens_per_s: float
    prefill_tokens_per_s: float
    decode_bound: str
    memory_gb: dict[str, float]
    kv_cache_gb: float  # whole batch, whole model
    kv_bytes_per_token: float
    fits: bool
    confidence: dict[str, Any] = field(default_factory=dict)  # of output tokens/s
    assumptions: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def estimate_infer(
    model: str | ModelShape, chip: Chip, n_devices: int, *, batch: int = 1, prompt: int = 2048,
    output: int = 512, precision: Precision | str = Precision.BF16, tp: int | None = None,
    kv_precision: Precision | str | None = None, devices_per_node: int = DEFAULT_DEVICES_PER_NODE,
    inter_node_gbps: float = DEFAULT_INTER_NODE_GBPS, link_gbs: float | None = None,
    efficiency: dict[str, float] | None = None, require_fit: bool = True,
) -> InferEstimate:
    m = resolve_model(model)
    if n_devices is None or n_devices < 1:
        raise SuanliError(f"devices must be a positive integer, got {n_devices}")
    prec = Precision(precision)
    hw = build_hardware(chip, prec, devices_per_node=devices_per_node,
                        inter_node_gbps=inter_node_gbps, link_gbs=link_gbs, efficiency=efficiency)
    kvp = Precision(kv_precision) if kv_precision else (
        Precision.BF16 if prec in (Precision.INT4, Precision.INT8) else prec
    )
    r: InferResult = evaluate_infer(
        m, hw, n_devices, batch=batch, prompt=prompt, output=output, tp=tp,
        weight_bytes=precision_bytes(prec), kv_bytes=min(2.0, precision_bytes(kvp)),
    )
    if require_fit:
        check_fit(r, hw)
    return InferEstimate(
        model=m.name, chip=hw.chip_name, chip_id=hw.chip_id, precision=prec.value,
        n_devices=n_devices, batch=batch, prompt=prompt, output=output, tp=r.tp,
        replicas=r.replicas, ttft_s=r.ttft_s, tpot_s=r.tpot_s,
        output_tokens_per_s=r.output_tokens_per_s, decode_tokens_per_s=r.decode_tokens_per_s,
        prefill_tokens_per_s=r.prefill_tokens_per_s, decode_bound=r.decode_bound,
        memory_gb={"weights": r.weight_bytes_per_device / GIB,
                   "kv_cache": r.kv_bytes_per_device / GIB,
                   "total": r.mem_total_per_device / GIB, "capacity": hw.memory_gb},
        kv_cache_gb=r.kv_bytes_per_device * r.tp * r.replicas / GIB,
        kv_bytes_per_token=r.kv_bytes_per_token, fits=r.fits,
        confidence=_confidence(hw, r.output_tokens_per_s), assumptions=list(hw.assumptions),
    )


__all__ = ["InferEstimate", "TrainEstimate", "estimate_infer", "estimate_train"]
