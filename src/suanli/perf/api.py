"""Stable entry points of the performance model used by the scheduler and simulator.

PLACEHOLDER IMPLEMENTATION (roofline) -- replaced by the full model; keep the signature.
"""

from __future__ import annotations

from suanli.catalog.schema import Chip, Precision
from suanli.errors import CannotRun
from suanli.perf.workload import Workload


def job_rate(workload: Workload, chip: Chip, n_devices: int) -> float:
    """Work units per second (``workload.unit``) of ``workload`` on ``n_devices`` x ``chip``.

    Raises CannotRun when the chip lacks the precision or the job does not fit.
    """
    prec = Precision(workload.precision)
    if workload.kind == "hpc" and workload.hpc_kernel == "stream":
        bw = chip.memory_bw_gbs
        if bw is None:
            raise CannotRun(f"{chip.name} memory bandwidth unknown")
        return bw * 1e9 * 0.8 * n_devices
    peak = chip.tflops(prec)
    if peak is None:
        raise CannotRun(f"{chip.name} has no {prec.value.upper()}")
    flops = peak * 1e12 * 0.4 * n_devices
    if workload.kind == "hpc":
        return flops
    params = 7e9
    return flops / (6 * params if workload.kind == "train" else 2 * params)
