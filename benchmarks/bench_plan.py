"""Speed of the capacity planner (a benchmark, not a test).

50 node configurations x 10 sites x 100 workloads (40 training runs, 40 inference services,
20 HPC campaigns over 8 model shapes), min TCO with power and rack caps per site and a supply
cap. Prints the time to build the capacity table from the performance model (cold cache), to
rebuild it (warm cache), to solve the MILP (HiGHS), and the problem size. Target: < 10 s on
one core for the whole run. Prices here are synthetic (proportional to BF16 peak): a speed
test, not a market study.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

from suanli.catalog.loader import load_catalog
from suanli.plan.capacity import CapacityModel
from suanli.plan.loader import LoadedPlan, price_candidate
from suanli.plan.milp import solve
from suanli.plan.planner import make_problem, read_solution
from suanli.plan.schema import PlanInput

CHIPS = ["nvidia_h800_sxm", "nvidia_h20", "nvidia_l20", "nvidia_a800_sxm_80", "ascend_910b",
         "hygon_k100_ai", "metax_c500", "cambricon_mlu370_x8", "nvidia_h100_sxm",
         "nvidia_a100_sxm_80", "hygon_bw", "mthreads_s4000", "amd_mi300x"]


def build(seed: int = 0) -> PlanInput:
    rng = np.random.default_rng(seed)
    cat = load_catalog()
    cands = []
    for chip in CHIPS:
        for cpn in (8, 4):
            for gbps in (1600, 400):
                if len(cands) >= 50:
                    break
                c = cat.get(chip)
                bf = c.tflops("bf16") or c.tflops("fp16") or 100.0
                cands.append({
                    "name": f"{chip}-{cpn}x-{gbps}", "chip": chip, "chips_per_node": cpn,
                    "inter_node_gbps": gbps,
                    "capex_cny_per_node": round(cpn * bf * 1500 * rng.uniform(0.8, 1.2)),
                    "node_power_kw": cpn * ((c.tdp_w.value or 450.0) / 1000) + 1.5,
                    "lead_time_weeks": float(rng.integers(0, 12))})
    sites = [{"name": f"site{i}", "pue": round(float(rng.uniform(1.12, 1.35)), 2),
              "electricity_cny_kwh": round(float(rng.uniform(0.3, 0.7)), 2),
              "power_cap_kw": float(rng.uniform(2000, 8000)), "racks": float(rng.uniform(80, 300))}
             for i in range(10)]
    train_shapes = [("llama3-8b", 4096, 256), ("llama2-7b", 4096, 256),
                    ("llama2-13b", 4096, 512), ("llama3-70b", 8192, 512)]
    infer_shapes = [("llama3-8b", 1024, 256), ("llama2-7b", 2048, 256),
                    ("llama2-13b", 1024, 512), ("llama3-70b", 2048, 512)]
    wl: list[dict[str, object]] = []
    for i in range(40):
        m, s, b = train_shapes[i % 4]
        wl.append({"name": f"train{i}", "kind": "train", "model": m, "seq_len": s,
                   "global_batch": b, "tokens": float(10 ** rng.uniform(9.5, 11.3)),
                   "deadline_days": float(rng.integers(100, 200))})
    for i in range(40):
        m, p, o = infer_shapes[i % 4]
        wl.append({"name": f"infer{i}", "kind": "infer", "model": m, "prompt": p, "output": o,
                   "requests_per_s": float(rng.uniform(5, 80)), "ttft_ms": 3000.0,
                   "itl_ms": 80.0})
    for i in range(20):
        wl.append({"name": f"hpc{i}", "kind": "hpc", "fp64_tflop": float(10 ** rng.uniform(7, 8.5)),
                   "deadline_days": float(rng.integers(100, 200))})
    return PlanInput.model_validate({
        "name": "bench", "scenario": "custom", "allow": CHIPS, "workloads": wl,
        "candidates": cands, "sites": sites, "supply_caps": {"Huawei": 20000}})


def main() -> None:
    cat = load_catalog()
    plan = build()
    priced = [price_candidate(c, cat.get(c.chip), [], cat, None, None) for c in plan.candidates]
    lp = LoadedPlan(plan, None, priced, None)
    cap = CapacityModel(plan.infer_headroom)
    t0 = time.perf_counter()
    built = make_problem(lp, cat, cap)
    t_cold = time.perf_counter() - t0
    evals = cap.evaluations
    t0 = time.perf_counter()
    built = make_problem(lp, cat, cap)
    t_warm = time.perf_counter() - t0
    p = built.problem
    t0 = time.perf_counter()
    sol = solve(p)
    t_solve = time.perf_counter() - t0
    res = read_solution(built, sol, plan.name, plan.scenario)
    print(f"instance: {len(plan.candidates)} configurations x {len(plan.sites)} sites x "
          f"{len(plan.workloads)} workloads -> {len(p.options)} options, {len(p.pairs)} "
          f"(workload, option) pairs, {len(p.options) + len(p.pairs)} variables")
    print(f"capacity table (performance model, cold cache): {t_cold:6.2f} s  "
          f"({evals} model evaluations, {1e3 * t_cold / max(evals, 1):.2f} ms each)")
    print(f"capacity table (warm cache):                    {t_warm:6.2f} s")
    print(f"MILP solve (HiGHS):                             {t_solve:6.2f} s  status {sol.status}"
          f", gap {sol.gap}")
    total = t_cold + t_solve
    print(f"total cold: {total:.2f} s (target < 10 s on one core: "
          f"{'met' if total < 10 else 'NOT met'}); warm: {t_warm + t_solve:.2f} s")
    if res.feasible:
        print(f"plan: {res.totals['new_accelerators']:,.0f} accelerators, TCO "
              f"{res.totals['tco_cny'] / 1e9:.2f} bn CNY, {len(res.buys)} (config, site) buys")
    else:
        print("infeasible:", res.infeasible[:3])


if __name__ == "__main__":
    main()
