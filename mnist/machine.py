"""How much machine this process has: the CPUs and memory it is given, not the ones it can see.

A container sees every CPU of its host (os.cpu_count, and usually sched_getaffinity too) and the host's
whole memory, while the host holds it to a cgroup CPU quota and memory limit: a `--cpus 2` container on
a 16-core host that sized itself by os.cpu_count would start 16 app processes and train with 16 threads.
Everything that sizes itself (studio.serve's backends, the training pool, torch's threads, background
work, the benchmarks' defaults) asks `this_machine()`.

CPUs, strictest first: the cgroup CPU quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us / cpu.cfs_period_us`,
rounded up, the smallest along the cgroup's ancestors), then the affinity mask; $MNIST_CPUS, when set,
replaces both (the operator knows the host: a burstable quota, a shared machine).
Memory: the cgroup limit (v2 `memory.max`, v1 `memory.limit_in_bytes`), else the physical memory;
$MNIST_MEMORY_MB, when set, replaces it.

No torch here: studio.serve asks before any torch is loaded. `limit_thread_env` must run before torch
loads for its threads to follow; `size_torch_threads` sizes a torch that is already loaded.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import MnistError

CPUS_ENV = "MNIST_CPUS"
MEMORY_ENV = "MNIST_MEMORY_MB"
CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")
MIB = 1024 * 1024
# cgroup v1 says "no limit" with a huge number (PAGE_COUNTER_MAX pages): anything this large is none.
V1_UNLIMITED_BYTES = 1 << 62
# Where cgroup v1 mounts the CPU controller: together with cpuacct (most distributions) or alone.
V1_CPU_MOUNTS = ("cpu,cpuacct", "cpu", "cpuacct,cpu")
V1_MEMORY_MOUNTS = ("memory",)
# Thread pools that read the CPU count from the environment when they start (OpenMP: torch's intra-op
# threads; MKL and OpenBLAS: numpy/scipy's and torch's BLAS).
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass(frozen=True)
class Machine:
    cpus: int  # whole CPUs this process may keep busy (>= 1)
    cpus_from: str  # which rule decided: "MNIST_CPUS", "cgroup v2 cpu.max", "cgroup v1 cpu quota", "affinity"
    memory_bytes: int  # memory this process and its children may use
    memory_from: str  # "MNIST_MEMORY_MB", "cgroup v2 memory.max", "cgroup v1 memory limit", "physical"

    @property
    def memory_mb(self) -> float:
        return self.memory_bytes / MIB

    def describe(self) -> str:
        return f"{self.cpus} CPU ({self.cpus_from}), {self.memory_mb:,.0f} MiB ({self.memory_from})"


@dataclass(frozen=True)
class CgroupPaths:
    """Where this process's cgroup is: its v2 path, and its v1 path per controller ("cpu", "memory")."""

    v2: str | None
    v1: dict[str, str]


def parse_proc_cgroup(text: str) -> CgroupPaths:
    """/proc/self/cgroup: `0::/path` is the v2 hierarchy; `N:cpu,cpuacct:/path` a v1 one."""
    v2 = None
    v1: dict[str, str] = {}
    for line in text.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if not hierarchy or not path:
            continue
        if hierarchy == "0" and controllers == "":
            v2 = path
        else:
            for controller in controllers.split(","):
                v1[controller] = path
    return CgroupPaths(v2, v1)


def cgroup_dirs(mount: Path, path: str) -> list[Path]:
    """The cgroup's folder and its ancestors up to the mount, innermost first.

    Inside a container without a cgroup namespace, /proc/self/cgroup names the host's path
    (/docker/<id>) while the container's own cgroup is mounted at the root: then the root alone.
    """
    if not mount.is_dir():
        return []
    here = mount / path.lstrip("/")
    if not here.is_dir():
        return [mount]
    dirs = [here]
    while here != mount:
        here = here.parent
        dirs.append(here)
    return dirs


def read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def quota_cpus(quota_us: int, period_us: int) -> int:
    """A quota of quota_us per period_us, as whole CPUs: 1.5 CPUs can keep 2 threads busy part time."""
    return max(1, math.ceil(quota_us / period_us))


def read_v2_cpus(dirs: list[Path]) -> int | None:
    """The smallest `cpu.max` along the cgroup's ancestors (`max 100000`: no quota)."""
    limits = []
    for folder in dirs:
        text = read_text(folder / "cpu.max")
        if not text:
            continue
        quota, _, period = text.partition(" ")
        if quota != "max" and quota.isdigit() and period.isdigit() and int(period) > 0:
            limits.append(quota_cpus(int(quota), int(period)))
    return min(limits, default=None)


