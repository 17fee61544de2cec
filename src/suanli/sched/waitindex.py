"""Waiting jobs indexed by what decides whether they can start now.

Back-fill (between rounds) starts waiting jobs in priority order, each on its best-scoring
eligible pool with room, skipping jobs that fit nowhere. For the built-in policies a waiting
job's priority, scores and eligible pools are fixed until the next round (see
``Policy.fixed_while_waiting``), so the scheduler computes them once per job and
files the job in a *group* of jobs with the same demand, queue and eligible pools. Whether a
group can start anything is one test per group (a gang of its demand fits one of its pools,
and its queue's quota has room); jobs inside a group are kept in priority order in a heap.

A completion then costs O(starts x groups) instead of O(waiting jobs): back-fill repeatedly
takes the first job (in global priority order) among the groups that can start something, and
stops as soon as no group can. Groups are few (demands x queues x eligibility patterns): tens
on the Philly trace against tens of thousands of waiting jobs.

Entries are removed lazily: a job that starts, leaves or is re-filed (after it stops again)
invalidates its old entry through a per-slot version number.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Container, Generator

import numpy as np

from suanli.sched.steps import drain

Entry = tuple[float, int, int]  # (priority, slot, version)


class WaitIndex:
    """One index (one back-fill pass): score rows per slot and groups of waiting slots."""

    def __init__(self, P: int) -> None:
        self.P = P
        self.score = np.zeros((0, P))
        self.pri = np.zeros(0)  # per slot: the priority it was last filed with
        self.ver = np.zeros(0, dtype=np.int64)
        # per slot: it has an entry of its current version in a heap (filed, not popped)
        self.live = np.zeros(0, dtype=bool)
        self.clear()

    def clear(self) -> None:
        """Forget every group (a full rebuild follows)."""
        self.live[:] = False
        self._key_of: dict[tuple[int, int, bytes], int] = {}
        self.heaps: list[list[Entry]] = []
        self.dem = np.zeros(0, dtype=np.int64)
        self.q = np.zeros(0, dtype=np.int64)
        self.el = np.zeros((0, self.P), dtype=bool)
        self._udem: tuple[np.ndarray, np.ndarray] | None = None  # np.unique(dem, inverse)

    def _room(self, n: int) -> None:
        if n > len(self.ver):
            cap = max(n, 2 * len(self.ver), 1024)
            score = np.zeros((cap, self.P))
            score[: len(self.score)] = self.score
            ver = np.zeros(cap, dtype=np.int64)
            ver[: len(self.ver)] = self.ver
            pri = np.zeros(cap)
            pri[: len(self.pri)] = self.pri
            live = np.zeros(cap, dtype=bool)
            live[: len(self.live)] = self.live
            self.score, self.ver, self.pri, self.live = score, ver, pri, live

    def _group(self, dem: int, q: int, el: np.ndarray) -> int:
        key = (dem, q, el.tobytes())
        g = self._key_of.get(key)
        if g is None:
            g = len(self.heaps)
            self._key_of[key] = g
            self.heaps.append([])
            self.dem = np.append(self.dem, dem)
            self.q = np.append(self.q, q)
            self.el = np.vstack([self.el, el[None, :]])
            self._udem = None
        return g

    def add(self, slots: np.ndarray, pri: np.ndarray, scores: np.ndarray, el: np.ndarray,
            dem: np.ndarray, q: np.ndarray) -> None:
        """File ``slots`` (each with its priority, score row, eligible pools, demand, queue);
        an earlier entry of the same slot becomes invalid."""
        if len(slots) == 0:
            return
        self._room(int(slots.max()) + 1)
        self.score[slots] = scores
        self.pri[slots] = pri
        self.ver[slots] += 1
        # jobs with nowhere to go are not filed (no pool would ever be chosen for them)
        has = el.any(axis=1)
        self.live[slots] = has
        if not has.all():
            slots, pri, el, dem, q = slots[has], pri[has], el[has], dem[has], q[has]
        if len(slots) == 0:
            return
        if len(slots) <= 32:  # the common case between rounds: one or two jobs
            for i in np.lexsort((slots, pri)).tolist():
                s = int(slots[i])
                g = self._group(int(dem[i]), int(q[i]), el[i])
                heapq.heappush(self.heaps[g], (float(pri[i]), s, int(self.ver[s])))
            return
        # group ids: unique (demand, queue, eligibility bits) rows, numbered in the order of
        # those rows sorted lexicographically (as np.unique(axis=0) of the packed rows would)
        if self.P <= 62:
            # one small integer per row: (rank of demand, queue, rank of the eligibility bits
            # read as a big-endian number): a 1-D unique, much cheaper than unique rows
            w = np.left_shift(np.int64(1), np.arange(self.P - 1, -1, -1, dtype=np.int64))
            bint = el.astype(np.int64) @ w
            _, di = np.unique(dem, return_inverse=True)
            ub, bi = np.unique(bint, return_inverse=True)
            nq = int(q.max()) + 1
            comb = (di.reshape(-1) * nq + q) * len(ub) + bi.reshape(-1)
            _, first, inv = np.unique(comb, return_index=True, return_inverse=True)
        else:
            bits = np.packbits(el, axis=1)
            keys = np.concatenate([dem[:, None], q[:, None], bits.astype(np.int64)], axis=1)
            _, first, inv = np.unique(keys, axis=0, return_index=True, return_inverse=True)
        gid = np.fromiter((self._group(int(dem[i]), int(q[i]), el[i]) for i in first.tolist()),
                          np.int64, len(first))[inv.reshape(-1)]
        order = np.lexsort((slots, pri))
        ver = self.ver[slots]
        fresh = [not h for h in self.heaps]
        heaps = self.heaps
        for g, e in zip(gid[order].tolist(),
                        zip(pri[order].astype(float).tolist(), slots[order].tolist(),
                            ver[order].tolist(), strict=True), strict=True):
            if fresh[g]:
                heaps[g].append(e)  # ascending order: already a heap
            else:
                heapq.heappush(heaps[g], e)

    def entries(self) -> int:
        """Entries in the heaps, stale ones included."""
        return sum(map(len, self.heaps))

    def changed(self, slots: np.ndarray, pri: np.ndarray, scores: np.ndarray,
                waiting: np.ndarray) -> tuple[np.ndarray, int]:
        """:meth:`changed_g` in one go."""
        return drain(self.changed_g(slots, pri, scores, waiting))

    def changed_g(self, slots: np.ndarray, pri: np.ndarray, scores: np.ndarray,
                  waiting: np.ndarray) -> Generator[float, None, tuple[np.ndarray, int]]:
        """Re-file in place of a rebuild. First every entry of a slot that is not in
        ``waiting`` (the slots waiting now) is dropped (so a job that started outside the
        index and waits again later has none); then, per slot of ``slots`` (all waiting
        jobs), True where it must be filed again: it has no entry, or one with another
        priority or score row than ``pri`` / ``scores`` (its demand and queue are fixed);
        and the number of entries dropped.
        The entries kept are then exactly those a rebuild would make (heaps are ordered by
        (priority, slot), groups by demand, queue and the eligible pools of the score row)."""
        n = int(max(slots.max(initial=-1), waiting.max(initial=-1))) + 1
        self._room(n)
        live = self.live[:n]
        w = np.zeros(n, dtype=bool)
        w[waiting] = True
        gone = np.flatnonzero(live & ~w)
        yield n * 0.05  # (estimated microseconds of work, for a caller working in slices)
        if len(gone):
            self.ver[gone] += 1
            self.live[gone] = False
            # and out of the heaps now, not one by one in later back-fill passes (where a
            # round's thousands of started jobs would make one pass slow)
            out = set(gone.tolist())
            seen = 0
            for g, h in enumerate(self.heaps):
                kept = [e for e in h if e[1] not in out]
                if len(kept) < len(h):
                    heapq.heapify(kept)
                    self.heaps[g] = kept
                seen += len(h)
                if seen >= 8192:
                    yield seen * 0.55
                    seen = 0
        same = self.live[slots] & (self.pri[slots] == pri)
        yield len(slots) * 0.05
        rows = np.flatnonzero(same)
        for a in range(0, len(rows), 16384):
            r = rows[a:a + 16384]
            same[r] = (self.score[slots[r]] == scores[r]).all(axis=1)
            yield len(r) * 0.15
        return ~same, len(gone)

    def valid(self, e: Entry, waiting: Container[int]) -> bool:
        return e[1] in waiting and e[2] == self.ver[e[1]]

    def next_job(
        self,
        fits: Callable[[np.ndarray], np.ndarray],
        used: np.ndarray,
        quota: np.ndarray,
        waiting: Container[int],
    ) -> tuple[int, int, np.ndarray] | None:
        """(slot, group) of the first waiting job, in (priority, slot) order, among the groups
        that can start a job now, with its group's pools that are eligible and fit now; or
        None. ``fits(demands)`` gives (groups x pools) "a gang of that demand fits there now";
        a queue's ``used + demand`` must stay within its ``quota``. The job is removed from
        its group."""
        G = len(self.heaps)
        if G == 0:
            return None
        room = used[self.q] + self.dem <= quota[self.q]
        if self._udem is None:  # groups were added: their distinct demands
            self._udem = np.unique(self.dem, return_inverse=True)
        ud, inv = self._udem
        # nothing changes fits or room inside this call; a fit depends on the demand only
        elf = self.el & fits(ud)[inv.reshape(-1)]
        ok = room & elf.any(axis=1)
        while True:
            cand = np.flatnonzero(ok)
            if len(cand) == 0:
                return None
            # the smallest head among candidate groups; invalid heads are dropped on the way
            best: Entry | None = None
            bg = -1
            for g in cand.tolist():
                h = self.heaps[g]
                while h and not self.valid(h[0], waiting):
                    e = heapq.heappop(h)
                    if e[2] == self.ver[e[1]]:
                        self.live[e[1]] = False
                if not h:
                    ok[g] = False  # empty group: dropped
                    continue
                if best is None or h[0][:2] < best[:2]:
                    best, bg = h[0], g
            if best is not None:
                heapq.heappop(self.heaps[bg])
                self.live[best[1]] = False
                return best[1], bg, elf[bg]
