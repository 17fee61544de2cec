"""Does a launch fit what an executor declares it can do? (pure, for the service and executors)

The scheduler plans with shapes (nodes, fractional devices, preemption); before a launch goes
to a backend, :func:`unsupported` says why that backend cannot carry it out, so the decision
fails loudly instead of running differently from what was planned.
"""

from __future__ import annotations

from suanli.exec.base import ExecutorFeatures, LaunchSpec


def unsupported(features: ExecutorFeatures, spec: LaunchSpec,
                preempt_with_checkpoint: bool = False) -> str | None:
    """The reason ``spec`` cannot run on a backend with ``features``, or None."""
    nodes = int(spec.extra.get("nodes", max(1, len(spec.nodes))))
    if nodes > 1 and not features.multi_node_gangs:
        return f"needs a {nodes}-node gang; this executor runs single-node jobs only"
    units = spec.extra.get("chip_units")
    if units is not None and float(units) != int(float(units)) and not features.fractional_devices:
        return f"asks for {units} of a device; this executor only allocates whole devices"
    if preempt_with_checkpoint and not (features.preemption_with_checkpoint
                                        and spec.checkpoint_command):
        return "preemption with checkpoint needs a checkpoint command and executor support"
    return None
