"""Desired-state writes shared by the API and the dashboard: cancel a job, drain a node.

Each records what the operator wants in the database with statements whose WHERE clause the
database evaluates (never a state read earlier by this process: the scheduler loop may have
changed it meanwhile); the scheduler loop then makes it so (level-triggered)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from suanli.service.db import JobEventRow, JobRow, utcnow
from suanli.service.models import TERMINAL, JobState

# ``synchronize_session=False``: SQLAlchemy's default ("auto" = "evaluate") applies the WHERE
# clause of an ORM-enabled UPDATE to the objects already loaded in the session. For a job read
# as ``pending`` before the loop committed its start, the conditional cancel below matches no
# row in the database, but the stale in-memory object *was* set to ``cancelled`` - which made
# the endpoint believe the job had ended and skip recording the cancel request (issue 9: a job
# cancelled while being placed ran to its end).
_NO_SYNC = {"synchronize_session": False}


def request_cancel(s: Session, job_id: int, user: str, now: datetime | None = None) -> str:
    """Cancel job ``job_id`` (the caller checked the tenant and holds the write lock): a job
    that waits is cancelled at once; one that has a launch gets ``cancel_requested`` and the
    loop stops it (SIGTERM, grace, SIGKILL) and then records it cancelled. Commits.

    Returns ``"cancelled"`` (waiting job, cancelled now), ``"requested"`` (the loop stops
    it) or ``"ended"`` (it had already ended; nothing changed)."""
    now = now or utcnow()
    reason = f"cancelled by {user}"
    waiting = [JobState.PENDING.value, JobState.UNRUNNABLE.value]
    done = s.execute(
        update(JobRow).where(JobRow.id == job_id, JobRow.state.in_(waiting))
        .values(state=JobState.CANCELLED.value, reason=reason, updated_at=now,
                finished_at=now, cancel_requested=True),
        execution_options=_NO_SYNC).rowcount  # type: ignore[attr-defined]
    if done:
        s.add(JobEventRow(job_id=job_id, state=JobState.CANCELLED.value, reason=reason))
        s.commit()
        return "cancelled"
    # not waiting (any more): persist the desired state for whatever is running; the
    # database decides whether the job is still live, not a copy read before
    live = s.execute(
        update(JobRow).where(JobRow.id == job_id,
                             JobRow.state.not_in([x.value for x in TERMINAL]))
        .values(cancel_requested=True, updated_at=now),
        execution_options=_NO_SYNC).rowcount  # type: ignore[attr-defined]
    s.commit()
    return "requested" if live else "ended"


# node states (migration 0003): ``ready``; ``draining`` (the operator drained it: no new work,
# what runs there finishes); ``drained`` (nothing runs there any more); ``lost`` (an agent
# missed its heartbeats). ``drain`` is the operator's wish and outlives a loss: a drained
# agent node that comes back is ``draining`` again, not ``ready``.
SCHEDULABLE = "ready"
DRAIN_STATES = ("draining", "drained")


def state_after_contact(drain: bool) -> str:
    """The state of a node that is (again) in contact: registered, heartbeat after a loss,
    or listed in the fleet file at a server start."""
    return "draining" if drain else "ready"


def set_drain(s: Session, node_id: int, drain: bool, now: datetime | None = None) -> None:
    """Drain (``drain=True``) or undrain a node (the caller checked who may; holds the write
    lock). Evaluated by the database, so a concurrent state change (the loop marking it
    drained, the monitor marking it lost) is never overwritten. Commits."""
    from sqlalchemy import case

    from suanli.service.db import NodeRow

    now = now or utcnow()
    if drain:
        new_state = case((NodeRow.state == SCHEDULABLE, "draining"), else_=NodeRow.state)
    else:
        new_state = case((NodeRow.state.in_(DRAIN_STATES), SCHEDULABLE), else_=NodeRow.state)
    s.execute(update(NodeRow).where(NodeRow.id == node_id)
              .values(drain=drain, state=new_state, state_changed_at=now),
              execution_options=_NO_SYNC)
    s.commit()
