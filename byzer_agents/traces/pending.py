"""``PendingWrites``: the records a trace database would not take yet (locked by another process,
damaged, full), kept in memory in order and written when it takes them again, so that tracing
never costs the caller the answer it traces.

The memory is bounded: past ``limit`` records, new ones are dropped, and so is what is still
waiting when the store closes. Every drop is counted (``dropped``) and logged.
"""

from __future__ import annotations

import collections
import logging
import sqlite3
from typing import Any

from byzer_agents.exceptions import ConfigurationError

__all__ = ["PendingWrites", "is_retryable"]

logger = logging.getLogger("byzer_agents.traces")

_LOG_EVERY_DROPS = 100


def is_retryable(error: sqlite3.Error) -> bool:
    """Whether a failed write may succeed later: the database was busy, locked, damaged or out
    of space. Constraint and programming errors are the caller's, and always fail again."""
    if isinstance(
        error,
        (
            sqlite3.IntegrityError,
            sqlite3.ProgrammingError,
            sqlite3.DataError,
            sqlite3.NotSupportedError,
            sqlite3.InterfaceError,
        ),
    ):
        return False
    return isinstance(error, sqlite3.DatabaseError)


class PendingWrites:
    """Statements the database did not take, oldest first, at most ``limit`` of them."""

    def __init__(self, where: str, *, limit: int) -> None:
        if limit < 0:
            raise ConfigurationError(f"the pending-records limit must be 0 or more, got {limit}")
        self.where = where
        """The database, as log lines name it."""
        self.limit = limit
        self.dropped = 0
        """Records given up: over the limit, refused for good, or still waiting at close."""
        self._statements: collections.deque[tuple[str, tuple[Any, ...]]] = collections.deque()
        self._failing = False

    def __len__(self) -> int:
        return len(self._statements)

    def keep(self, sql: str, params: tuple[Any, ...], error: sqlite3.Error) -> None:
        """Keep a statement the database refused with ``error``, or drop it when memory is full."""
        if not self._failing:
            self._failing = True
            logger.warning(
                "%s did not take a trace record (%s); keeping records in memory (at most %d) "
                "until it does; answers are returned as usual",
                self.where,
                error,
                self.limit,
            )
        if len(self._statements) >= self.limit:
            self.drop(1, f"{self.limit} records are already waiting")
            return
        self._statements.append((sql, params))

    def write(self, connection: sqlite3.Connection) -> bool:
        """Write what waits, oldest first, until the database refuses one; True when none is
        left. A statement that can never succeed is dropped, and the others go on."""
        written = 0
        while self._statements:
            sql, params = self._statements[0]
            try:
                connection.execute(sql, params)
            except sqlite3.Error as error:
                if is_retryable(error):
                    return False
                self._statements.popleft()
                self.drop(1, f"the database refused it for good ({error})")
                continue
            self._statements.popleft()
            written += 1
        if self._failing:
            self._failing = False
            logger.warning(
                "%s takes trace records again; wrote the %d that waited", self.where, written
            )
        return True

    def drop(self, count: int, reason: str) -> None:
        """Count ``count`` records as lost, and say so in the log (the first of a run of drops,
        then every hundredth)."""
        before = self.dropped
        self.dropped += count
        if before == 0 or before // _LOG_EVERY_DROPS != self.dropped // _LOG_EVERY_DROPS:
            logger.warning(
                "%s: dropped %d trace record(s): %s (%d dropped so far)",
                self.where,
                count,
                reason,
                self.dropped,
            )

    def give_up(self, reason: str) -> None:
        """Drop everything still waiting."""
        if self._statements:
            self.drop(len(self._statements), reason)
            self._statements.clear()
