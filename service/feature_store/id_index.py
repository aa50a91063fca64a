"""id -> row for millions of string ids: an open-addressing hash table held in numpy arrays.

A Python dict of 5M ids costs over 100 bytes per id; a binary search over a sorted id array
touches ~23 cache lines per id at that size (~1 ms for 500 ids). This table costs 8 bytes of
hash per id plus 4 bytes per slot (at most half the slots are used) and finds an id in about
one probe: the B ids of a request are hashed with Python's `hash` (per process, which is fine:
the table lives in the process that built it), then probed together, round by round, in numpy.
A hash match is confirmed by comparing the strings themselves, so a 64-bit collision can never
return the wrong row.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

EMPTY = -1


class IdIndex:
    """Rows of unique string ids.

    Args:
        ids: (N,) unique, non-null strings; row i of the snapshot has ids[i].
    """

    def __init__(self, ids: pa.Array) -> None:
        self.ids = ids
        n = len(ids)
        self.capacity = 1 << max(4, int(2 * max(n, 1) - 1).bit_length())  # a power of two >= 2n
        self.mask = self.capacity - 1
        self.hashes = np.fromiter(map(hash, ids.to_pylist()), dtype=np.int64, count=n)  # (N,)
        self.table = np.full(self.capacity, EMPTY, dtype=np.int32 if n < 2**31 else np.int64)  # slot -> row
        self.max_probes = self._insert()

    def _insert(self) -> int:
        """Linear probing, all rows at once: each round, every pending row claims its slot if free."""
        pending = np.arange(len(self.hashes))
        slots = self.hashes.view(np.uint64) & np.uint64(self.mask)
        rounds = 0
        while pending.size:
            rounds += 1
            s = slots[pending]
            free = self.table[s] == EMPTY
            self.table[s[free]] = pending[free]  # rows aiming at the same free slot: one of them wins
            placed = self.table[s] == pending
            pending = pending[~placed]
            slots[pending] = (slots[pending] + np.uint64(1)) & np.uint64(self.mask)
        return rounds

    def repeated_ids(self) -> list[str]:
        """Ids that occur more than once (equal hashes, then equal strings); [] for unique ids."""
        values, counts = np.unique(self.hashes, return_counts=True)
        suspects = np.flatnonzero(np.isin(self.hashes, values[counts > 1]))
        seen: set[str] = set()
        repeated: list[str] = []
        for row in suspects.tolist():
            key = self.ids[row].as_py()
            if key in seen and key not in repeated:
                repeated.append(key)
            seen.add(key)
        return repeated

    @property
    def nbytes(self) -> int:
        return int(self.hashes.nbytes + self.table.nbytes + self.ids.nbytes)

    def find(self, query: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """B string ids -> rows (B,) int64 (0 where not found) and found (B,) bool."""
        b = len(query)
        hq = np.fromiter(map(hash, query), dtype=np.int64, count=b)  # (B,)
        slots = hq.view(np.uint64) & np.uint64(self.mask)
        rows = np.full(b, EMPTY, dtype=np.int64)
        active = np.arange(b)
        for _ in range(self.max_probes):
            r = self.table[slots[active]].astype(np.int64)
            hit = r != EMPTY
            match = hit & (self.hashes[np.where(hit, r, 0)] == hq[active])
            rows[active[match]] = r[match]
            active = active[hit & ~match]  # an empty slot ends the search: not found
            if not active.size:
                break
            slots[active] = (slots[active] + np.uint64(1)) & np.uint64(self.mask)
        found = rows != EMPTY
        if found.any():
            same = pc.equal(self.ids.take(pa.array(np.where(found, rows, 0))), pa.array(query, pa.string()))
            collided = found & ~np.asarray(same.to_numpy(zero_copy_only=False), dtype=bool)
            for i in np.flatnonzero(collided).tolist():  # 64-bit hash collisions: practically never
                rows[i] = self._find_slowly(query[i], int(hq[i]))
        found = rows != EMPTY
        return np.where(found, rows, 0), found

    def _find_slowly(self, key: str, h: int) -> int:
        slot = h & self.mask
        while (row := int(self.table[slot])) != EMPTY:
            if self.ids[row].as_py() == key:
                return row
            slot = (slot + 1) & self.mask
        return EMPTY
