"""A least-recently-used cache bounded by the bytes it holds, not by its number of entries.

`st.cache_data(max_entries=...)` bounds a cache by entries, but one tensor-views figure can be
a few kB or half a MB, so 128 entries could hold anything from 1 MB to 60 MB (and held 1.6 GB
before the figures were sampled). `ByteLRU` counts the bytes of each value instead and evicts
the least recently used entries until the total fits.

Plain Python: no streamlit, no TensorFlow. Safe to share between the threads of a server.
Values are returned as stored, not copied: callers must treat them as read-only
(`st.plotly_chart` reads a figure through `to_dict()`, which copies it).
"""

from __future__ import annotations

import pickle
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


def pickled_size(value: Any) -> int:
    """The bytes of `value` pickled: close to the JSON size of a plotly figure (which pickles as its dict)."""
    return len(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))


class ByIdentity:
    """A key part that stands for one living object (a run's DataFrame) without hashing its contents.

    Equal only to a `ByIdentity` of the very same object, and only while it lives. It holds a weak
    reference, so a cache never keeps a finished run's frames alive, and an id that Python reuses
    after the object died never matches the old entries. The object must not change while it is
    used as a key (a finished run's frames do not).
    """

    __slots__ = ("_id", "_ref")

    def __init__(self, obj: Any) -> None:
        self._ref = weakref.ref(obj)
        self._id = id(obj)

    @property
    def alive(self) -> bool:
        return self._ref() is not None

    def __hash__(self) -> int:
        return self._id

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ByIdentity):
            return NotImplemented
        target = self._ref()
        return target is not None and target is other._ref()

    def __repr__(self) -> str:
        return f"ByIdentity(id={self._id:#x}, alive={self.alive})"


class ByteLRU:
    """A thread-safe LRU cache whose values together hold at most `max_bytes`.

    Args:
        max_bytes: the budget for all values together, as measured by `size_of`.
        size_of: the size of one value in bytes; defaults to its pickled size.
        max_item_bytes: a value larger than this is returned but not kept, so that one huge
            result cannot flush everything else; defaults to a quarter of `max_bytes`.

    Raises:
        ValueError: for a budget below 1 byte or an item limit above the budget.
    """

    def __init__(
        self,
        max_bytes: int,
        size_of: Callable[[Any], int] = pickled_size,
        max_item_bytes: int | None = None,
    ) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise ValueError(f"max_bytes must be a whole number of bytes >= 1. Received: max_bytes={max_bytes!r}")
        max_item_bytes = max_bytes // 4 if max_item_bytes is None else max_item_bytes
        if not 0 <= max_item_bytes <= max_bytes:
            raise ValueError(
                f"max_item_bytes must be between 0 and max_bytes ({max_bytes}). Received: max_item_bytes={max_item_bytes}"
            )
        self.max_bytes = max_bytes
        self.max_item_bytes = max_item_bytes
        self._size_of = size_of
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()  # oldest first
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def total_bytes(self) -> int:
        """The bytes all kept values hold together (never more than `max_bytes`)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._entries

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The value kept for `key` (now the most recently used), or `default`."""
        with self._lock:
            if key not in self._entries:
                return default
            self._entries.move_to_end(key)
            return self._entries[key][0]

    def put(self, key: Hashable, value: Any) -> bool:
        """Keeps `value` under `key`, evicting the least recently used entries until it fits.

        Returns:
            Whether the value was kept (False when it is larger than `max_item_bytes`).
        """
        size = self._size_of(value)
        with self._lock:
            self._drop(key)
            if size > self.max_item_bytes:
                return False
            self._drop_dead_keys()
            while self._entries and self._bytes + size > self.max_bytes:
                self._drop(next(iter(self._entries)))
            self._entries[key] = (value, size)
            self._bytes += size
            return True

    def get_or_compute(self, key: Hashable, compute: Callable[[], T]) -> T:
        """The kept value for `key`, or `compute()` (kept if it fits).

        Two threads that miss the same key at once both compute it; the result is the same.
        """
        missing = object()
        value = self.get(key, missing)
        if value is missing:
            value = compute()
            self.put(key, value)
        return value

    def sweep(self) -> int:
        """Drops the entries keyed by objects that no longer exist (a closed session's runs); returns their bytes.

        `put` does this too, but only when something new is kept: after a workshop's tabs close, nothing
        is, and their figures would stay until the next visitor draws one.
        """
        with self._lock:
            before = self._bytes
            self._drop_dead_keys()
            return before - self._bytes

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def _drop(self, key: Hashable) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry[1]

    def _drop_dead_keys(self) -> None:
        """Drops entries keyed by an object that no longer exists: no key can reach them again."""
        dead = [k for k in self._entries if _has_dead_part(k)]
        for k in dead:
            self._drop(k)


def _has_dead_part(key: Hashable) -> bool:
    parts = key if isinstance(key, tuple) else (key,)
    return any(isinstance(part, ByIdentity) and not part.alive for part in parts)
