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

from typing import Any

import numpy as np

from suanli.sched.job import MILLI

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
    """Free milli of every device of every node, with per-pool summaries for fit tests."""

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
        self._pool_nodes: list[np.ndarray] = [np.zeros(0, dtype=np.int64) for _ in range(P)]
        # per pool: its up nodes (kept by update(), which every change of ``up`` calls)
        self._upn: list[np.ndarray] = [np.zeros(0, dtype=np.int64) for _ in range(P)]
        # per pool: its devices (node by node) and where each node's devices start in that
        self._pool_devs: list[np.ndarray] = [np.zeros(0, dtype=np.int64) for _ in range(P)]
        self._pool_off: list[np.ndarray] = [np.zeros(0, dtype=np.int64) for _ in range(P)]
        # per pool, up nodes counted by fully free devices and by largest free milli
        self._cnt_nf: list[np.ndarray] = [np.zeros(1, dtype=np.int64) for _ in range(P)]
        self._cnt_mx: list[np.ndarray] = [np.zeros(MILLI + 1, dtype=np.int64) for _ in range(P)]
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
        self.pool = np.concatenate([self.pool, pool])
        self.ndev = np.concatenate([self.ndev, ndev])
        self.up = np.concatenate([self.up, np.array([u for *_, u in nodes], dtype=bool)])
        self.first = np.concatenate([self.first, first])
        self.free = np.concatenate([self.free, np.full(int(ndev.sum()), MILLI, dtype=np.int64)])
        self.nf = np.concatenate([self.nf, ndev])
        self.mx = np.concatenate([self.mx, np.full(len(ndev), MILLI, dtype=np.int64)])
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
        self.update(int(self.pool[k]))

    def pool_nodes(self, p: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Up nodes of pool ``p`` with (fully free devices, largest free milli on a device)."""
        nodes = self._upn[p]
        return nodes, self.nf[nodes], self.mx[nodes]

    def _node_changed(self, nodes: set[int]) -> None:
        """Per-node counts of ``nodes`` from their devices, and the pool summaries
        incrementally (per pool: up nodes by fully free devices and by largest free milli)."""
        pools: set[int] = set()
        for k in nodes:
            a = int(self.first[k])
            n = int(self.ndev[k])
            fl = self.free[a:a + n].tolist()
            nf, mx = fl.count(MILLI), max(fl)
            p = int(self.pool[k])
            if self.up[k]:
                onf, omx = int(self.nf[k]), int(self.mx[k])
                cn, cm = self._cnt_nf[p], self._cnt_mx[p]
                cn[onf] -= 1
                cn[nf] += 1
                cm[omx] -= 1
                cm[mx] += 1
                self.whole[p] += (nf == n) * n - (onf == n) * n
                pools.add(p)
            self.nf[k] = nf
            self.mx[k] = mx
        for p in pools:
            self._summary(p)

    def _summary(self, p: int) -> None:
        # the largest count index in use (short Python scans: this runs on every take and
        # release; a whole free device somewhere in the pool is the common case)
        cn = self._cnt_nf[p]
        i = len(cn) - 1
        while i > 0 and cn[i] == 0:
            i -= 1
        self.maxfree[p] = i if len(cn) and cn[i] else 0
        cm = self._cnt_mx[p]
        if cm[MILLI]:
            self.maxdev[p] = MILLI
        else:
            nz = np.flatnonzero(cm)
            self.maxdev[p] = nz[-1] if len(nz) else 0
        # a fraction fits iff d <= maxdev; k whole devices iff k <= maxfree (one node) or
        # nmax < k <= whole (whole nodes); maxfree > 0 implies maxdev = 1000, so in milli:
        self.lo[p] = self.maxfree[p] * MILLI if self.maxfree[p] > 0 else self.maxdev[p]
        self.span[p] = self.nmax[p] * MILLI
        self.hi[p] = self.whole[p] * MILLI

    def _recount(self) -> None:
        """Per-node counts from the device array (after loading it whole)."""
        for p in range(self.P):
            nodes = self._pool_nodes[p]
            if len(nodes):
                f = self.free[self._pool_devs[p]]
                off = self._pool_off[p]
                self.nf[nodes] = np.add.reduceat((f == MILLI).astype(np.int64), off)
                self.mx[nodes] = np.maximum.reduceat(f, off)
            self.update(p)

    def update(self, p: int) -> None:
        """Recompute pool ``p``'s summary (after a take, release or node event there)."""
        allnodes = self._pool_nodes[p]
        self._upn[p] = allnodes[self.up[allnodes]]
        nodes, nf, mx = self.pool_nodes(p)
        size = self.ndev[nodes]
        top = int(self.ndev[self._pool_nodes[p]].max()) if len(self._pool_nodes[p]) else 0
        self._cnt_nf[p] = np.bincount(nf, minlength=top + 1).astype(np.int64)
        self._cnt_mx[p] = np.bincount(mx, minlength=MILLI + 1).astype(np.int64)
        self.nmax[p] = size.max() if len(nodes) else 0
        self.whole[p] = size[nf == size].sum()
        self._summary(p)

    # ------------------------------------------------------------------ fit tests
    def fits(self, dem: np.ndarray) -> np.ndarray:
        """(len(dem) x pools): a gang of each demand (milli) can be placed there now."""
        d = dem[:, None]
        return (d <= self.lo) | ((d > self.span) & (d <= self.hi))

    def fits_pool(self, dem: np.ndarray, p: int) -> np.ndarray:
        """Column ``p`` of :meth:`fits`."""
        return (dem <= self.lo[p]) | ((dem > self.span[p]) & (dem <= self.hi[p]))

    # ------------------------------------------------------------------ placement
    def choose(self, p: int, d: int, prefer: Placement | None = None) -> Placement | None:
        """Where a demand of ``d`` milli goes in pool ``p`` now (see the module rules), or
        None. ``prefer``: devices to keep if they are all still free enough (a running job
        re-planned onto its own pool)."""
        if prefer and all(self.up[k] and self.free[self.first[k] + i] >= m
                          for k, i, m in prefer):
            return list(prefer)
        nodes = self._upn[p]
        if len(nodes) == 0:
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
        nf = self.nf[nodes]
        if k_dev <= int(self.nmax[p]):  # nmax: the largest up node of the pool
            j = int(np.argmin(np.where(nf >= k_dev, nf, np.iinfo(np.int64).max)))
            if nf[j] < k_dev:
                return None
            node = int(nodes[j])  # best fit, lowest index on ties
            return self._take_on([node], d)
        size = self.ndev[nodes]
        full = np.flatnonzero(nf == size)
        order = full[np.lexsort((nodes[full], -size[full]))]
        got, chosen = 0, []
        for j in order.tolist():
            chosen.append(int(nodes[j]))
            got += int(size[j])
            if got >= k_dev:
                return self._take_on(chosen, d)
        return None

    def _take_on(self, nodes: list[int], d: int) -> Placement:
        out: Placement = []
        left = int(d)
        for k in nodes:
            f = self.free[self.first[k]:self.first[k] + self.ndev[k]]
            for i in np.flatnonzero(f == MILLI).tolist():
                if left <= 0:
                    break
                m = min(MILLI, left)
                out.append((k, int(i), m))
                left -= m
        return out

    def take(self, pl: Placement) -> None:
        for k, i, m in pl:
            self.free[self.first[k] + i] -= m
        self._node_changed({k for k, _, _ in pl})

    def release(self, pl: Placement) -> None:
        self.release_many([pl])

    def release_many(self, pls: list[Placement]) -> None:
        nodes: set[int] = set()
        for pl in pls:
            for k, i, m in pl:
                self.free[self.first[k] + i] += m
                nodes.add(k)
        self._node_changed(nodes)

    def copy(self) -> Devices:
        c = Devices.__new__(Devices)
        c.__dict__.update(self.__dict__)
        c.free = self.free.copy()
        c.nf = self.nf.copy()
        c.mx = self.mx.copy()
        c.up = self.up.copy()
        for a in ("maxdev", "maxfree", "nmax", "whole", "lo", "span", "hi"):
            setattr(c, a, getattr(self, a).copy())
        c._cnt_nf = [x.copy() for x in self._cnt_nf]
        c._upn = list(self._upn)
        c._cnt_mx = [x.copy() for x in self._cnt_mx]
        return c

    def _dev_node(self, devs: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.first, devs, side="right") - 1

    def nodes_of(self, pl: Placement) -> list[int]:
        return sorted({k for k, _, _ in pl})

    def named(self, pl: Placement) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """``((node id, (device indices on it, ...)), ...)`` for a decision."""
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
