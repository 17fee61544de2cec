"""Nodes and devices of the pools: where exactly a gang runs.

A pool is a list of nodes, a node a number of devices; every device has 1000 milli of capacity
(fractional jobs, Alibaba ``gpu_milli``, share a device). Placement rules:

* a fractional job (< 1000 milli) goes on one device: the fullest one it fits on (best fit,
  so partly used devices fill up before whole ones are broken into);
* a gang of k whole devices with k <= the largest node of the pool goes on one node: the up
  node with the fewest fully free devices that still has k (best fit: keeps big holes whole);
* a larger gang takes ``ceil(k / n)`` *whole* free nodes (largest first), never parts of
  nodes that others use;
* a demand that is not a whole number of devices with a gang > 1 takes ceil(demand / 1000)
  fully free devices, the last one holding the remainder.

Drained and failed nodes take no new work. :class:`Devices` keeps per pool a small summary
(largest free device, most fully free devices on one node, devices in fully free nodes) so
that "does a gang of d milli fit pool p now" is a vectorised test over all pools.
"""

from __future__ import annotations

import heapq
from collections.abc import Generator, Iterable
from typing import Any

import numpy as np

from suanli.sched.job import MILLI
from suanli.sched.steps import drain

# (node index, device index on that node, milli held) for every device a job holds
Placement = list[tuple[int, int, int]]
# a multi-node placement of a job runs at this fraction of the rate its throughput source gives
# when it spans more nodes than that source assumed (ceil(gang / ASSUMED_DEVICES_PER_NODE)):
# an assumption (inter-node network slower than the intra-node link), stated in the docs
INTER_NODE_FACTOR = 0.9
ASSUMED_DEVICES_PER_NODE = 8


