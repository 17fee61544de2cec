"""The control plane's side of the node agent (docs/executors.md, "agent wire protocol").

    POST /api/v1/agent/register              NodeRegistration -> Registered
    POST /api/v1/agent/{node_id}/heartbeat   Heartbeat        -> Assignment

Both need a token with the ``node`` scope (``suanli token create --scopes node``); the node
belongs to the token's tenant and to the site the agent names (``--site``, default
``agents``). Everything is kept in the database (level-triggered, any replica may answer):

* registration upserts the node ``<site>/<hostname>`` (chip resolved through the catalogue,
  device count and indices, memory, driver / stack version) and marks it ``ready``;
* a heartbeat records ``last_seen`` and the agent's observed state of each launch in its
  allocation row; the answer lists the node's active allocations the agent has not reported
  yet (launch) and those the scheduler wants stopped or that no longer exist (cancel);
* :class:`AgentRouting` is the executor the scheduler loop sees: launches on agent-managed
  nodes are left to the agents (their state is what the agents observed), the rest go to the
  wrapped executor;
* :class:`AgentMonitor` (a hook of the scheduler loop, run by the leader once per pass) marks
  a node ``lost`` after ``lost_after`` missed heartbeats, releases its allocations and puts
  their jobs back to the queue, and hands the loop the changes of the set of ready nodes as
  the scheduler's node events with the same node ids (a loss: ``on_node_failed``; a
  registration or a node coming back: ``on_node_added``; a new site x chip type: a rebuild).
"""


import json
import logging
import math
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException
from fastapi import Path as PathParam
from sqlalchemy import String, case, cast, select, update
from sqlalchemy.orm import Session, sessionmaker

from suanli.exec.base import ExecState, ExecStatus, Executor, ExecutorFeatures, LaunchSpec
from suanli.service.auth import Principal, authenticate
from suanli.service.control import DRAIN_STATES, state_after_contact
from suanli.service.db import (
    AllocationRow,
    JobEventRow,
    JobRow,
    NodeGroupRow,
    NodeRow,
    SiteRow,
    utcnow,
)
from suanli.service.models import JobSpec, JobState
from suanli.service.wire import Assignment, Heartbeat, NodeRegistration, Registered

log = logging.getLogger("suanli.agents")
NodeId = Annotated[int, PathParam(ge=1, le=2**31)]
DEFAULT_SITE = "agents"
TAIL_LIMIT = 65_536


def agent_log_path(home: Path, launch_id: str) -> Path:
    """Where the server keeps the log tail an agent sent for a launch."""
    return home / "agent-logs" / launch_id / "stdout.log"


def launch_spec(job: JobRow, a: AllocationRow, node: NodeRow, vendor: str | None) -> LaunchSpec:
    """What the agent runs: the job's command on the node's real device indices. ``log_dir``
    is relative: the agent puts it under its own work directory."""
    spec = JobSpec.model_validate(job.spec)
    real = node.device_indices or []
    devices = [[real[i] if i < len(real) else i for i in devs] for devs in a.devices]
    return LaunchSpec(
        launch_id=a.launch_id, job_id=str(job.id), command=spec.argv, env=spec.env,
        workdir=Path(spec.workdir) if spec.workdir else None,
        log_dir=Path("runs") / a.launch_id, chip_id=a.chip, vendor=vendor,
        nodes=[node.hostname or node.name], devices=devices,
        time_limit_s=spec.time_limit_s, checkpoint_command=spec.checkpoint_command)


def touch_node(s: Session, node_id: int) -> None:
    """A heartbeat of agent node ``node_id``: ``last_seen`` now, and a lost node is back
    (``ready``, or ``draining`` if the operator drained it). One statement the database
    evaluates, so it never undoes a loss or a drain committed meanwhile by a state read
    earlier (the monitor's mark is conditional on ``last_seen`` in turn). Does not commit."""
    now = utcnow()
    was_lost = NodeRow.state == "lost"
    back = case((NodeRow.drain.is_(True), state_after_contact(True)),
                else_=state_after_contact(False))
    s.execute(update(NodeRow).where(NodeRow.id == node_id)
              .values(last_seen=now, state=case((was_lost, back), else_=NodeRow.state),
                      state_changed_at=case((was_lost, now), else_=NodeRow.state_changed_at)),
              execution_options={"synchronize_session": False})


