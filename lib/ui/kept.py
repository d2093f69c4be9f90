"""A small in-process cache for the ticket page's hottest reads, keyed on plain values.

``st.cache_data`` hashes every argument with its own recursive hasher, looks each positional argument's name up
with ``inspect.signature`` on every call, and hands back a copy of the value (pickled, then unpickled): 0.69 ms a
hit for the assignment suggestions' arguments, where a dict takes 0.005 ms (docs/performance.md). On the ticket
page such calls were an eighth of the script thread's samples (py-spy, 1M tickets), for values keyed on a few
integers and short strings. :func:`kept` keys on the same arguments, hashed by Python itself, and returns the kept
value itself: it is for reads whose values nobody changes (frozen dataclasses, lists that are only drawn).

Every key carries the database's URL, so one process serving (or testing against) several databases never hands
one database's value to another; entries expire after ``ttl`` seconds, the oldest go beyond ``max_entries``, and
a failed read is not kept. Arguments named with a leading underscore are passed on but not part of the key, as
with ``st.cache_data``.
"""

from __future__ import annotations

import functools
import inspect
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

_every: list[Kept[Any]] = []


class Kept(Generic[T]):
    """A function's kept values (see the module's notes)."""

    def __init__(self, fn: Callable[..., T], ttl: float, max_entries: int) -> None:
        self.fn, self.ttl, self.max_entries = fn, ttl, max_entries
        names = list(inspect.signature(fn).parameters)
        #: The positions of the arguments that make the key (every one not named with a leading underscore).
        self.keyed = tuple(i for i, name in enumerate(names) if not name.startswith("_"))
        self.values: OrderedDict[tuple, tuple[float, T]] = OrderedDict()
        self.lock = threading.Lock()
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any) -> T:
        from lib.ui.core import get_engine

        key = (get_engine().url, *(args[i] for i in self.keyed if i < len(args)))
        now = time.monotonic()
        with self.lock:
            found = self.values.get(key)
            if found is not None and now - found[0] < self.ttl:
                self.values.move_to_end(key)
                return found[1]
        value = self.fn(*args)
        with self.lock:
            self.values[key] = (now, value)
            self.values.move_to_end(key)
            while len(self.values) > self.max_entries:
                self.values.popitem(last=False)
        return value

    def clear(self) -> None:
        with self.lock:
            self.values.clear()


def kept(*, ttl: float, max_entries: int) -> Callable[[Callable[..., T]], Kept[T]]:
    """Keep ``fn``'s values per database and arguments (positional, hashable) for ``ttl`` seconds."""

    def wrap(fn: Callable[..., T]) -> Kept[T]:
        k = Kept(fn, ttl, max_entries)
        _every.append(k)
        return k

    return wrap


def clear() -> None:
    """Forget every kept value (tests; what ``st.cache_data.clear()`` does for the other caches)."""
    for k in _every:
        k.clear()
