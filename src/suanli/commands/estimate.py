"""`suanli estimate train|infer|hpc` and `suanli validate`: the performance model on the CLI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from suanli.commands.common import (
    MAX_COUNT,
    MAX_DEVICES,
    CatalogOpt,
    JsonOpt,
    WideOpt,
    console,
    count_option,
    fmt,
    layout_text,
    num_option,
    precision_option,
    print_json,
    print_table,
)
from suanli.commands.validate import validate_cmd
from suanli.errors import CannotRun, SuanliError

if TYPE_CHECKING:  # the performance model (numpy) loads only when a command runs
    from suanli.catalog.loader import Catalog
    from suanli.catalog.schema import Chip
    from suanli.perf.models import ModelShape

estimate_app = typer.Typer(
    name="estimate",
    help="Estimate training, inference and HPC jobs on catalogued chips (analytical model).",
    no_args_is_help=True,
)

ChipOpt = Annotated[
    list[str], typer.Option("--chip", help="Chip id, name or alias; repeat to compare chips.")
]
DevicesOpt = Annotated[
    int, count_option("--devices", "-n", help="Number of devices.", le=MAX_DEVICES)
]
DpnOpt = Annotated[int, count_option("--devices-per-node", help="Devices per node.", le=64)]
NetOpt = Annotated[
    float,
    num_option("--inter-node-gbps", help="Scale-out bandwidth per node (sum of NICs), Gbit/s.",
               gt=0, le=1e6),
]
LinkOpt = Annotated[
    float | None,
    num_option("--link-gbs", help="Override the intra-node link (GB/s, bidirectional).",
               gt=0, le=1e5),
]
EffC = Annotated[float | None, num_option("--eff-compute", help="Override compute efficiency.",
                                          gt=0, le=1)]
EffM = Annotated[float | None, num_option("--eff-memory", help="Override memory-bw efficiency.",
                                          gt=0, le=1)]
EffL = Annotated[float | None, num_option("--eff-link", help="Override link efficiency.",
                                          gt=0, le=1)]
PrecOpt = Annotated[str, precision_option("--precision", help="bf16, fp16, fp8, ...")]


def _catalog(files: list[Path] | None) -> Catalog:
    from suanli.catalog.loader import load_catalog

    return load_catalog(files or None)


def _eff(c: float | None, m: float | None, lk: float | None) -> dict[str, float]:
    return {k: v for k, v in (("compute", c), ("memory", m), ("link", lk)) if v is not None}


def _model(
    name: str | None, layers: int | None, d_model: int | None, heads: int | None,
    kv_heads: int | None, ffn_hidden: int | None, vocab: int | None, ffn: str | None,
) -> ModelShape:
    from suanli.perf.models import model_from_dict, resolve_model

    custom = {k: v for k, v in (("n_layers", layers), ("d_model", d_model), ("n_heads", heads),
                                ("n_kv_heads", kv_heads), ("d_ff", ffn_hidden), ("vocab", vocab),
                                ("ffn", ffn)) if v is not None}
    if not custom:
        if not name:
            raise SuanliError("give --model (a preset or a YAML file) or a custom shape "
                              "(--layers --d-model --heads --ffn-hidden --vocab)")
        return resolve_model(name)
    if name:
        return model_from_dict({"base": name, **custom})
    missing = [f for f in ("n_layers", "d_model", "n_heads", "d_ff", "vocab") if f not in custom]
    if missing:
        raise SuanliError(f"custom model needs {', '.join(missing)} (flags --layers --d-model "
                          "--heads --ffn-hidden --vocab)")
    return model_from_dict({"name": "custom", **custom})


def _per_chip(
    cat: Catalog, chips: list[str], fn: Callable[[Chip], Any]
) -> list[tuple[str, Any, str | None]]:
    """Run ``fn`` per chip; unknown chips are errors, CannotRun is collected per chip."""
    if not chips:
        raise SuanliError("give at least one --chip")
    resolved = [cat.get(c) for c in chips]
    out: list[tuple[str, Any, str | None]] = []
    for chip in resolved:
        try:
            out.append((chip.name, fn(chip), None))
        except CannotRun as exc:
            if len(resolved) == 1:
                raise SuanliError(f"cannot run: {exc.problem}") from None
            out.append((chip.name, None, f"cannot run: {exc.problem}"))
    return out


def _emit_json(results: list[tuple[str, Any, str | None]]) -> None:
    items = [r.as_dict() if r is not None else {"chip": name, "error": err}
             for name, r, err in results]
    print_json(items[0] if len(items) == 1 else items)


def _hours(s: float | None) -> str:
    if s is None:
        return "—"
    if s >= 86400:
        return f"{s / 86400:,.1f} days"
    if s >= 3600:
        return f"{s / 3600:,.1f} h"
    return f"{s:,.2f} s"


def _layout_str(lay: dict[str, Any]) -> str:
    # the model reports virtual pipeline stages as "vp"; the shared formatter calls them
    # "interleave"
    return layout_text({**lay, "interleave": lay.get("vp", lay.get("interleave", 1))})


@estimate_app.command("train")
def train_cmd(
    chip: ChipOpt,
    devices: DevicesOpt,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Preset or YAML.")] = None,
    seq_len: Annotated[int, count_option("--seq-len", le=100_000_000)] = 4096,
    global_batch: Annotated[int, count_option("--global-batch", help="Sequences per step.",
                                                       le=MAX_COUNT)] = 1024,
    precision: PrecOpt = "bf16",
    tp: Annotated[int | None, count_option("--tp", le=MAX_DEVICES)] = None,
    pp: Annotated[int | None, count_option("--pp", le=MAX_DEVICES)] = None,
    cp: Annotated[int | None, count_option("--cp", help="Context (sequence) parallel.",
                                           le=MAX_DEVICES)] = None,
    ep: Annotated[int | None, count_option("--ep", help="Expert parallel (MoE).",
                                           le=MAX_DEVICES)] = None,
    micro_batch: Annotated[int | None, count_option("--micro-batch")] = None,
    recompute: Annotated[str | None, typer.Option(help="none|selective|full")] = None,
    recompute_modules: Annotated[str | None, typer.Option(
        "--recompute-modules",
        help="Selective recompute of these Megatron-Core submodules, comma-separated: core_attn,"
             " moe_act, layernorm, mla_up_proj, mlp, moe, shared_experts ('none' = nothing)")]
        = None,
    zero: Annotated[str | None, typer.Option(help="0-3, FULL_SHARD, SHARD_GRAD_OP")] = None,
    interleave: Annotated[int | None, count_option(
        "--interleave", help="Virtual PP stages (default: searched, else 1).", le=1024)] = None,
    framework: Annotated[str | None, typer.Option(
        "--framework",
        help="megatron|fsdp|deepspeed|mindspeed (default: mindspeed on Ascend, else megatron)")]
        = None,
    fp8_recipe: Annotated[str, typer.Option(
        "--fp8-recipe", help="fp8-delayed|fp8-current|fp8-block (FP4 runs: nvfp4)")]
        = "fp8-delayed",
    moe_imbalance: Annotated[float, num_option(
        "--moe-imbalance", help="MoE: tokens on the busiest expert rank / mean (1 = balanced).",
        ge=1, le=64)] = 1.0,
    ep_dispatch: Annotated[str, typer.Option(
        "--ep-dispatch", help="MoE token dispatch: alltoall|deepep (one copy per node)")]
        = "alltoall",
    ep_a2a_overlap: Annotated[bool, typer.Option(
        "--ep-a2a-overlap", help="MoE: Megatron-Core combined 1F1B (all-to-all of one "
        "micro-batch behind another's compute; NeMo recipes' moe_a2a_overlap)")] = False,
    fp8_attention: Annotated[bool, typer.Option(
        "--fp8-attention", help="FP8 attention forward under fp8/fp4 GEMMs (Megatron-Bridge "
        "fp8_dot_product_attention; FlashAttention-3 paper FP8/FP16 forward ratio)")] = False,
    search: Annotated[bool, typer.Option("--search", help="Search layouts; show top-k.")] = False,
    top: Annotated[int, count_option("--top", help="Rows of the search table.", le=1000)] = 5,
    tokens: Annotated[float | None, num_option("--tokens", help="Token budget, e.g. 15e12.",
                                                 gt=0, le=1e18)] = None,
    devices_per_node: DpnOpt = 8,
    inter_node_gbps: NetOpt = 1600.0,
    link_gbs: LinkOpt = None,
    eff_compute: EffC = None,
    eff_memory: EffM = None,
    eff_link: EffL = None,
    attention_kernel: Annotated[str, typer.Option(
        "--attention", help="flash2|flash1|plain")] = "flash2",
    pue: Annotated[float, num_option("--pue", help="Power usage effectiveness.", ge=1, le=3)] = 1.3,
    price: Annotated[float | None, num_option("--price-cny-per-hour", ge=0, le=1e6,
                                              help="CNY per accelerator-hour.")] = None,
    electricity: Annotated[float, num_option("--electricity-cny-kwh", help="CNY per kWh.",
                                             ge=0, le=100)] = 0.5,
    layers: Annotated[int | None, count_option("--layers", le=100_000)] = None,
    d_model: Annotated[int | None, count_option("--d-model", le=10_000_000)] = None,
    heads: Annotated[int | None, count_option("--heads", le=100_000)] = None,
    kv_heads: Annotated[int | None, count_option("--kv-heads", le=100_000)] = None,
    ffn_hidden: Annotated[int | None, count_option("--ffn-hidden", le=100_000_000)] = None,
    vocab: Annotated[int | None, count_option("--vocab", le=100_000_000)] = None,
    ffn: Annotated[str | None, typer.Option("--ffn", help="gelu|swiglu")] = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Training step time, tokens/s, MFU, memory per device, time/energy/cost for a token budget."""
    from suanli.perf.estimate import estimate_train

    shape = _model(model, layers, d_model, heads, kv_heads, ffn_hidden, vocab, ffn)
    cat = _catalog(catalog)
    eff = _eff(eff_compute, eff_memory, eff_link)

    def run(c: Chip) -> Any:
        return estimate_train(
            shape, c, devices, seq_len=seq_len, global_batch=global_batch, precision=precision,
            tp=tp, pp=pp, cp=cp, ep=ep, micro_batch=micro_batch, recompute=recompute, zero=zero,
            recompute_modules=recompute_modules, search_layouts=True if search else None,
            top_k=top, tokens=tokens,
            devices_per_node=devices_per_node, inter_node_gbps=inter_node_gbps,
            link_gbs=link_gbs, efficiency=eff, interleave=interleave,
            attention_kernel=attention_kernel, pue=pue, price_cny_per_hour=price,
            electricity_cny_kwh=electricity, framework=framework, fp8_recipe=fp8_recipe,
            moe_imbalance=moe_imbalance, ep_dispatch=ep_dispatch,
            ep_a2a_overlap=ep_a2a_overlap, fp8_attention=fp8_attention,
        )

    results = _per_chip(cat, chip, run)
    if json:
        _emit_json(results)
        return
    if len(results) == 1:
        _show_train(results[0][1], shape, search)
    else:
        _compare_train(results, shape, devices)