def agent_router(state: Any, home: Path, heartbeat_s: float) -> APIRouter:
    """The two agent endpoints; ``state`` is the app's ``ServiceState``."""
    from suanli.service.app import ERRORS

    r = APIRouter(prefix="/api/v1/agent", tags=["agents"], responses=ERRORS)

    def db() -> Any:
        with state.sessions() as s:
            yield s

    Db = Annotated[Session, Depends(db)]

    def node_principal(s: Db, authorization: Annotated[str | None, Header()] = None
                       ) -> Principal:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise HTTPException(401, "missing bearer token",
                                headers={"WWW-Authenticate": "Bearer"})
        p = authenticate(s, authorization[7:].strip())
        if p is None:
            raise HTTPException(401, "invalid or revoked token",
                                headers={"WWW-Authenticate": "Bearer"})
        if "node" not in p.scopes:
            raise HTTPException(403, "this token lacks the 'node' scope")
        return p

    NodeP = Annotated[Principal, Depends(node_principal)]

    @r.post("/register", response_model=Registered)
    def register(reg: NodeRegistration, s: Db, p: NodeP,
                 site: Annotated[str | None, Header(alias="x-suanli-site", max_length=200)] = None
                 ) -> Registered:
        """Create or update the node ``<site>/<hostname>`` from what the agent's probes found."""
        from suanli.catalog.loader import load_catalog

        site_name = (reg.site or site or DEFAULT_SITE).strip()
        known = [d for d in reg.devices if d.chip_id]
        if not known:
            raise HTTPException(422, "devices: no device maps to a catalogue chip "
                                "(name the chip: suanli agent --simulate CHIP:COUNT, or fix "
                                "the probe)", headers={"x-field": "devices"})
        chip_id, _n = Counter(d.chip_id for d in known).most_common(1)[0]
        try:
            chip = load_catalog().get(str(chip_id))
        except Exception:
            raise HTTPException(422, f"devices: unknown catalogue chip '{chip_id}'",
                                headers={"x-field": "devices"}) from None
        devs = sorted((d for d in known if d.chip_id == chip_id), key=lambda d: d.index)
        name = f"{site_name}/{reg.hostname}"
        with state.write_lock:
            node = s.scalar(select(NodeRow).where(NodeRow.name == name))
            if node is not None and (not node.agent or node.tenant_id != p.tenant_id):
                raise HTTPException(409, f"hostname: node '{name}' belongs to another "
                                    "tenant or to the fleet file", headers={"x-field": "hostname"})
            srow = s.scalar(select(SiteRow).where(SiteRow.name == site_name))
            if srow is None:
                srow = SiteRow(name=site_name)
                s.add(srow)
                s.flush()
            gname = f"agent-{chip.id}"
            group = s.scalar(select(NodeGroupRow).where(NodeGroupRow.site_id == srow.id,
                                                        NodeGroupRow.name == gname))
            if group is None:
                group = NodeGroupRow(site_id=srow.id, name=gname, chip=chip.id,
                                     vendor=chip.vendor, chips_per_node=len(devs))
                s.add(group)
                s.flush()
            if node is None:
                node = NodeRow(name=name, group_id=group.id, devices=len(devs), agent=True,
                               tenant_id=p.tenant_id)
                s.add(node)
            node.group_id = group.id
            node.devices = len(devs)
            node.device_indices = [d.index for d in devs]
            node.simulated = all((d.driver_version or "") == "simulated" for d in devs)
            node.hostname = reg.hostname
            node.executor = reg.executor
            node.memory_mib = devs[0].memory_mib
            node.driver_version = devs[0].driver_version
            node.stack_version = devs[0].stack_version
            node.last_seen = utcnow()
            node.state_changed_at = node.last_seen  # devices or group may have changed
            s.flush()
            # the state in one statement the database evaluates on the row as it is then
            # (PostgreSQL: after any drain holding the row has committed), not from the
            # state read above: a drain committed meanwhile by another replica is kept
            s.execute(update(NodeRow)
                      .where(NodeRow.id == node.id, NodeRow.state.not_in(DRAIN_STATES))
                      .values(state=case((NodeRow.drain.is_(True), state_after_contact(True)),
                                         else_=state_after_contact(False))),
                      execution_options={"synchronize_session": False})
            # a restarted agent does not hold what its predecessor ran: assign those launches
            # again (launching a known launch id re-attaches, never starts twice)
            for a in s.scalars(select(AllocationRow).where(AllocationRow.node == name,
                                                           AllocationRow.active.is_(True))):
                if a.observed_state is not None and not ExecState(a.observed_state).terminal:
                    a.observed_state = None
            s.commit()
            node_id = node.id
        log.info("agent registered %s: %d x %s", name, len(devs), chip.id)
        if state.loop is not None:
            state.loop.wake()
        return Registered(node_id=str(node_id), heartbeat_s=heartbeat_s)

    @r.post("/{node_id}/heartbeat", response_model=Assignment)
    def heartbeat(node_id: NodeId, beat: Heartbeat, s: Db, p: NodeP) -> Assignment:
        """Record the agent's observations; answer with launches to start and to cancel."""
        with state.write_lock:
            node = s.get(NodeRow, node_id)
            if node is None or not node.agent or node.tenant_id != p.tenant_id:
                raise HTTPException(404, f"node {node_id} not found")
            if node.state == "lost":
                log.info("node %s is back", node.name)
            touch_node(s, node_id)
            ids = [st.launch_id for st in beat.statuses]
            allocs = {a.launch_id: a for a in s.scalars(
                select(AllocationRow).where(AllocationRow.launch_id.in_(ids)))} if ids else {}
            cancel: list[str] = []
            for st in beat.statuses:
                a = allocs.get(st.launch_id)
                if a is None or not a.nodes or a.nodes[0] != node.name or not a.active:
                    if not st.state.terminal:
                        cancel.append(st.launch_id)  # requeued elsewhere or gone: stop it
                    continue
                a.observed_state = st.state.value
                a.observed_exit_code = st.exit_code
                a.observed_message = st.message[:2000]
                if st.launch_id in beat.log_tails:
                    path = agent_log_path(home, st.launch_id)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(beat.log_tails[st.launch_id][-TAIL_LIMIT:],
                                    encoding="utf-8")
            s.commit()
            rows = s.execute(
                select(AllocationRow, JobRow).join(JobRow, JobRow.id == AllocationRow.job_id)
                .where(AllocationRow.node == node.name, AllocationRow.active.is_(True))
            ).all()  # this node's launches alone (index (node, active))
            group = s.get(NodeGroupRow, node.group_id)
            launch: list[LaunchSpec] = []
            for a, job in rows:
                if (a.stop_reason or job.cancel_requested) and a.observed_state not in (
                        None, *[x.value for x in ExecState if x.terminal]):
                    cancel.append(a.launch_id)
                elif a.observed_state is None and a.launched and not a.stop_reason:
                    launch.append(launch_spec(job, a, node, group.vendor if group else None))
        if any(st.state.terminal for st in beat.statuses) and state.loop is not None:
            state.loop.wake()
        return Assignment(launch=launch, cancel=cancel)

    return r


