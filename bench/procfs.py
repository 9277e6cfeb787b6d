"""Linux /proc readers for the benchmarks: memory and CPU time of a process, the system's CPU, the CPU model.

Each `parse_*` function takes the text of one /proc file (so tests feed it fixtures); each `read_*`
function reads the file and returns None when it cannot (the process is gone, or this is not Linux).
A pid may be an int or "self". Memory is in MB of 1024 * 1024 bytes (the kB of /proc divided by 1024).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

# Fields of /proc/PID/stat counted after the ")" that ends the command name (which may hold spaces
# and parentheses): index 0 is field 3 (state), so field 14 (utime) is index 11.
_UTIME, _STIME, _CUTIME, _CSTIME = 11, 12, 13, 14


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def clock_ticks() -> int:
    """Jiffies per second: the unit of the CPU times in /proc/stat and /proc/PID/stat."""
    return os.sysconf("SC_CLK_TCK")


# --- /proc/PID/status: memory ----------------------------------------------------------------


def parse_status_kb(text: str, field: str) -> int | None:
    """A kB field of /proc/PID/status ('VmRSS', 'VmHWM' = peak RSS, ...); None when absent."""
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if key == field and len(parts) == 2 and parts[1] == "kB":
            return int(parts[0])
    return None


def read_status_mb(pid: int | str, field: str) -> float | None:
    """A kB field of /proc/PID/status in MB; None when the process is gone or has no such field."""
    text = _read(f"/proc/{pid}/status")
    kb = None if text is None else parse_status_kb(text, field)
    return None if kb is None else kb / 1024


# --- /proc/PID/stat: CPU time of a process ----------------------------------------------------


def parse_process_cpu_ticks(text: str, *, children: bool = False) -> int:
    """utime + stime of /proc/PID/stat in jiffies (all the process's threads).

    children=True adds cutime + cstime: the children the process has waited for.
    """
    fields = text.rsplit(")", 1)[1].split()
    ticks = int(fields[_UTIME]) + int(fields[_STIME])
    if children:
        ticks += int(fields[_CUTIME]) + int(fields[_CSTIME])
    return ticks


def read_process_cpu_seconds(pid: int | str, *, children: bool = False) -> float | None:
    """User + system CPU seconds of a process (children=True: plus its waited-for children)."""
    text = _read(f"/proc/{pid}/stat")
    return None if text is None else parse_process_cpu_ticks(text, children=children) / clock_ticks()


# --- a process and its descendants (a server of several processes: python -m studio.serve) -------


def parse_parent_pid(text: str) -> int:
    """The ppid field (4) of /proc/PID/stat."""
    return int(text.rsplit(")", 1)[1].split()[1])


def process_tree(pid: int) -> list[int]:
    """pid and all its living descendants (children, their children, ...), pid first."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            text = _read(f"/proc/{entry.name}/stat")
            if text is not None:
                parents[int(entry.name)] = parse_parent_pid(text)
    tree, frontier = [pid], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        tree += children
        frontier = children
    return tree


def read_tree_cpu_seconds(pid: int) -> float | None:
    """CPU seconds of pid and its living descendants (what they used so far); None when pid is gone."""
    own = read_process_cpu_seconds(pid)
    if own is None:
        return None
    return own + sum(read_process_cpu_seconds(p) or 0.0 for p in process_tree(pid)[1:])


def read_tree_status_mb(pid: int, field: str) -> float | None:
    """A /proc/PID/status memory field summed over pid and its descendants (VmHWM: the peaks' sum)."""
    values = [read_status_mb(p, field) for p in process_tree(pid)]
    return None if values[0] is None else sum(v or 0.0 for v in values)


# --- /proc/stat: the whole machine ------------------------------------------------------------


def parse_system_cpu(text: str) -> tuple[int, int]:
    """(busy, total) jiffies summed over all cores, from the aggregate 'cpu' line of /proc/stat."""
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] == "cpu":
            values = [int(v) for v in parts[1:]]
            idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
            total = sum(values[:8])  # user..steal; guest time is already counted in user
            return total - idle, total
    raise ValueError("no aggregate cpu line in /proc/stat")


def read_system_cpu() -> tuple[int, int] | None:
    """(busy, total) jiffies of the machine since boot; None when /proc/stat is unreadable."""
    text = _read("/proc/stat")
    try:
        return None if text is None else parse_system_cpu(text)
    except ValueError:
        return None


# --- /proc/cpuinfo ----------------------------------------------------------------------------


def parse_cpu_model(text: str) -> str | None:
    """The first 'model name' of /proc/cpuinfo; None when there is none (e.g. some ARM kernels)."""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            return value.strip()
    return None


def cpu_model() -> str:
    """This machine's CPU model, else platform.processor(), else 'unknown'."""
    text = _read("/proc/cpuinfo")
    return (text and parse_cpu_model(text)) or platform.processor() or "unknown"