def whole_devices(d: int) -> int:
    return -(-int(d) // MILLI)


class Devices:
    """Free milli of every device of every node, with per-pool summaries for fit tests.

    The numpy columns (``free``, ``nf``, ``mx``, ``up``, the per-pool summaries) are what
    callers read; every change also goes to plain Python lists that mirror them, because the
    per-start work (choose a node, take or release a few devices, update the summary) touches
    a handful of elements, where a list costs a fraction of a numpy element access. Per pool,
    up nodes are kept in heaps by their number of fully free devices (lazy deletion: an entry
    is valid while the node is up and still has that count), so the best-fit node and the
    lowest fully free nodes are found without scanning the pool."""

    # a pool's heap is rebuilt when it holds more than 2 x its up nodes + this many entries
    heap_slack = 64
    # release_many of more placements than this recounts the pools they are in at once
    bulk_release = 1000

    def __init__(self, P: int) -> None:
        self.P = P
        self.ids: list[str] = []
        self.pool = np.zeros(0, dtype=np.int64)
        self.ndev = np.zeros(0, dtype=np.int64)
        self.up = np.zeros(0, dtype=bool)
        self.first = np.zeros(0, dtype=np.int64)  # index of the node's first device
        self.free = np.zeros(0, dtype=np.int64)  # per device, milli
        self.nf = np.zeros(0, dtype=np.int64)  # per node: fully free devices
        self.mx = np.zeros(0, dtype=np.int64)  # per node: largest free milli on one device
        self.index: dict[str, int] = {}  # node id -> node index (the latest of that id)
        # list mirrors of the columns above (see the class docs)
        self._fl: list[int] = []
        self._nfl: list[int] = []
        self._mxl: list[int] = []
        self._upl: list[bool] = []
        self._firstl: list[int] = []
        self._ndl: list[int] = []
        self._pooll: list[int] = []
        self._pool_nodes: list[np.ndarray] = [np.zeros(0, dtype=np.int64) for _ in range(P)]
        # per pool: its up nodes (kept by update(), which every change of ``up`` calls)
        self._upn: list[np.ndarray] = [np.zeros(0, dtype=np.int64) for _ in range(P)]
        # per pool: its devices (node by node) and where each node's devices start in that
        self._pool_devs: list[np.ndarray] = [np.zeros(0, dtype=np.int64) for _ in range(P)]
        self._pool_off: list[np.ndarray] = [np.zeros(0, dtype=np.int64) for _ in range(P)]
        # per pool, up nodes counted by fully free devices and by largest free milli (the
        # latter without zero counts), and heaps of up nodes by fully free devices
        self._cnt_nf: list[list[int]] = [[0] for _ in range(P)]
        self._cnt_mx: list[dict[int, int]] = [{} for _ in range(P)]
        self._bk: list[list[list[int]]] = [[[]] for _ in range(P)]
        self._sizes: list[list[int]] = [[] for _ in range(P)]  # node sizes, largest first
        self._nup: list[int] = [0] * P  # up nodes
        self._wholel: list[int] = [0] * P
        self._nmaxl: list[int] = [0] * P
        self._sum: list[tuple[int, int, int, int, int]] = [(0, 0, 0, 0, 0)] * P
        self.maxdev = np.zeros(P, dtype=np.int64)  # largest free milli on one up device
        self.maxfree = np.zeros(P, dtype=np.int64)  # most fully free devices on one up node
        self.nmax = np.zeros(P, dtype=np.int64)  # largest up node
        self.whole = np.zeros(P, dtype=np.int64)  # devices of fully free up nodes
        # the same as milli thresholds: d fits iff d <= lo or span < d <= hi (see fits)
        self.lo = np.zeros(P, dtype=np.int64)
        self.span = np.zeros(P, dtype=np.int64)
        self.hi = np.zeros(P, dtype=np.int64)

    # ------------------------------------------------------------------ structure
    def add_node(self, node_id: str, pool: int, ndev: int, up: bool = True) -> int:
        """Append one node (all devices free); returns its index."""
        self.add_nodes([(node_id, pool, ndev, up)])
        return len(self.ids) - 1

    def add_nodes(self, nodes: list[tuple[str, int, int, bool]]) -> None:
        """Append ``(node id, pool, devices, up)`` nodes in order (all devices free)."""
        if not nodes:
            return
        k0, d0 = len(self.ids), len(self.free)
        ndev = np.array([n for _, _, n, _ in nodes], dtype=np.int64)
        pool = np.array([p for _, p, _, _ in nodes], dtype=np.int64)
        first = d0 + np.concatenate([[0], np.cumsum(ndev)[:-1]]).astype(np.int64)
        for j, (nid, _, _, _) in enumerate(nodes):
            self.ids.append(nid)
            self.index[nid] = k0 + j
        ups = [bool(u) for *_, u in nodes]
        self.pool = np.concatenate([self.pool, pool])
        self.ndev = np.concatenate([self.ndev, ndev])
        self.up = np.concatenate([self.up, np.array(ups, dtype=bool)])
        self.first = np.concatenate([self.first, first])
        self.free = np.concatenate([self.free, np.full(int(ndev.sum()), MILLI, dtype=np.int64)])
        self.nf = np.concatenate([self.nf, ndev])
        self.mx = np.concatenate([self.mx, np.full(len(ndev), MILLI, dtype=np.int64)])
        self._fl.extend([MILLI] * int(ndev.sum()))
        self._nfl.extend(ndev.tolist())
        self._mxl.extend([MILLI] * len(ndev))
        self._upl.extend(ups)
        self._firstl.extend(first.tolist())
        self._ndl.extend(ndev.tolist())
        self._pooll.extend(pool.tolist())
        for p in sorted(set(pool.tolist())):
            js = np.flatnonzero(pool == p)
            off = len(self._pool_devs[p]) + np.concatenate([[0], np.cumsum(ndev[js])[:-1]])
            devs = np.concatenate([np.arange(first[j], first[j] + ndev[j]) for j in js])
            self._pool_nodes[p] = np.concatenate([self._pool_nodes[p], k0 + js])
            self._pool_off[p] = np.concatenate([self._pool_off[p], off.astype(np.int64)])
            self._pool_devs[p] = np.concatenate([self._pool_devs[p], devs.astype(np.int64)])
            self.update(p)

    def set_up(self, k: int, up: bool) -> None:
        self.up[k] = up
        self._upl[k] = bool(up)
        self.update(int(self.pool[k]))

    def pool_nodes(self, p: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Up nodes of pool ``p`` with (fully free devices, largest free milli on a device)."""
        nodes = self._upn[p]
        return nodes, self.nf[nodes], self.mx[nodes]

    def _node_changed(self, nodes: Iterable[int]) -> None:
        """Per-node counts of ``nodes`` from their devices, and the pool summaries
        incrementally (per pool: up nodes by fully free devices and by largest free milli)."""
        pools: set[int] = set()
        fl, nfl, mxl, upl = self._fl, self._nfl, self._mxl, self._upl
        firstl, ndl, pooll = self._firstl, self._ndl, self._pooll
        for k in nodes:
            a = firstl[k]
            n = ndl[k]
            seg = fl[a:a + n]
            nf, mx = seg.count(MILLI), max(seg)
            onf, omx = nfl[k], mxl[k]
            if nf == onf and mx == omx:
                continue
            p = pooll[k]
            if nf != onf:
                nfl[k] = nf
                self.nf[k] = nf
            if mx != omx:
                mxl[k] = mx
                self.mx[k] = mx
            if upl[k]:
                self._refile(p, k, n, nf, onf, mx, omx)
                pools.add(p)
        for p in pools:
            self._summary(p)

    def _node1(self, k: int) -> None:
        """:meth:`_node_changed` for one node (a start on one node: the common case)."""
        fl = self._fl
        a = self._firstl[k]
        n = self._ndl[k]
        seg = fl[a:a + n]
        nf, mx = seg.count(MILLI), max(seg)
        onf, omx = self._nfl[k], self._mxl[k]
        if nf == onf and mx == omx:
            return
        p = self._pooll[k]
        if nf != onf:
            self._nfl[k] = nf
            self.nf[k] = nf
        if mx != omx:
            self._mxl[k] = mx
            self.mx[k] = mx
        if self._upl[k]:
            self._refile(p, k, n, nf, onf, mx, omx)
            self._summary(p)

    def _refile(self, p: int, k: int, n: int, nf: int, onf: int, mx: int, omx: int) -> None:
        """An up node ``k`` of pool ``p`` (``n`` devices) went from ``onf`` to ``nf`` free
        devices and from ``omx`` to ``mx`` largest free share: the pool's counts and its
        best-fit heap (the caller refreshes the pool's summary)."""
        if nf != onf:
            cn = self._cnt_nf[p]
            cn[onf] -= 1
            cn[nf] += 1
            self._wholel[p] += (nf == n) * n - (onf == n) * n
            bk = self._bk[p][nf]
            heapq.heappush(bk, k)
            if len(bk) > 2 * self._nup[p] + self.heap_slack:  # too many stale entries
                self._rebuild_bucket(p, nf)
        if mx != omx:
            cm = self._cnt_mx[p]
            c = cm[omx] - 1
            if c:
                cm[omx] = c
            else:
                del cm[omx]
            cm[mx] = cm.get(mx, 0) + 1

    def _rebuild_bucket(self, p: int, b: int) -> None:
        nfl = self._nfl
        self._bk[p][b] = [k for k in self._upn[p].tolist() if nfl[k] == b]  # sorted: a heap

    def _summary(self, p: int) -> None:
        # the largest count index in use (short scans: this runs on every take and release)
        cn = self._cnt_nf[p]
        i = len(cn) - 1
        while i > 0 and cn[i] == 0:
            i -= 1
        maxfree = i if cn[i] else 0
        cm = self._cnt_mx[p]
        maxdev = MILLI if MILLI in cm else (max(cm) if cm else 0)
        # a fraction fits iff d <= maxdev; k whole devices iff k <= maxfree (one node) or
        # nmax < k <= whole (whole nodes); maxfree > 0 implies maxdev = 1000, so in milli:
        whole = self._wholel[p]
        new = (maxfree, maxdev, maxfree * MILLI if maxfree > 0 else maxdev,
               self._nmaxl[p] * MILLI, whole * MILLI)
        old = self._sum[p]
        if new == old:
            return
        self._sum[p] = new
        if new[0] != old[0]:
            self.maxfree[p] = maxfree
        if new[1] != old[1]:
            self.maxdev[p] = maxdev
        if new[2] != old[2]:
            self.lo[p] = new[2]
        self.span[p] = new[3]
        if new[4] != old[4]:
            self.hi[p] = new[4]
            self.whole[p] = whole

    def _recount(self) -> None:
        """Per-node counts from the device array (after loading it whole)."""
        for p in range(self.P):
            nodes = self._pool_nodes[p]
            if len(nodes):
                f = self.free[self._pool_devs[p]]
                off = self._pool_off[p]
                self.nf[nodes] = np.add.reduceat((f == MILLI).astype(np.int64), off)
                self.mx[nodes] = np.maximum.reduceat(f, off)
        self._fl = self.free.tolist()
        self._nfl = self.nf.tolist()
        self._mxl = self.mx.tolist()
        self._upl = [bool(u) for u in self.up.tolist()]
        for p in range(self.P):
            self.update(p)

    def update(self, p: int) -> None:
        """Recompute pool ``p``'s summary (after a node event there, or loading)."""
        allnodes = self._pool_nodes[p]
        self._upn[p] = allnodes[self.up[allnodes]]
        nodes = self._upn[p].tolist()
        nfl, mxl, ndl = self._nfl, self._mxl, self._ndl
        top = max((ndl[k] for k in allnodes.tolist()), default=0)
        cn = [0] * (top + 1)
        cm: dict[int, int] = {}
        bk: list[list[int]] = [[] for _ in range(top + 1)]
        whole = 0
        for k in nodes:  # ascending node index: each bucket is a sorted list, i.e. a heap
            nf = nfl[k]
            cn[nf] += 1
            bk[nf].append(k)
            cm[mxl[k]] = cm.get(mxl[k], 0) + 1
            if nf == ndl[k]:
                whole += nf
        self._cnt_nf[p] = cn
        self._cnt_mx[p] = cm
        self._bk[p] = bk
        self._nup[p] = len(nodes)
        self._sizes[p] = sorted({ndl[k] for k in nodes}, reverse=True)
        self._nmaxl[p] = self._sizes[p][0] if nodes else 0
        self.nmax[p] = self._nmaxl[p]
        self._wholel[p] = whole
        self.whole[p] = whole
        self._sum[p] = (-1, -1, -1, -1, -1)  # write every summary column
        self._summary(p)

    # ------------------------------------------------------------------ fit tests
    def fits(self, dem: np.ndarray) -> np.ndarray:
        """(len(dem) x pools): a gang of each demand (milli) can be placed there now."""
        d = dem[:, None]
        return (d <= self.lo) | ((d > self.span) & (d <= self.hi))

    def fits_pool(self, dem: np.ndarray, p: int) -> np.ndarray:
        """Column ``p`` of :meth:`fits`."""
        return (dem <= self.lo[p]) | ((dem > self.span[p]) & (dem <= self.hi[p]))

    def thresholds(self, p: int) -> tuple[int, int, int]:
        """``(lo, span, hi)`` of pool ``p`` as ints: a demand ``d`` fits it now iff
        ``d <= lo or span < d <= hi`` (:meth:`fits` for one demand, without numpy)."""
        _, _, lo, span, hi = self._sum[p]
        return lo, span, hi

    # ------------------------------------------------------------------ placement
    def choose(self, p: int, d: int, prefer: Placement | None = None) -> Placement | None:
        """Where a demand of ``d`` milli goes in pool ``p`` now (see the module rules), or
        None. ``prefer``: devices to keep if they are all still free enough (a running job
        re-planned onto its own pool)."""
        if prefer:
            upl, fl, firstl = self._upl, self._fl, self._firstl
            for k, i, m in prefer:
                if not upl[k] or fl[firstl[k] + i] < m:
                    break
            else:
                return list(prefer)
        if not self._nup[p]:
            return None
        if d < MILLI:
            devs = self._pool_devs[p]
            f = self.free[devs]
            ok = np.flatnonzero((f >= d) & self.up[self._dev_node(devs)])
            if len(ok) == 0:
                return None
            g = int(devs[ok[np.argmin(f[ok])]])  # fullest device it fits on, lowest first
            k = int(np.searchsorted(self.first, g, side="right") - 1)
            return [(k, g - int(self.first[k]), int(d))]
        k_dev = whole_devices(d)
        if k_dev <= self._nmaxl[p]:  # the largest up node of the pool
            node = self._best_fit(p, k_dev)
            return None if node is None else self._take_on([node], d)
        if self._wholel[p] < k_dev:  # devices in fully free up nodes
            return None
        return self._take_on(self._whole_nodes(p, k_dev), d)

    def _best_fit(self, p: int, k_dev: int) -> int | None:
        """The up node of pool ``p`` with the fewest fully free devices that still has
        ``k_dev``, lowest index on ties."""
        bk = self._bk[p]
        nfl, upl = self._nfl, self._upl
        for b in range(k_dev, len(bk)):
            h = bk[b]
            while h:
                k = h[0]
                if upl[k] and nfl[k] == b:
                    return k
                heapq.heappop(h)  # stale entry
        return None

    def _whole_nodes(self, p: int, k_dev: int) -> list[int]:
        """Fully free up nodes of pool ``p``, largest first and lowest index on ties, until
        they hold ``k_dev`` devices (the caller checked that they do)."""
        nfl, upl, ndl = self._nfl, self._upl, self._ndl
        chosen: list[int] = []
        got = 0
        for size in self._sizes[p]:
            h = self._bk[p][size]
            seen: set[int] = set()
            back: list[int] = []
            while h and got < k_dev:
                k = heapq.heappop(h)
                if k in seen or not upl[k] or nfl[k] != size:
                    continue  # stale or duplicate entry
                seen.add(k)
                back.append(k)
                if ndl[k] == size:
                    chosen.append(k)
                    got += size
            for k in back:
                heapq.heappush(h, k)
            if got >= k_dev:
                break
        return chosen

    def _take_on(self, nodes: list[int], d: int) -> Placement:
        out: Placement = []
        left = int(d)
        if left <= 0:
            return out
        fl, firstl, ndl = self._fl, self._firstl, self._ndl
        for k in nodes:
            a = firstl[k]
            for i, v in enumerate(fl[a:a + ndl[k]]):
                if v == MILLI:
                    if left > MILLI:
                        out.append((k, i, MILLI))
                        left -= MILLI
                    else:
                        out.append((k, i, left))
                        return out
        return out

    def take(self, pl: Placement) -> None:
        fl, firstl, npf = self._fl, self._firstl, self.free
        k0 = pl[0][0] if pl else -1
        one = True
        for k, i, m in pl:
            g = firstl[k] + i
            v = fl[g] - m
            fl[g] = v
            npf[g] = v
            if k != k0:
                one = False
        if one:
            if pl:
                self._node1(k0)
        else:
            self._node_changed(dict.fromkeys([k for k, _, _ in pl]))

    def down_milli(self, pl: Placement) -> int:
        """Milli-devices of placement ``pl`` on nodes that are not up (drained or failed while
        the job ran there)."""
        upl = self._upl
        return sum(m for k, _, m in pl if not upl[k])

    def release(self, pl: Placement) -> None:
        self.release_many([pl])

    def release_many(self, pls: list[Placement]) -> None:
        if len(pls) > self.bulk_release:
            self._release_bulk(pls)
            return
        fl, firstl = self._fl, self._firstl
        nodes: dict[int, None] = {}
        gs: list[int] = []
        for pl in pls:
            for k, i, m in pl:
                g = firstl[k] + i
                fl[g] += m
                gs.append(g)
                nodes[k] = None
        if len(gs) > 64:
            self.free[np.asarray(gs, dtype=np.int64)] = [fl[g] for g in gs]
        else:
            npf = self.free
            for g in gs:
                npf[g] = fl[g]
        self._node_changed(nodes)

    def _release_bulk(self, pls: list[Placement]) -> None:
        """:meth:`release_many` for many placements (a round releasing every running job):
        the devices in numpy, then the nodes and summaries of the pools touched recounted
        (:meth:`update`), instead of one incremental update per node."""
        drain(self.release_many_g(pls))

    def release_many_g(self, pls: list[Placement]) -> Generator[float, None, None]:
        """:meth:`release_many` as steps that report their estimated work (microseconds) as
        they go (for a caller working in slices: see ``Scheduler(round_slice=...)``)."""
        if len(pls) <= self.bulk_release:
            self.release_many(pls)
            yield len(pls) * 2.0
            return
        touched = np.zeros(self.P, dtype=bool)
        for c in range(0, len(pls), 2000):
            flat = [x for pl in pls[c:c + 2000] for x in pl]
            if not flat:
                continue
            a = np.asarray(flat, dtype=np.int64).reshape(-1, 3)
            g = self.first[a[:, 0]] + a[:, 1]
            np.add.at(self.free, g, a[:, 2])
            touched[self.pool[a[:, 0]]] = True
            yield len(flat) * 0.3
        if not touched.any():
            return
        self._fl = self.free.tolist()
        yield len(self._fl) * 0.05
        pools = np.flatnonzero(touched).tolist()
        for p in pools:
            nodes = self._pool_nodes[p]
            f = self.free[self._pool_devs[p]]
            off = self._pool_off[p]
            self.nf[nodes] = np.add.reduceat((f == MILLI).astype(np.int64), off)
            self.mx[nodes] = np.maximum.reduceat(f, off)
        self._nfl = self.nf.tolist()
        self._mxl = self.mx.tolist()
        yield len(self._fl) * 0.1
        for p in pools:
            self.update(p)
            yield len(self._pool_nodes[p]) * 1.0

    def copy(self) -> Devices:
        c = Devices.__new__(Devices)
        c.__dict__.update(self.__dict__)
        c.free = self.free.copy()
        c.nf = self.nf.copy()
        c.mx = self.mx.copy()
        c.up = self.up.copy()
        for a in ("maxdev", "maxfree", "nmax", "whole", "lo", "span", "hi"):
            setattr(c, a, getattr(self, a).copy())
        c._fl = self._fl.copy()
        c._nfl = self._nfl.copy()
        c._mxl = self._mxl.copy()
        c._upl = self._upl.copy()
        c._cnt_nf = [x.copy() for x in self._cnt_nf]
        c._cnt_mx = [x.copy() for x in self._cnt_mx]
        c._bk = [[h.copy() for h in b] for b in self._bk]
        c._sizes = list(self._sizes)
        c._nup = self._nup.copy()
        c._wholel = self._wholel.copy()
        c._nmaxl = self._nmaxl.copy()
        c._sum = self._sum.copy()
        c._upn = list(self._upn)
        return c

    def _dev_node(self, devs: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.first, devs, side="right") - 1

    def nodes_of(self, pl: Placement) -> list[int]:
        return sorted({k for k, _, _ in pl})

    def named(self, pl: Placement) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """``((node id, (device indices on it, ...)), ...)`` for a decision."""
        if not pl:
            return ()
        k0 = pl[0][0]
        idx = []
        for k, i, _ in pl:
            if k != k0:
                break
            idx.append(i)
        else:  # one node: the common case
            idx.sort()
            return ((self.ids[k0], tuple(idx)),)
        by: dict[int, list[int]] = {}
        for k, i, _ in pl:
            by.setdefault(k, []).append(i)
        return tuple((self.ids[k], tuple(sorted(v))) for k, v in sorted(by.items()))

    def unusable(self, demands_by_pool: list[np.ndarray]) -> np.ndarray:
        """Per pool, free devices (in devices, fractions included) that no demand listed for
        that pool could use now: on nodes where none of the demands fits. Multi-node demands
        use fully free nodes when the pool has enough of them."""
        out = np.zeros(self.P)
        for p in range(self.P):
            nodes, nf, mx = self.pool_nodes(p)
            if len(nodes) == 0:
                continue
            dem = demands_by_pool[p]
            size = self.ndev[nodes]
            usable = np.zeros(len(nodes), dtype=bool)
            if len(dem):
                frac = dem[dem < MILLI]
                k = -(-dem[dem >= MILLI] // MILLI)
                if len(frac):
                    usable |= mx >= frac.min()
                small = k[k <= size.max()]
                if len(small):
                    usable |= nf >= small.min()
                big = k[k > size.max()]
                if len(big) and big.min() <= size[nf == size].sum():
                    usable |= nf == size
            for j in np.flatnonzero(~usable).tolist():
                k0 = int(nodes[j])
                out[p] += float(self.free[self.first[k0]:self.first[k0] + self.ndev[k0]].sum())
        return out / MILLI

    # ------------------------------------------------------------------ plain data
    def to_plain(self) -> dict[str, Any]:
        return {"ids": list(self.ids), "pool": self.pool.tolist(), "ndev": self.ndev.tolist(),
                "up": self.up.tolist(), "free": self.free.tolist()}

    @classmethod
    def from_plain(cls, P: int, data: dict[str, Any]) -> Devices:
        d = cls(P)
        d.add_nodes([(nid, int(p), int(n), bool(up)) for nid, p, n, up in
                     zip(data["ids"], data["pool"], data["ndev"], data["up"], strict=True)])
        d.free = np.asarray(data["free"], dtype=np.int64)
        d._recount()
        return d