class AgentRouting:
    """The executor the scheduler loop uses: launches on agent-managed nodes are carried out
    by the agents (their state is the last observation an agent reported), everything else
    by ``inner``."""

    name = "agent+local"

    def __init__(self, inner: Executor, sessions: sessionmaker[Session], home: Path,
                 heartbeat_s: float, cache_s: float = 0.1) -> None:
        self.inner = inner
        self.name = inner.name
        self.features: ExecutorFeatures = inner.features
        self.sessions = sessions
        self.home = home
        self.heartbeat_s = heartbeat_s
        self.cache_s = cache_s
        self._view: dict[str, tuple[str | None, int | None, str, str]] = {}
        self._at = 0.0

    def _agent_launches(self, fresh: bool = False) -> dict[str, tuple[str | None, int | None,
                                                                      str, str]]:
        """launch id -> (observed state, exit code, message, node state) of active
        allocations on agent-managed nodes."""
        if not fresh and time.monotonic() - self._at < self.cache_s:
            return self._view
        view: dict[str, tuple[str | None, int | None, str, str]] = {}
        with self.sessions() as s:
            # the active allocations on agent nodes alone (index (node, active)); those
            # the local executor runs are not read
            for lid, st, code, msg, node_state in s.execute(
                    select(AllocationRow.launch_id, AllocationRow.observed_state,
                           AllocationRow.observed_exit_code, AllocationRow.observed_message,
                           NodeRow.state)
                    .join(NodeRow, NodeRow.name == AllocationRow.node)
                    .where(NodeRow.agent.is_(True), AllocationRow.active.is_(True))):
                view[lid] = (st, code, msg or "", node_state)
        self._view, self._at = view, time.monotonic()
        return view

    def _status(self, launch_id: str, fresh: bool = False) -> ExecStatus | None:
        v = self._agent_launches(fresh).get(launch_id)
        if v is None:
            return None
        st, code, msg, node_state = v
        if node_state == "lost" and (st is None or not ExecState(st).terminal):
            return ExecStatus(launch_id=launch_id, state=ExecState.LOST,
                              message="node lost (missed heartbeats)")
        if st is None:
            return ExecStatus(launch_id=launch_id, state=ExecState.STARTING,
                              message="waiting for the node agent")
        return ExecStatus(launch_id=launch_id, state=ExecState(st), exit_code=code,
                          message=msg)

    def launch(self, spec: LaunchSpec) -> ExecStatus:
        st = self._status(spec.launch_id, fresh=True)
        return st if st is not None else self.inner.launch(spec)

    def poll(self, launch_id: str) -> ExecStatus:
        st = self._status(launch_id)
        return st if st is not None else self.inner.poll(launch_id)

    def cancel(self, launch_id: str, grace_s: float = 10.0) -> ExecStatus:
        st = self._status(launch_id, fresh=True)
        if st is None:
            return self.inner.cancel(launch_id, grace_s)
        # the next heartbeat carries the cancel (allocation.stop_reason); wait for the agent
        end = time.monotonic() + grace_s + 3 * self.heartbeat_s
        while not st.state.terminal and time.monotonic() < end:
            time.sleep(min(0.2, self.heartbeat_s))
            nxt = self._status(launch_id, fresh=True)
            if nxt is None:
                break
            st = nxt
        return st

    def checkpoint(self, launch_id: str) -> bool:
        if self._status(launch_id) is not None:
            return False  # the agent protocol has no checkpoint call yet
        return self.inner.checkpoint(launch_id)

    def log_paths(self, launch_id: str) -> dict[str, Path]:
        path = agent_log_path(self.home, launch_id)
        if path.is_file():
            return {"stdout": path}
        return self.inner.log_paths(launch_id)

    def check(self) -> tuple[bool, str]:
        return self.inner.check()

    def __getattr__(self, item: str) -> Any:  # preempt etc. of the inner executor
        return getattr(self.inner, item)