def _confidence_str(c: dict[str, Any], per: int = 1) -> str:
    """'validated: likely 330-450 per device (basis)'."""
    if not c:
        return "—"
    lo, hi = (x / max(per, 1) for x in c["likely_range"])
    text = f"{c['class']}: likely {fmt(lo)}-{fmt(hi)}"
    text += " per device" if per > 1 else ""
    return text + f" ({c['basis']}{'; ' + '; '.join(c['reasons']) if c['reasons'] else ''})"


def _show_train(e: Any, shape: ModelShape, search: bool) -> None:
    t = Table(title=f"{shape.name} on {e.n_devices} x {e.chip} ({e.precision})",
              show_header=False)
    t.add_column("", style="bold")
    t.add_column("")
    params = f"{shape.n_params / 1e9:,.1f} B"
    if shape.is_moe:
        params += f" ({shape.n_active / 1e9:,.1f} B active)"
    t.add_row("parameters", params)
    t.add_row("sequence x global batch", f"{e.seq_len} x {e.global_batch}")
    how = f"search: best of {e.searched:,}" if e.searched else "as given"
    t.add_row("layout", f"{_layout_str(e.layout)}  ({how})")
    t.add_row("step time", f"{e.step_time_s:,.3f} s")
    step = e.step_time_s or 1.0
    t.add_row("  split", "  ".join(f"{k} {v:,.3f} s ({v / step:.0%})"
                                   for k, v in e.breakdown_s.items()))
    t.add_row("tokens/s", f"{fmt(e.tokens_per_s)} ({fmt(e.tokens_per_s_per_device)} per device)")
    t.add_row("confidence", _confidence_str(e.confidence, e.n_devices))
    for a in e.assumptions:
        t.add_row("assumption", a)
    t.add_row("MFU / HFU", f"{e.mfu:.1%} / {e.hfu:.1%}")
    t.add_row("bottleneck", e.bottleneck)
    mem = e.memory_gb
    t.add_row("memory per device", f"{mem['total']:,.1f} GB of {mem['capacity']:,.0f} GB "
              f"(weights {mem['weights']:,.1f}, grads {mem['grads']:,.1f}, optimizer "
              f"{mem['optimizer']:,.1f}, activations {mem['activations']:,.1f})")
    if e.tokens is not None:
        t.add_row("time to train", f"{_hours(e.time_to_train_s)} for {e.tokens:.3g} tokens")
        t.add_row("accelerator-hours", fmt(e.accelerator_hours))
        t.add_row("energy", fmt(e.energy_kwh, unit="kWh"))
        if e.cost_cny is not None:
            t.add_row("cost", f"{fmt(e.cost_cny)} CNY ({e.cost_basis})")
    ef = e.efficiency
    t.add_row("efficiency", f"compute {ef['compute']:.2f} memory {ef['memory']:.2f} link "
              f"{ef['link']:.2f} network {ef['network']:.2f} — {ef['source']}")
    console.print(t)
    if search and e.alternatives:
        s = Table(title="fastest fitting layouts")
        for col in ("#", "layout", "tokens/s", "MFU", "step s", "mem GB"):
            s.add_column(col, justify="right" if col not in ("layout",) else "left")
        for i, a in enumerate(e.alternatives, 1):
            s.add_row(str(i), _layout_str(a), fmt(a["tokens_per_s"]), f"{a['mfu']:.1%}",
                      f"{a['step_time_s']:,.3f}", f"{a['mem_gb']:,.1f}")
        console.print(s)


