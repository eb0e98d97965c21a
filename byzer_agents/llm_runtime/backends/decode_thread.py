"""``DecodeThread``: the one thread that runs every call into a llama.cpp model.

Why: ggml runs its threads as an OpenMP team that belongs to the calling thread. A call from a
new thread starts a new team while the previous team's threads still spin, so a model called
from a different thread each time decodes at about half speed (measured here: 48 tok/s from
new threads against 97 from one, SmolLM2 on 2 threads). A Ray actor answers each request on a
thread of its pool, so the backend hands its calls to this one thread instead.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["DecodeThread"]

T = TypeVar("T")
_END = object()


class DecodeThread:
    """Runs functions, and the steps of iterators, one at a time on one long-lived thread."""

    def __init__(self, name: str = "llama-decode") -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    def run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``function(*args, **kwargs)`` on the decode thread; its result, or its exception."""
        return self._executor.submit(function, *args, **kwargs).result()

    def iterate(self, make: Callable[[], Iterator[T]]) -> Generator[T, None, None]:
        """The items of the iterator ``make()`` returns, each produced on the decode thread;
        closing this generator closes that iterator there too."""
        items = self.run(make)
        try:
            while True:
                item = self.run(next, items, _END)
                if item is _END:
                    return
                yield item
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                self.run(close)

    def close(self) -> None:
        """Stop the thread once what it runs now has finished."""
        self._executor.shutdown(wait=True)
