"""What psutil does not give (bench/ps.py has the rest): peak RSS and RssAnon, the CPU model.

`parse_*` functions take the text of one /proc file (so tests feed them fixtures); `read_*` functions
read the file and return None when they cannot (the process is gone, or this is not Linux). A pid may be
an int or "self". Memory is in MiB (the kB of /proc divided by 1024).
"""

from __future__ import annotations

import platform
from pathlib import Path

from bench import ps


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


# --- /proc/PID/status: memory figures psutil lacks ---------------------------------------------


def parse_status_kb(text: str, field: str) -> int | None:
    """A kB field of /proc/PID/status ('VmHWM' = peak RSS, 'RssAnon', ...); None when absent."""
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if key == field and len(parts) == 2 and parts[1] == "kB":
            return int(parts[0])
    return None


def read_status_mb(pid: int | str, field: str) -> float | None:
    """A kB field of /proc/PID/status in MiB; None when the process is gone or has no such field."""
    text = _read(f"/proc/{pid}/status")
    kb = None if text is None else parse_status_kb(text, field)
    return None if kb is None else kb / 1024


def read_peak_rss_mb(pid: int | str) -> float | None:
    """The highest resident memory the process has had (VmHWM), in MiB."""
    return read_status_mb(pid, "VmHWM")


def read_tree_status_mb(pid: int, field: str) -> float | None:
    """A /proc/PID/status memory field summed over pid and its descendants (VmHWM: the peaks' sum)."""
    values = [read_status_mb(p, field) for p in ps.process_tree(pid)]
    return None if values[0] is None else sum(v or 0.0 for v in values)


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
