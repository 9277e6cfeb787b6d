"""A process, its descendants and the machine's CPU through psutil, in the benchmarks' units.

Every `read_*` of a process returns None when the process is gone (psutil raises instead); a pid may
be an int or "self". Memory is in MiB (bytes / 1024 / 1024). What psutil lacks (peak RSS, RssAnon,
the CPU model) is read from /proc by bench/procfs.py.
"""

from __future__ import annotations

import os

import psutil

MIB = 1024 * 1024


def open_process(pid: int | str) -> psutil.Process:
    """psutil's handle of a pid ("self": this process); raises psutil.NoSuchProcess when it is gone."""
    return psutil.Process(os.getpid() if pid == "self" else int(pid))


def process_tree(pid: int) -> list[int]:
    """pid and all its living descendants (children, their children, ...), parents before children."""
    try:
        return [pid, *(child.pid for child in open_process(pid).children(recursive=True))]
    except psutil.Error:
        return [pid]


def read_cpu_seconds(pid: int | str, *, children: bool = False) -> float | None:
    """User + system CPU seconds of a process (all its threads); children=True adds its waited-for children."""
    try:
        times = open_process(pid).cpu_times()
    except psutil.Error:
        return None
    own = times.user + times.system
    return own + times.children_user + times.children_system if children else own


def read_tree_cpu_seconds(pid: int) -> float | None:
    """CPU seconds of pid and its living descendants (what they used so far); None when pid is gone."""
    own = read_cpu_seconds(pid)
    if own is None:
        return None
    return own + sum(read_cpu_seconds(p) or 0.0 for p in process_tree(pid)[1:])


def read_rss_mb(pid: int | str) -> float | None:
    """Resident memory of a process in MiB."""
    try:
        return open_process(pid).memory_info().rss / MIB
    except psutil.Error:
        return None


def read_tree_rss_mb(pid: int) -> float | None:
    """Resident memory of pid and its living descendants, summed, in MiB; None when pid is gone."""
    values = [read_rss_mb(p) for p in process_tree(pid)]
    return None if values[0] is None else sum(v or 0.0 for v in values)


def read_command_line(pid: int) -> list[str]:
    """A process's argv; [] for a kernel thread or a process that has exited."""
    try:
        return open_process(pid).cmdline()
    except psutil.Error:
        return []


def read_uid(pid: int) -> int | None:
    """The real user id a process runs as."""
    try:
        return open_process(pid).uids().real
    except psutil.Error:
        return None


def read_system_busy_seconds() -> float:
    """CPU seconds the machine's cores have been busy since boot: all but idle and iowait, as psutil.cpu_percent.

    Guest time is already counted in user and nice time, so it is left out of the sum.
    """
    times = psutil.cpu_times()
    unbusy = ("idle", "iowait", "guest", "guest_nice")
    return sum(value for name, value in times._asdict().items() if name not in unbusy)