def _compare_train(results: list[tuple[str, Any, str | None]], shape: ModelShape, n: int) -> None:
    t = Table(title=f"{shape.name} on {n} devices")
    for col in ("chip", "layout", "tokens/s", "per device", "MFU", "step s", "bottleneck",
                "mem GB", "time", "kWh", "confidence"):
        t.add_column(col, justify="left" if col in ("chip", "layout", "bottleneck", "confidence")
                     else "right", overflow="fold")
    for name, e, err in results:
        if e is None:
            t.add_row(name, err or "", *[""] * 9)
            continue
        lo, hi = (x / e.n_devices for x in e.confidence["likely_range"])
        t.add_row(name, _layout_str(e.layout), fmt(e.tokens_per_s),
                  f"{fmt(e.tokens_per_s_per_device)} ({fmt(lo)}-{fmt(hi)})",
                  f"{e.mfu:.1%}", f"{e.step_time_s:,.2f}", e.bottleneck,
                  f"{e.memory_gb['total']:,.1f}", _hours(e.time_to_train_s), fmt(e.energy_kwh),
                  e.confidence["class"])
    console.print(t)


@estimate_app.command("infer")
def infer_cmd(
    chip: ChipOpt,
    devices: DevicesOpt,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Preset or YAML.")] = None,
    batch: Annotated[int, count_option("--batch", help="Concurrent requests.")] = 1,
    prompt: Annotated[int, count_option("--prompt", help="Prompt tokens per request.",
                                                   le=100_000_000)] = 2048,
    output: Annotated[int, count_option("--output", help="Output tokens per request.",
                                                   le=100_000_000)] = 512,
    precision: PrecOpt = "bf16",
    kv_precision: Annotated[str | None, precision_option("--kv-precision")] = None,
    tp: Annotated[int | None, count_option("--tp", help="Devices per replica.",
                                                            le=MAX_DEVICES)] = None,
    devices_per_node: DpnOpt = 8,
    inter_node_gbps: NetOpt = 1600.0,
    link_gbs: LinkOpt = None,
    eff_compute: EffC = None,
    eff_memory: EffM = None,
    eff_link: EffL = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
    wide: WideOpt = False,
) -> None:
    """Inference: TTFT, time per output token, tokens/s, weights + KV-cache memory and fit."""
    from suanli.perf.estimate import estimate_infer

    shape = _model(model, None, None, None, None, None, None, None)
    cat = _catalog(catalog)
    eff = _eff(eff_compute, eff_memory, eff_link)

    def run(c: Chip) -> Any:
        return estimate_infer(shape, c, devices, batch=batch, prompt=prompt, output=output,
                              precision=precision, tp=tp, kv_precision=kv_precision,
                              devices_per_node=devices_per_node, inter_node_gbps=inter_node_gbps,
                              link_gbs=link_gbs, efficiency=eff)

    results = _per_chip(cat, chip, run)
    if json:
        _emit_json(results)
        return
    t = Table(title=f"{shape.name} inference: batch {batch}, prompt {prompt}, output {output}")
    cols = ["chip", "tp×rep", "TTFT s", "TPOT ms", "out tok/s", "decode tok/s", "bound",
            "weights GB", "KV GB", "mem GB/dev", "confidence"]
    keep = [i for i, c in enumerate(cols) if wide or c not in ("weights GB", "KV GB")]
    for i in keep:
        t.add_column(cols[i], justify="left" if cols[i] in ("chip", "bound", "confidence")
                     else "right",
                     overflow="fold")
    for name, e, err in results:
        if e is None:
            t.add_row(name, err or "", *[""] * (len(keep) - 2))
            continue
        row = [name, f"{e.tp}×{e.replicas}", f"{e.ttft_s:,.3f}", f"{e.tpot_s * 1e3:,.2f}",
               fmt(e.output_tokens_per_s), fmt(e.decode_tokens_per_s), e.decode_bound,
               f"{e.memory_gb['weights']:,.1f}", f"{e.memory_gb['kv_cache']:,.1f}",
               f"{e.memory_gb['total']:,.1f}/{e.memory_gb['capacity']:,.0f}",
               e.confidence.get("class", "")]
        t.add_row(*[row[i] for i in keep])
    print_table(t, wide=wide)