def read_v1_cpus(dirs: list[Path]) -> int | None:
    """The smallest `cpu.cfs_quota_us / cpu.cfs_period_us` along the ancestors (quota -1: none)."""
    limits = []
    for folder in dirs:
        quota, period = read_text(folder / "cpu.cfs_quota_us"), read_text(folder / "cpu.cfs_period_us")
        if quota is None or period is None:
            continue
        try:
            quota_us, period_us = int(quota), int(period)
        except ValueError:
            continue
        if quota_us > 0 and period_us > 0:
            limits.append(quota_cpus(quota_us, period_us))
    return min(limits, default=None)


def read_v2_memory(dirs: list[Path]) -> int | None:
    limits = [int(text) for folder in dirs if (text := read_text(folder / "memory.max")) and text.isdigit()]
    return min(limits, default=None)


def read_v1_memory(dirs: list[Path]) -> int | None:
    limits = []
    for folder in dirs:
        text = read_text(folder / "memory.limit_in_bytes")
        if text and text.isdigit() and int(text) < V1_UNLIMITED_BYTES:
            limits.append(int(text))
    return min(limits, default=None)


def v1_dirs(root: Path, mounts: tuple[str, ...], path: str | None) -> list[Path]:
    if path is None:
        return []
    for mount in mounts:
        dirs = cgroup_dirs(root / mount, path)
        if dirs:
            return dirs
    return []


def read_cgroup_cpus(root: Path, paths: CgroupPaths) -> tuple[int, str] | None:
    if paths.v2 is not None:
        cpus = read_v2_cpus(cgroup_dirs(root, paths.v2))
        if cpus is not None:
            return cpus, "cgroup v2 cpu.max"
    cpus = read_v1_cpus(v1_dirs(root, V1_CPU_MOUNTS, paths.v1.get("cpu")))
    if cpus is not None:
        return cpus, "cgroup v1 cpu quota"
    return None


def read_cgroup_memory(root: Path, paths: CgroupPaths) -> tuple[int, str] | None:
    if paths.v2 is not None:
        limit = read_v2_memory(cgroup_dirs(root, paths.v2))
        if limit is not None:
            return limit, "cgroup v2 memory.max"
    limit = read_v1_memory(v1_dirs(root, V1_MEMORY_MOUNTS, paths.v1.get("memory")))
    if limit is not None:
        return limit, "cgroup v1 memory limit"
    return None


def affinity_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def physical_memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def read_positive_int(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise MnistError(f"{name} must be a whole number >= 1, got {value!r}: set it so, or unset it")
    return int(value)


def read_machine(
    env: Mapping[str, str] = os.environ,
    cgroup_root: Path = CGROUP_ROOT,
    proc_cgroup: Path = PROC_CGROUP,
    affinity: int | None = None,
    physical_bytes: int | None = None,
) -> Machine:
    """The machine as the rules in this module's docstring decide (arguments: for tests)."""
    paths = parse_proc_cgroup(read_text(proc_cgroup) or "")
    affinity = affinity if affinity is not None else affinity_cpus()
    physical_bytes = physical_bytes if physical_bytes is not None else physical_memory_bytes()

    cpus, cpus_from = affinity, "affinity"
    quota = read_cgroup_cpus(cgroup_root, paths)
    if quota is not None and quota[0] < affinity:
        cpus, cpus_from = quota
    if (override := read_positive_int(env, CPUS_ENV)) is not None:
        cpus, cpus_from = override, CPUS_ENV

    memory, memory_from = physical_bytes, "physical"
    limit = read_cgroup_memory(cgroup_root, paths)
    if limit is not None and limit[0] < physical_bytes:
        memory, memory_from = limit
    if (override := read_positive_int(env, MEMORY_ENV)) is not None:
        memory, memory_from = override * MIB, MEMORY_ENV
    return Machine(cpus, cpus_from, memory, memory_from)


@functools.cache
def this_machine() -> Machine:
    """This process's machine, read once (a cgroup's limits do not change under a running app)."""
    return read_machine()


def limit_thread_env(cpus: int | None = None) -> None:
    """Size OpenMP/BLAS thread pools to the machine before they start (an operator's setting wins)."""
    cpus = cpus or this_machine().cpus
    for name in THREAD_ENV_VARS:
        os.environ.setdefault(name, str(cpus))


@functools.cache
def size_torch_threads() -> int:
    """Once per process: torch's intra- and inter-op threads to the machine's CPUs; the number set."""
    import torch

    cpus = this_machine().cpus
    torch.set_num_threads(cpus)
    try:
        torch.set_num_interop_threads(cpus)
    except RuntimeError:  # inter-op work already ran: the pool exists and cannot be resized
        pass
    return cpus


def background_threads() -> int:
    """Torch threads for a background computation: half the CPUs, so Sketch's predictions keep the other half."""
    return max(1, this_machine().cpus // 2)


@contextmanager
def limited_threads(threads: int | None) -> Iterator[None]:
    """Run the block with `threads` torch threads in the calling thread (None: unchanged), then restore.

    The one thread limiter: predict.single_thread is this with 1, for batch-1 work.
    """
    import torch

    previous = torch.get_num_threads()
    if threads is None or threads == previous:
        yield
        return
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
