"""A scheduling policy written outside suanli: earliest deadline first (EDF).

Run it from a checkout (it uses the bundled demo fleet and trace)::

    python examples/policy_edf.py

It registers the policy, gives every demo job a deadline (arrival + 3x its run time on the
trace's reference chip), simulates FIFO and EDF at three times the demo arrival rate and prints
how many deadlines each misses. See docs/scheduling.md, "Writing a policy".
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from suanli.sched import Policy, SchedulerView, register_policy
from suanli.sched.policy_helpers import time_to_finish
from suanli.sim.engine import run_simulation
from suanli.sim.setup import prepare


@register_policy
class EarliestDeadlineFirst(Policy):
    """Jobs claim capacity by deadline (jobs without one last, in arrival order); each job
    goes where it finishes soonest, but not where it would miss its deadline while some other
    pool would meet it."""

    name = "edf"
    description = "earliest deadline first; the fastest pool that meets the deadline"
    score_unit = "s to finish"
    # Whether a pool meets the deadline depends on when the job starts, so a waiting job's
    # scores change with time: it must not get the back-fill fast path, which assumes they do
    # not change between rounds.
    fixed_while_waiting = False

    def queue_order(self, view: SchedulerView, slots: np.ndarray, now: float) -> np.ndarray:
        deadline = [j.deadline for j in view.jobs(slots)]
        return np.array([np.inf if d is None else d for d in deadline])

    def score(self, view: SchedulerView, slots: np.ndarray, now: float) -> np.ndarray:
        t = time_to_finish(view, slots, now, self.aware)  # seconds, inf = cannot run
        deadline = np.array([np.inf if j.deadline is None else j.deadline
                             for j in view.jobs(slots)])
        late = now + t > deadline[:, None]
        # a pool that misses the deadline only if every pool does
        meets_somewhere = (~late & np.isfinite(t)).any(axis=1)
        return np.where(late & meets_somewhere[:, None], np.inf, t)


def main() -> None:
    setup = prepare(load=3.0)  # bundled demo fleet and trace, arrivals x3
    jobs = [replace(j, deadline=j.arrival + 3 * j.duration_ref)
            for j in setup.trace.jobs if j.duration_ref is not None]
    deadline = np.array([j.deadline for j in jobs])
    print(f"{len(jobs)} jobs on {setup.cluster.devices} accelerators, arrivals x3")
    for policy in ("fifo", "edf"):
        res = run_simulation(setup.cluster, jobs, policy, setup.provider)
        by_id = {j.id: i for i, j in enumerate(res.jobs)}  # results are in arrival order
        finish = np.array([res.finish[by_id[j.id]] for j in jobs])
        missed = int(np.sum(~(finish <= deadline)))  # never finished counts as missed
        jct = res.metrics["jct_s"]["mean"] / 3600
        print(f"{policy:5} missed {missed:3} of {len(jobs)} deadlines, mean JCT {jct:5.2f} h")


if __name__ == "__main__":
    main()
