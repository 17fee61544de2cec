"""Nodes and devices (suanli.sched.nodes): placement rules, decisions naming devices, and the
invariants under random events (hypothesis): no device over-allocated, gangs on one node or on
whole nodes, failed nodes return exactly their jobs."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sched_support import make_cluster
from suanli.sched import Job, Scheduler, get_policy
from suanli.sched.cluster import ClusterSpec, Pool
from suanli.sched.job import MILLI
from suanli.sched.nodes import INTER_NODE_FACTOR
from test_sched_policies import RATES, TRAIN, FixedRates, job

CLUSTER = make_cluster()  # east: fast_gpu 1x8, slow_dcu 1x8; west: mid_npu 2x8, fast_gpu 1x4


def pool(nodes: tuple[int, ...], chip: str = "fast_gpu", ids: tuple[str, ...] = ()) -> ClusterSpec:
    return ClusterSpec(pools=[Pool(index=0, site="s", region=None, chip_type=chip, chip=None,
                                   devices=sum(nodes), pue=1.2, price_cny_kwh=0.5,
                                   carbon_kg_kwh=0.5, wan_gbps=10.0, power_w=400.0,
                                   power_known=False, nodes=nodes, node_ids=ids)])


def sched(cluster: ClusterSpec, policy: str = "fifo") -> Scheduler:
    return Scheduler(cluster, get_policy(policy), FixedRates(RATES))


def test_gangs_go_on_one_node_or_on_whole_nodes_and_decisions_name_devices() -> None:
    s = sched(pool((8, 8, 8, 4), ids=("a", "b", "c", "d")))
    s.submit(job(0, gang=4))
    s.submit(job(1, gang=16))
    s.submit(job(2, gang=4))
    s.submit(job(3, gang=2))
    out = {d.job_id: d for d in s.schedule(0.0)}
    # 4 devices: best fit is the 4-device node d; 16: two whole 8-device nodes; the second
    # 4-gang then takes half of the last 8-device node and the 2-gang fills up that node
    assert out["j0"].placement == (("d", (0, 1, 2, 3)),)
    assert out["j1"].placement == (("a", tuple(range(8))), ("b", tuple(range(8))))
    assert out["j2"].placement == (("c", (0, 1, 2, 3)),)
    assert out["j3"].placement == (("c", (4, 5)),)
    s.submit(job(4, gang=4))  # 2 devices left on node c: a 4-gang does not fit any node
    assert s.schedule(1.0) == []
    assert s.free[0] == 2 * MILLI  # ... although the pool has 2 free devices in total
    stop = s.cancel("j3", 2.0)
    assert stop is not None and stop.placement == (("c", (4, 5)),)  # a stop names them too


def test_eight_gpu_pods_fill_eight_gpu_nodes_one_each() -> None:
    """The case of issue 8: 556 eight-GPU pods and 29 eight-GPU nodes: 29 run."""
    s = sched(pool((8,) * 29))
    for i in range(556):
        s.submit(job(i, gang=8, work=1e6))
    out = s.schedule(0.0)
    assert len(out) == 29
    assert sorted(d.placement[0][0] for d in out) == sorted(f"s/fast_gpu/{i}" for i in range(29))


def test_fractional_jobs_share_a_device_and_fill_it_first() -> None:
    s = sched(pool((2,)))
    for i, frac in enumerate([0.5, 0.25, 0.5, 0.25, 1.0]):
        s.submit(Job(id=f"j{i}", arrival=0.0, gang=1, work=100.0, workload=TRAIN,
                     gpu_fraction=frac))
    out = {d.job_id: d.placement for d in s.schedule(0.0)}
    dev0 = ("s/fast_gpu/0", (0,))
    dev1 = ("s/fast_gpu/0", (1,))
    assert out["j0"] == (dev0,) and out["j1"] == (dev0,)  # 0.75 of device 0
    assert out["j2"] == (dev1,)  # 0.5 does not fit device 0's 0.25 left
    assert out["j3"] == (dev0,)  # best fit: fills device 0 up
    assert "j4" not in out  # no whole device left although 0.5 of the pool is free
    assert s.dev.free.tolist() == [0, 500]


def test_a_placement_on_more_nodes_than_assumed_gets_the_inter_node_factor() -> None:
    s = sched(pool((4, 4)))
    s.submit(job(0, gang=8))  # two 4-device nodes; the rate source assumed one 8-device node
    (d,) = s.schedule(0.0)
    assert len(d.placement) == 2
    assert d.rate == RATES["fast_gpu"] * 8 * INTER_NODE_FACTOR
    s2 = sched(pool((8,)))
    s2.submit(job(0, gang=8))
    (d2,) = s2.schedule(0.0)
    assert d2.rate == RATES["fast_gpu"] * 8


def test_node_failure_returns_exactly_the_jobs_on_that_node() -> None:
    s = sched(pool((8, 8), ids=("n0", "n1")))
    for i in range(4):
        s.submit(job(i, gang=4, work=1e6))
    placed = {d.job_id: d.placement[0][0] for d in s.schedule(0.0)}
    on_n1 = sorted(j for j, n in placed.items() if n == "n1")
    assert len(on_n1) == 2
    assert sorted(s.on_node_failed("n1", 10.0)) == on_n1
    assert all(s.job_state(j) == ("waiting" if j in on_n1 else "running") for j in placed)
    assert s.schedule(11.0) == []  # node n0 is full, n1 is gone
    s.on_node_added("n2", 0, 8, 20.0)
    assert {d.placement[0][0] for d in s.schedule(21.0)} == {"n2"}


# ------------------------------------------------------------------ invariants (hypothesis)
EVENTS = st.lists(st.tuples(
    st.sampled_from(["submit", "submit", "submit", "finish", "finish", "fail_node", "add_node",
                     "drain_node", "tick"]),
    st.integers(0, 10_000)), min_size=5, max_size=70)


def check(s: Scheduler) -> None:
    dev = s.dev
    assert (dev.free >= 0).all() and (dev.free <= MILLI).all()
    held = np.zeros(len(dev.free), dtype=np.int64)
    for slot, pl in s.placement.items():
        assert s.job_state(s.jobs[slot].id) == "running"
        p = int(s.t.pool[slot])
        d = int(s.t.demand[slot])
        assert sum(m for _, _, m in pl) == d
        devs = [int(dev.first[k]) + i for k, i, _ in pl]
        assert len(set(devs)) == len(devs)
        nodes = sorted({k for k, _, _ in pl})
        assert all(int(dev.pool[k]) == p for k in nodes)
        for k, i, m in pl:
            assert 0 <= i < dev.ndev[k]
            held[dev.first[k] + i] += m
        k_dev = -(-d // MILLI)
        if len(nodes) > 1:  # only gangs larger than every node of the pool, on whole nodes
            assert k_dev > max(int(dev.ndev[k]) for k in nodes)
            for k in nodes:
                mine = sum(1 for x, _, _ in pl if x == k)
                assert mine == dev.ndev[k] or k == nodes[-1] or mine == k_dev
    assert set(s.placement) == set(s.running)
    # the pool figures equal the devices of its up nodes: capacity, and free = what is free
    # on them (devices of jobs still running on a drained node count in neither)
    for p in range(s.P):
        ks = [k for k in range(len(dev.ids)) if int(dev.pool[k]) == p and bool(dev.up[k])]
        assert s.capacity[p] == MILLI * sum(int(dev.ndev[k]) for k in ks)
        assert s.free[p] == sum(int(dev.free[dev.first[k]:dev.first[k] + dev.ndev[k]].sum())
                                for k in ks)
    # the incrementally kept pool summaries equal a recount from scratch
    ref = dev.copy()
    ref._recount()
    for a in ("maxdev", "maxfree", "nmax", "whole", "lo", "span", "hi", "nf", "mx"):
        np.testing.assert_array_equal(getattr(dev, a), getattr(ref, a), err_msg=a)
    np.testing.assert_array_equal(dev.free + held, MILLI)  # every device: free + held = 1000
    for nid, v in s.nodes.items():
        if v[2] == "failed":
            k = dev.index[nid]
            assert not any(x == k for pl in s.placement.values() for x, _, _ in pl)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=EVENTS, policy=st.sampled_from(["fifo", "las", "max-min", "balanced"]))
def test_device_invariants_under_random_events(events: list[tuple[str, int]], policy: str) -> None:
    s = Scheduler(CLUSTER, get_policy(policy), FixedRates(RATES), round_s=60.0)
    now, n, added = 0.0, 0, 0
    for kind, r in events:
        now += 7.0
        running = sorted(s.jobs[x].id for x in s.running)
        if kind == "submit":
            gang = [1, 1, 2, 4, 8, 16][r % 6]
            frac = [1.0, 0.5, 0.3][r % 3] if gang == 1 else 1.0
            s.submit(Job(id=f"j{n}", arrival=now, gang=gang, work=1e4, workload=TRAIN,
                         gpu_fraction=frac), now)
            n += 1
        elif kind == "finish" and running:
            s.on_finish(running[r % len(running)], now)
        elif kind in ("fail_node", "drain_node"):
            up = sorted(k for k, v in s.nodes.items() if v[2] == "up")
            if len(up) > 2:
                nid = up[r % len(up)]
                if kind == "fail_node":
                    k = s.dev.index[nid]
                    on = sorted(s.jobs[x].id for x, pl in s.placement.items()
                                if any(y == k for y, _, _ in pl))
                    assert sorted(s.on_node_failed(nid, now)) == on
                    assert all(s.job_state(j) == "waiting" for j in on)
                else:
                    s.on_node_drained(nid, now)
        elif kind == "add_node":
            s.on_node_added(f"new/{added}", r % CLUSTER.n_pools, [4, 8][r % 2], now)
            added += 1
        s.schedule(now)
        check(s)


@given(policy=st.sampled_from(["fifo", "las", "max-min"]))
@settings(max_examples=6, deadline=None)
def test_a_drained_node_keeps_its_jobs_and_the_idle_node_stays_usable(policy: str) -> None:
    s = sched(pool((4, 4), ids=("a", "b")), policy)
    s.submit(job(0, gang=2, work=1e6))
    (d,) = s.schedule(0.0)
    on = d.placement[0][0]
    other = "b" if on == "a" else "a"
    s.on_node_drained(on, 1.0)
    assert s.free.tolist() == [4 * MILLI]  # the idle node, all of it; nothing of the drained one
    s.submit(job(1, gang=4, work=1e6), 2.0)
    (d1,) = s.schedule(2.0)
    assert d1.job_id == "j1" and d1.placement[0][0] == other
    s.submit(job(2, gang=1, work=1e6), 3.0)
    for t in (400.0, 800.0):  # rounds of the preemptive policies: j0 is not moved or stopped
        assert all(x.job_id != "j0" for x in s.schedule(t))
        assert s.job_state("j0") == "running"
    s.on_finish("j0", 900.0)
    check(s)


def test_fragmentation_counts_free_devices_no_waiting_job_can_use() -> None:
    s = sched(pool((8, 8)))
    assert s.fragmentation().tolist() == [0.0]  # nobody waits: idle, not stranded
    for i in range(3):
        s.submit(job(i, gang=6, work=1e6))
    s.schedule(0.0)  # two 6-gangs run, 2 + 2 devices free, a 6-gang waits
    assert s.fragmentation().tolist() == [4.0]
    s.submit(job(9, gang=4, work=1e6))  # a 4-gang cannot use them either
    assert s.fragmentation().tolist() == [4.0]
    s.submit(job(10, gang=2, work=1e6))  # a 2-gang could
    assert s.fragmentation().tolist() == [0.0]


def test_the_simulator_reports_stranded_devices_per_pool() -> None:
    from suanli.sim.engine import run_simulation

    jobs = [job(i, gang=6, work=4e4, arrival=float(i)) for i in range(30)]
    res = run_simulation(CLUSTER, jobs, "fifo", FixedRates(RATES))
    frag = res.metrics["scheduler"]["stranded_devices_mean_by_pool"]
    assert set(frag) == {p.label for p in CLUSTER.pools}
    # 6-gangs leave 2 devices of every 8-device node and the whole 4-device node stranded
    assert frag["west/fast_gpu"] > 0 and all(v >= 0 for v in frag.values())


def test_pool_summary_and_best_fit_follow_takes_releases_and_drains() -> None:
    """The incremental pool summary equals a recount from scratch, and the best-fit node
    choice (fewest fully free devices that still hold the gang, lowest index on ties)
    ignores drained nodes, after every take / release / drain."""
    import numpy as np

    from suanli.sched.nodes import Devices

    rng = np.random.default_rng(7)
    dev = Devices(1)
    dev.add_nodes([(f"n{i}", 0, n, True) for i, n in enumerate([8, 8, 4, 8, 2])])
    held = []
    for step in range(300):
        if held and rng.random() < 0.4:
            dev.release(held.pop(int(rng.integers(len(held)))))
        elif step % 50 == 49:
            k = int(rng.integers(len(dev.ids)))
            dev.set_up(k, not bool(dev.up[k]))
        else:
            d = int(rng.choice([250, 500, 1000, 2000, 4000, 8000, 16000]))
            pl = dev.choose(0, d)
            up = np.flatnonzero(dev.up)
            if 1000 <= d <= 1000 * int(dev.nmax[0]) and up.size:  # one-node gangs
                k = d // 1000
                cand = [j for j in up.tolist() if dev.nf[j] >= k]
                want = min(cand, key=lambda j: (int(dev.nf[j]), j)) if cand else None
                got = None if pl is None else {n for n, _, _ in pl}
                assert got == (None if want is None else {want}), (step, d)
            if pl is not None:
                dev.take(pl)
                held.append(pl)
        fresh = Devices.from_plain(1, dev.to_plain())
        for a in ("maxdev", "maxfree", "whole", "lo", "span", "hi"):
            assert getattr(dev, a)[0] == getattr(fresh, a)[0], (step, a)


def test_choose_matches_a_brute_force_reference_over_long_runs() -> None:
    """Devices keeps per-pool heaps of nodes by fully free devices (lazily cleaned, rebuilt
    when stale entries pile up) and list mirrors of its numpy columns. Over thousands of
    takes, releases, drains and copies on two pools of mixed node sizes, every choice equals
    the rule computed from scratch (one node: fewest fully free devices that still hold the
    gang, lowest index; several nodes: fully free nodes, largest first, lowest index), and
    the numpy columns equal a recount."""
    import numpy as np

    from suanli.sched.nodes import Devices

    rng = np.random.default_rng(11)
    sizes = [[8, 8, 4, 8, 2, 8, 8, 4], [8] * 6]
    dev = Devices(2)
    dev.heap_slack = 0  # rebuild heaps often, so that rebuilds are tested too
    dev.add_nodes([(f"p{p}n{i}", p, n, True) for p, ss in enumerate(sizes)
                   for i, n in enumerate(ss)])

    def want(p: int, k: int) -> list[int] | None:
        nodes = [j for j in range(len(dev.ids)) if int(dev.pool[j]) == p and dev.up[j]]
        full = [int(np.sum(dev.free[dev.first[j]:dev.first[j] + dev.ndev[j]] == 1000))
                for j in nodes]
        if not nodes:
            return None
        if k <= max(int(dev.ndev[j]) for j in nodes):
            cand = [(f, j) for f, j in zip(full, nodes, strict=True) if f >= k]
            return [min(cand)[1]] if cand else None
        whole = sorted((-int(dev.ndev[j]), j) for f, j in zip(full, nodes, strict=True)
                       if f == dev.ndev[j])
        got, out = 0, []
        for neg, j in whole:
            out.append(j)
            got -= neg
            if got >= k:
                return sorted(out)
        return None

    held: list[list[tuple[int, int, int]]] = []
    for step in range(4000):
        r = rng.random()
        if held and r < 0.45:
            dev.release(held.pop(int(rng.integers(len(held)))))
        elif r < 0.47:
            k = int(rng.integers(len(dev.ids)))
            dev.set_up(k, not bool(dev.up[k]))
        elif r < 0.48:
            dev = dev.copy()  # a copy carries on exactly like the original
        else:
            p = int(rng.integers(2))
            d = 1000 * int(rng.choice([1, 1, 2, 3, 4, 8, 12, 16, 24]))
            pl = dev.choose(p, d)
            w = want(p, d // 1000)
            assert (None if pl is None else sorted({n for n, _, _ in pl})) == w, (step, p, d)
            if pl is not None:
                dev.take(pl)
                held.append(pl)
        if step % 97 == 0:
            fresh = Devices.from_plain(2, dev.to_plain())
            assert dev.nf.tolist() == fresh.nf.tolist() and dev.mx.tolist() == fresh.mx.tolist()
            for a in ("maxdev", "maxfree", "whole", "lo", "span", "hi"):
                assert getattr(dev, a).tolist() == getattr(fresh, a).tolist(), (step, a)


def test_a_bulk_release_leaves_the_devices_as_releasing_one_by_one() -> None:
    """Releasing many placements at once (Devices._release_bulk: numpy, then the pools
    recounted) gives the same devices, node counts, pool summaries and later choices as the
    incremental release, on two pools with mixed node sizes, fractions and a drained node."""
    import numpy as np

    from suanli.sched.nodes import Devices

    rng = np.random.default_rng(5)
    sizes = [[8, 8, 4, 8, 2, 8], [8] * 5]
    base = Devices(2)
    base.add_nodes([(f"p{p}n{i}", p, n, True) for p, ss in enumerate(sizes)
                    for i, n in enumerate(ss)])
    for trial in range(30):
        dev = base.copy()
        held = []
        for _ in range(40):
            p = int(rng.integers(2))
            pl = dev.choose(p, int(rng.choice([250, 500, 1000, 2000, 4000, 8000, 16000])))
            if pl is not None:
                dev.take(pl)
                held.append(pl)
        if trial % 3 == 0:
            dev.set_up(int(rng.integers(len(dev.ids))), False)
        out = [held[i] for i in sorted(rng.choice(len(held), size=len(held) // 2,
                                                  replace=False).tolist())]
        one, bulk = dev.copy(), dev.copy()
        one.bulk_release = 10**9
        bulk.bulk_release = 0
        one.release_many(out)
        bulk.release_many(out)
        for a in ("free", "nf", "mx", "maxdev", "maxfree", "whole", "lo", "span", "hi"):
            np.testing.assert_array_equal(getattr(one, a), getattr(bulk, a), err_msg=a)
        assert one._fl == bulk._fl and one._nfl == bulk._nfl and one._mxl == bulk._mxl
        for d in (250, 1000, 2000, 4000, 8000, 16000, 24000):
            for p in range(2):
                assert one.choose(p, d) == bulk.choose(p, d), (trial, d, p)
