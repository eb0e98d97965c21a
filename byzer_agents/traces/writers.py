"""Which process records a run, and whether it still lives: so that a run a killed process left
``running`` can be told from one that another live process is recording right now.

A writer is named by its host, its pid and the pid's start time. The host includes the pid
namespace where Linux shows it, since pids of two containers sharing one file are not comparable;
the start time tells a reused pid from the process that wrote the run. A writer on another host
(or namespace) cannot be checked from here, and counts as alive.
"""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import dataclass

__all__ = ["Writer", "is_alive", "this_process"]


@dataclass(frozen=True)
class Writer:
    """The process that records a run: its host, its pid, and when it started."""

    host: str
    pid: int
    started: float | None
    """When the process started, in clock ticks since boot (Linux); ``None`` where unknown."""


def this_process() -> Writer:
    """The writer of the runs this process records."""
    pid = os.getpid()
    return Writer(_host(), pid, _start_ticks(pid))


def is_alive(writer: Writer) -> bool:
    """False only when ``writer`` is known to be gone: on this host, and its pid is not running,
    or is running a process that started at another time (the pid was reused)."""
    if writer.host != _host():
        return True
    try:
        os.kill(writer.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, under another user
        pass
    except OSError:
        return True
    if _is_zombie(writer.pid):
        return False
    started = _start_ticks(writer.pid)
    return writer.started is None or started is None or started == writer.started


def _host() -> str:
    namespace = ""
    with contextlib.suppress(OSError):
        namespace = os.readlink("/proc/self/ns/pid")  # e.g. "pid:[4026531836]"
    return f"{socket.gethostname()} {namespace}".strip()


def _stat_fields(pid: int) -> list[str] | None:
    """``/proc/<pid>/stat`` after the command name (which may hold spaces), or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[-1].split()
    except OSError:
        return None


def _start_ticks(pid: int) -> float | None:
    fields = _stat_fields(pid)
    # Field 22 of stat is the start time; fields[0] here is field 3 (the state).
    return float(fields[19]) if fields is not None and len(fields) > 19 else None


def _is_zombie(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] == "Z"
