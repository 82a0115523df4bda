"""Per-instance prefix cache: an LRU over prompt block hashes (Mooncake ``hash_ids``).

A request stream may carry, for every request, the hashes of its prompt's consecutive
``hash_block_tokens``-token blocks (Mooncake traces: 512-token blocks; a hash identifies the
block's content AND its whole prefix, so equal leading runs mean equal prefixes). Each instance
keeps an LRU of the block hashes whose KV it has computed, with room for ``capacity_blocks``
blocks (the instance's KV capacity in hash blocks).

On admission the scheduler asks :meth:`PrefixCache.match` for the length of the leading run of
the request's hashes present in the cache (a read, no refresh: an admission that then fails for
lack of KV must not touch the LRU), and after a successful admission calls
:meth:`PrefixCache.insert` to insert or refresh (most recently used) all of the request's
hashes, evicting least recently used ones beyond the capacity.

Cost: O(number of the request's hash blocks) per admission, O(1) per block (``OrderedDict``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

__all__ = ["PrefixCache"]


class PrefixCache:
    """An LRU set of block hashes with a fixed capacity (in blocks)."""

    __slots__ = ("capacity_blocks", "_lru")

    def __init__(self, capacity_blocks: int) -> None:
        if capacity_blocks < 0:
            raise ValueError(f"capacity_blocks must be >= 0, got {capacity_blocks}")
        self.capacity_blocks = int(capacity_blocks)
        self._lru: OrderedDict[int, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._lru)

    def __contains__(self, h: int) -> bool:
        return h in self._lru

    def match(self, hashes: Sequence[int]) -> int:
        """Number of leading ``hashes`` present in the cache (no LRU update)."""
        lru = self._lru
        n = 0
        for h in hashes:
            if h not in lru:
                break
            n += 1
        return n

    def insert(self, hashes: Sequence[int]) -> None:
        """Insert or refresh ``hashes`` (in order, so the last is the most recently used)."""
        cap = self.capacity_blocks
        if cap == 0:
            return
        lru = self._lru
        for h in hashes:
            if h in lru:
                lru.move_to_end(h)
            else:
                lru[h] = None
                if len(lru) > cap:
                    lru.popitem(last=False)