@estimate_app.command("hpc")
def hpc_cmd(
    chip: ChipOpt,
    devices: DevicesOpt,
    kernel: Annotated[str, typer.Option("--kernel", help="hpl | stream")] = "hpl",
    problem_size: Annotated[int | None, count_option(
        "--problem-size", help="HPL N or STREAM elements per device (default: fills memory).",
        le=10**15)] = None,
    devices_per_node: DpnOpt = 8,
    inter_node_gbps: NetOpt = 1600.0,
    eff_compute: EffC = None,
    eff_memory: EffM = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """HPL-like FP64 (fp64_tensor if present) or STREAM-like bandwidth on N devices."""
    from suanli.perf.hpc import estimate_hpc

    k = kernel.strip().lower()
    if k not in ("hpl", "stream"):
        raise SuanliError(f"--kernel must be hpl or stream, got {kernel!r}")
    cat = _catalog(catalog)
    eff = _eff(eff_compute, eff_memory, None)
    def run(c: Chip) -> Any:
        if problem_size is not None:
            _check_hpc_fits(c, devices, k, problem_size)
        return estimate_hpc(
            c, devices, k, devices_per_node=devices_per_node,  # type: ignore[arg-type]
            inter_node_gbps=inter_node_gbps, efficiency=eff, problem_size=problem_size)

    results = _per_chip(cat, chip, run)
    if json:
        _emit_json(results)
        return
    t = Table(title=f"{k.upper()}-like on {devices} devices")
    for col in ("chip", "precision", "rate", "per device", "of peak", "problem", "time",
                "confidence"):
        t.add_column(col, justify="left" if col in ("chip", "precision", "confidence")
                     else "right")
    for name, r, err in results:
        if r is None:
            t.add_row(name, err or "", *[""] * 6)
            continue
        scale, unit = (1e12, "TFLOP/s") if r.unit == "flop/s" else (1e9, "GB/s")
        t.add_row(name, r.precision, f"{fmt(r.rate / scale)} {unit}",
                  f"{fmt(r.per_device / scale)} {unit}", f"{r.fraction_of_peak:.0%}",
                  f"N={r.problem_size:,}", _hours(r.time_s), str(r.confidence.get("class", "")))
    console.print(t)


def _check_hpc_fits(chip: Chip, devices: int, kernel: str, n: int) -> None:
    """A given problem size must fit in device memory: HPL holds an N x N FP64 matrix spread
    over all devices, STREAM three arrays of N FP64 elements on each device."""
    from suanli.perf.hpc import GIB, STREAM_BYTES_PER_ELEMENT

    cap_gb = chip.memory_gb
    if cap_gb is None:
        return  # unknown capacity: nothing to check against
    if kernel == "hpl":
        need, have = 8.0 * float(n) ** 2 / GIB, cap_gb * devices
        what, where = f"HPL N={n:,} needs {need:,.4g} GB for its FP64 matrix", f"{devices} x"
    else:
        need, have = STREAM_BYTES_PER_ELEMENT * float(n) / GIB, cap_gb
        what, where = f"STREAM with {n:,} elements needs {need:,.4g} GB per device", "one"
    if need > have:
        raise CannotRun(f"does not fit: {what}; {where} {chip.name} hold {have:,.4g} GB")


def register(app: typer.Typer) -> None:
    """Attach `estimate` (train / infer / hpc) and `validate` to the root app."""
    app.add_typer(estimate_app, name="estimate")
    app.command("validate")(validate_cmd)