class AgentMonitor:
    """Scheduler-loop hook (run by the leader before each pass) for every node, agent-managed
    or from the fleet file:

    * marks agent nodes lost after ``lost_after`` missed heartbeats (their jobs back to the
      queue). It reads only the nodes whose heartbeat deadline passed: a range of the index
      ``(agent, state, last_seen)`` per live state, so a pass costs what changed, not the
      number of nodes;
    * finishes drains: a ``draining`` node on which no launch holds a device any more (asked
      through ``busy``, the scheduler loop's device bookkeeping) becomes ``drained``;
    * hands the loop the changes of the schedulable fleet as the scheduler's node events,
      reading only the nodes whose ``state_changed_at`` moved since the last check (index),
      with an overlap for transactions that commit late; and, as a safety net
      (level-triggered: whatever was missed is found then), a sweep over the whole table in
      slices by node id, so that every node is re-read within ``full_s`` (a slice of
      ``SWEEP_MIN`` to ``SWEEP_MAX`` rows per call) without a pass that reads every node.
      The first call reads the table once. (suanli never deletes a node row; one removed by
      hand is noticed by the next rebuild.)
    """

    OVERLAP_S = 5.0
    SWEEP_MIN = 100
    SWEEP_MAX = 2000

    def __init__(self, sessions: sessionmaker[Session], heartbeat_s: float, lost_after: int,
                 write_lock: Any = None, busy: Any = None, full_s: float = 30.0) -> None:
        import contextlib

        self.sessions = sessions
        self.heartbeat_s = heartbeat_s
        self.lost_after = lost_after
        self.write_lock = write_lock if write_lock is not None else contextlib.nullcontext()
        # busy(node name) -> bool: does a launch still hold a device there (None: unknown)
        self.busy = busy
        self.full_s = full_s
        # node name -> (state, devices, group id) as last read
        self._known: dict[str, tuple[str, int, int]] | None = None
        self._since: Any = None  # the time of the last read of changes (database clock)
        self._sweep: tuple[float, int] = (0.0, 0)  # (time, last node id) of the sweep
        self._draining: set[str] = set()
        self.reads = 0  # node rows read by the last call: expired and changed
        # test seam: called between reading the silent nodes and marking them lost (the
        # window in which a heartbeat may commit)
        self.before_mark: Any = None
        self.swept = 0  # ... and by its slice of the sweep (for tests and benchmarks)

    @property
    def timeout_s(self) -> float:
        return self.heartbeat_s * self.lost_after

    def __call__(self) -> bool | list[tuple[str, str]]:
        """One check: the changes of the schedulable (``ready``) fleet since the last one as
        the scheduler's node events ``(kind, node name)``: ``failed`` (lost, or gone),
        ``drained`` (the operator drained it), ``added`` (registered, back, or undrained);
        True (rebuild from the database) when a ready node changed its devices or node
        group; False when nothing changed."""

        now = utcnow()
        cutoff = now - timedelta(seconds=self.timeout_s)
        cols = select(NodeRow.name, NodeRow.state, NodeRow.devices, NodeRow.group_id)
        self.reads = self.swept = 0
        with self.write_lock, self.sessions() as s:
            live = ["ready", *DRAIN_STATES]
            silent = (NodeRow.last_seen < cutoff) | NodeRow.last_seen.is_(None)
            expired = list(s.execute(select(NodeRow.id, NodeRow.name).where(
                NodeRow.agent.is_(True), NodeRow.state.in_(live), silent)).all())
            self.reads += len(expired)
            s.rollback()  # end the read: the marks below see what is committed now
            if expired and self.before_mark is not None:
                self.before_mark()
            for node_id, name in expired:
                # conditional in the database: a heartbeat committed since the read above (or
                # committing now: PostgreSQL re-checks the WHERE clause on the row version
                # that heartbeat wrote) keeps the node; only a row still silent is lost
                marked = s.execute(
                    update(NodeRow).where(NodeRow.id == node_id, NodeRow.agent.is_(True),
                                          NodeRow.state.in_(live), silent)
                    .values(state="lost", state_changed_at=now),
                    execution_options={"synchronize_session": False}
                ).rowcount  # type: ignore[attr-defined]
                if not marked:
                    log.info("node %s heartbeated just in time: not lost", name)
                    continue
                k = self._requeue_jobs(s, name, f"node {name} lost: no heartbeat for "
                                       f"{self.timeout_s:g} s; back to the queue")
                s.commit()  # the loss and its requeues together
                log.warning("node %s lost (%d jobs back to the queue)", name, k)
            known = self._known
            full = known is None
            t = time.monotonic()
            rows: list[Any]
            if full:
                rows = list(s.execute(cols).all())
                self.reads += len(rows)
                self._sweep = (t, 0)
            else:
                since = self._since - timedelta(seconds=self.OVERLAP_S)
                rows = list(s.execute(cols.where(NodeRow.state_changed_at >= since)).all())
                self.reads += len(rows)
                last_t, cursor = self._sweep
                total = len(known or ())
                k = total + 1 if self.full_s <= 0 else max(self.SWEEP_MIN, min(
                    self.SWEEP_MAX, math.ceil(total * (t - last_t) / self.full_s)))
                sq = select(NodeRow.id, NodeRow.name, NodeRow.state, NodeRow.devices,
                            NodeRow.group_id).order_by(NodeRow.id)
                got = list(s.execute(sq.where(NodeRow.id > cursor).limit(k)).all())
                if len(got) < k and cursor > 0:  # the end: go on from the start
                    got += s.execute(sq.where(NodeRow.id <= cursor)
                                     .limit(k - len(got))).all()
                self.swept = len(got)
                self._sweep = (t, got[-1][0] if len(got) == k else 0)
                rows += [tuple(r[1:]) for r in got]
            self._since = now
            fresh = {name: (st, dev, gid) for name, st, dev, gid in rows}
            # drains that are complete: nothing holds a device there any more
            draining = self._draining
            for n, v in fresh.items():
                if v[0] == "draining":
                    draining.add(n)
                else:
                    draining.discard(n)
            done = sorted(n for n in draining if self.busy is not None and not self.busy(n))
            if done:
                s.execute(update(NodeRow).where(NodeRow.name.in_(done),
                                                NodeRow.state == "draining")
                          .values(state="drained", state_changed_at=now),
                          execution_options={"synchronize_session": False})
                s.commit()
                for n in done:
                    log.info("node %s drained: nothing runs there any more", n)
                    draining.discard(n)
                    prev = fresh.get(n) or (known or {}).get(n)
                    if prev is not None:
                        fresh[n] = ("drained", prev[1], prev[2])
        if known is None:
            self._known = fresh
            return False
        events: list[tuple[str, str]] = []
        rebuild = False
        for n, (st, dev, gid) in fresh.items():
            old = known.get(n)
            was = old is not None and old[0] == "ready"
            if st == "ready":
                if not was:
                    events.append(("added", n))
                elif old is not None and (old[1], old[2]) != (dev, gid):
                    rebuild = True
            elif was:
                events.append(("drained" if st in DRAIN_STATES else "failed", n))
        known.update(fresh)
        if rebuild:
            return True
        return events or False

    def _requeue_jobs(self, s: Session, node: str, reason: str) -> int:
        n = 0
        # the node lists of the active allocations as plain rows (a gang's allocation names
        # all its nodes, the indexed ``node`` column only the first), then only the
        # allocations on this node as ORM objects: not 25,000 ORM rows per lost node
        # (a name that JSON writes as is is looked for in the list's text first, by the
        # database; the exact test below decides)
        q = select(AllocationRow.id, AllocationRow.nodes).where(AllocationRow.active.is_(True))
        quoted = json.dumps(node)
        if quoted == f'"{node}"':
            q = q.where(cast(AllocationRow.nodes, String).contains(quoted, autoescape=True))
        ids = [aid for aid, nodes in s.execute(q) if node in (nodes or [])]
        rows: list[Any] = []
        for i in range(0, len(ids), 500):
            rows += s.execute(select(AllocationRow, JobRow)
                              .join(JobRow, JobRow.id == AllocationRow.job_id)
                              .where(AllocationRow.id.in_(ids[i:i + 500]))).all()
        for a, job in rows:
            a.active = False
            a.released_at = utcnow()
            a.observed_state = a.observed_state or ExecState.LOST.value
            if job.cancel_requested:
                job.state, job.reason = JobState.CANCELLED.value, "cancelled (node lost)"
                job.finished_at = utcnow()
            else:
                job.state, job.reason = JobState.PENDING.value, reason
            job.updated_at = utcnow()
            s.add(JobEventRow(job_id=job.id, state=job.state, reason=job.reason[:2000]))
            n += 1
        return n
