"""Filter plugins: can this job ever run in this pool? (the "filter" stage of filter -> score ->
allocate). Each filter returns, per pool, None (passes) or the reason it does not.

Unknown catalogue facts (``chip.supports(p) is None``, unknown memory) do not exclude a pool:
the filter only rejects what the catalogue says is impossible. Opaque chip types (no catalogue
entry) pass every hardware filter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from suanli.catalog.schema import Precision
from suanli.sched.cluster import ClusterSpec, Pool
from suanli.sched.job import Job

Filter = Callable[[Job, Pool], str | None]


def precision_filter(job: Job, pool: Pool) -> str | None:
    chip = pool.chip
    if chip is None:
        return None
    need = job.need_precision
    if need is not None and chip.supports(need) is False:
        return f"{chip.id} has no {need.value.upper()}"
    if job.fp64 and chip.supports(Precision.FP64) is False:
        return f"{chip.id} has no FP64"
    return None


def memory_filter(job: Job, pool: Pool) -> str | None:
    chip = pool.chip
    if chip is None or job.mem_gb <= 0 or chip.memory_gb is None:
        return None
    if job.mem_gb > chip.memory_gb:
        return f"needs {job.mem_gb:g} GB per device, {chip.id} has {chip.memory_gb:g} GB"
    return None


def stack_filter(job: Job, pool: Pool) -> str | None:
    chip = pool.chip
    if chip is None or not job.cuda_only:
        return None
    if chip.stack.cuda_compat not in ("native", "binary"):
        compat = chip.stack.cuda_compat
        return f"CUDA-only job; {chip.id} ({chip.stack.name}) is cuda_compat={compat}"
    return None


def allowed_chips_filter(job: Job, pool: Pool) -> str | None:
    if job.allowed_chips is None:
        return None
    names = {pool.chip_type}
    if pool.chip is not None:
        names |= {pool.chip.id, pool.chip.name, *pool.chip.aliases}
    if names.isdisjoint(job.allowed_chips):
        return f"{pool.chip_type} is not in the job's allowed chips"
    return None


def allowed_stacks_filter(job: Job, pool: Pool) -> str | None:
    """Reject pools whose chip's software stack is not in ``job.stacks`` (port-check result)."""
    if job.stacks is None or pool.chip is None:
        return None
    from suanli.catalog.stacks import default_stacks

    sid = default_stacks().stack_of(pool.chip)
    if sid not in job.stacks:
        return f"{pool.chip.id} runs stack {sid or pool.chip.stack.name}, not allowed for the job"
    return None


def site_filter(job: Job, pool: Pool) -> str | None:
    """``allowed_sites`` may name sites or regions (e.g. a national hub)."""
    if job.allowed_sites is None:
        return None
    if pool.site in job.allowed_sites or (pool.region and pool.region in job.allowed_sites):
        return None
    return f"site {pool.site} is not allowed for the job"


def capacity_filter(job: Job, pool: Pool) -> str | None:
    if job.gang > pool.devices:
        return f"gang of {job.gang} > {pool.devices} accelerators of {pool.chip_type} in a site"
    return None


DEFAULT_FILTERS: tuple[Filter, ...] = (
    precision_filter,
    memory_filter,
    stack_filter,
    allowed_chips_filter,
    allowed_stacks_filter,
    site_filter,
    capacity_filter,
)


def filter_signature(job: Job) -> tuple[object, ...]:
    """Jobs with equal signatures get equal filter results (used to cache)."""
    return (
        job.need_precision,
        job.mem_gb,
        job.cuda_only,
        job.fp64,
        job.allowed_chips,
        job.allowed_sites,
        job.gang,
        job.stacks,
    )


def run_filters(
    job: Job, cluster: ClusterSpec, filters: Sequence[Filter] = DEFAULT_FILTERS
) -> list[str | None]:
    """Per pool: None when every filter passes, else the first failing filter's reason."""
    out: list[str | None] = []
    for pool in cluster.pools:
        reason = None
        for f in filters:
            reason = f(job, pool)
            if reason:
                break
        out.append(reason)
    return out
