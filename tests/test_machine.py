"""mnist.machine: the CPUs and memory a host gives, from cgroup files the tests write and from a real cgroup.

The real-cgroup tests put a child process under a 1-CPU quota (cgroup v1, as on this project's machines)
and check what it sizes itself to; they skip where the CPU controller cannot be written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from mnist import jobs, machine
from mnist.errors import MnistError
from studio import serve

GIB = 1024**3
HOST_CPUS = 16  # what the tests' imaginary host shows, so any quota below it is visible
HOST_MEMORY = 64 * GIB
V1_CPU_MOUNT = Path("/sys/fs/cgroup/cpu")
V1_PERIOD_US = 100_000


def write_files(folder: Path, files: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text + "\n")


def read(tmp_path: Path, proc_cgroup: str, env: dict[str, str] | None = None) -> machine.Machine:
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text(proc_cgroup)
    return machine.read_machine(
        env=env or {},
        cgroup_root=tmp_path / "cgroup",
        proc_cgroup=proc,
        affinity=HOST_CPUS,
        physical_bytes=HOST_MEMORY,
    )


def test_v2_without_a_quota_gives_the_affinity_and_physical_memory(tmp_path):
    write_files(tmp_path / "cgroup", {"cpu.max": "max 100000", "memory.max": "max"})
    found = read(tmp_path, "0::/\n")
    assert (found.cpus, found.cpus_from) == (HOST_CPUS, "affinity")
    assert (found.memory_bytes, found.memory_from) == (HOST_MEMORY, "physical")


def test_v2_quota_and_memory_limit(tmp_path):
    write_files(tmp_path / "cgroup", {"cpu.max": "200000 100000", "memory.max": str(2 * GIB)})
    found = read(tmp_path, "0::/\n")
    assert (found.cpus, found.cpus_from) == (2, "cgroup v2 cpu.max")
    assert (found.memory_bytes, found.memory_from) == (2 * GIB, "cgroup v2 memory.max")


def test_v2_fractional_quota_rounds_up_and_never_gives_zero(tmp_path):
    write_files(tmp_path / "cgroup", {"cpu.max": "150000 100000"})
    assert read(tmp_path, "0::/\n").cpus == 2
    write_files(tmp_path / "cgroup", {"cpu.max": "10000 100000"})
    assert read(tmp_path, "0::/\n").cpus == 1


def test_v2_the_strictest_ancestor_wins(tmp_path):
    """A systemd slice may hold the limit while the app's own cgroup has none."""
    root = tmp_path / "cgroup"
    write_files(root / "app.slice", {"cpu.max": "300000 100000", "memory.max": str(GIB)})
    write_files(root / "app.slice" / "studio.service", {"cpu.max": "max 100000", "memory.max": "max"})
    found = read(tmp_path, "0::/app.slice/studio.service\n")
    assert (found.cpus, found.memory_bytes) == (3, GIB)


def test_v1_quota_minus_one_is_no_quota(tmp_path):
    root = tmp_path / "cgroup"
    write_files(root / "cpu,cpuacct", {"cpu.cfs_quota_us": "-1", "cpu.cfs_period_us": "100000"})
    write_files(root / "memory", {"memory.limit_in_bytes": "9223372036854771712"})  # v1's "no limit"
    found = read(tmp_path, "4:memory:/\n2:cpu,cpuacct:/\n")
    assert (found.cpus, found.cpus_from) == (HOST_CPUS, "affinity")
    assert found.memory_from == "physical"


def test_v1_quota_and_memory_limit(tmp_path):
    root = tmp_path / "cgroup"
    write_files(root / "cpu,cpuacct", {"cpu.cfs_quota_us": "100000", "cpu.cfs_period_us": "100000"})
    write_files(root / "memory", {"memory.limit_in_bytes": str(GIB)})
    found = read(tmp_path, "4:memory:/\n2:cpu,cpuacct:/\n")
    assert (found.cpus, found.cpus_from) == (1, "cgroup v1 cpu quota")
    assert (found.memory_bytes, found.memory_from) == (GIB, "cgroup v1 memory limit")


def test_v1_in_a_container_reads_the_mount_root_when_the_host_path_is_absent(tmp_path):
    """Docker without a cgroup namespace: /proc/self/cgroup names /docker/<id>, mounted at the root."""
    root = tmp_path / "cgroup"
    write_files(root / "cpu", {"cpu.cfs_quota_us": "200000", "cpu.cfs_period_us": "100000"})
    assert read(tmp_path, "3:cpu:/docker/0123abcd\n").cpus == 2


def test_no_cgroup_at_all(tmp_path):
    found = read(tmp_path, "")
    assert (found.cpus, found.cpus_from, found.memory_from) == (HOST_CPUS, "affinity", "physical")


def test_a_quota_above_the_affinity_leaves_the_affinity(tmp_path):
    write_files(tmp_path / "cgroup", {"cpu.max": "3200000 100000"})
    assert read(tmp_path, "0::/\n").cpus_from == "affinity"


def test_operator_override_wins_and_a_bad_one_is_refused_in_words(tmp_path):
    write_files(tmp_path / "cgroup", {"cpu.max": "200000 100000", "memory.max": str(2 * GIB)})
    found = read(tmp_path, "0::/\n", env={machine.CPUS_ENV: "1", machine.MEMORY_ENV: "512"})
    assert (found.cpus, found.cpus_from) == (1, machine.CPUS_ENV)
    assert found.memory_bytes == 512 * machine.MIB
    for bad in ("0", "two", "-1", "1.5"):
        with pytest.raises(MnistError, match=f"{machine.CPUS_ENV} must be a whole number >= 1"):
            read(tmp_path, "0::/\n", env={machine.CPUS_ENV: bad})


def test_backends_follow_cpus_and_memory():
    def given(cpus: int, memory_gib: float) -> machine.Machine:
        return machine.Machine(cpus, "test", int(memory_gib * GIB), "test")

    per_backend_gib = serve.BACKEND_MEMORY_MB / 1024
    assert serve.default_processes(given(1, 16)) == 1
    assert serve.default_processes(given(2, 16)) == 2
    assert serve.default_processes(given(16, 16)) == int(16 // per_backend_gib)  # memory binds first
    assert serve.default_processes(given(4, per_backend_gib * 2)) == 2
    assert serve.default_processes(given(4, 0.5)) == 1  # never none
    assert serve.default_processes(given(64, 1024)) == serve.MAX_PROCESSES


@pytest.mark.parametrize(("cpus", "runs", "threads"), [(1, 1, 1), (2, 1, 2), (3, 1, 3), (8, 4, 2)])
def test_training_pool_follows_the_cpus_given(monkeypatch, cpus, runs, threads):
    monkeypatch.delenv(jobs.MAX_RUNS_ENV, raising=False)
    monkeypatch.setattr(machine, "this_machine", lambda: machine.Machine(cpus, "test", GIB, "test"))
    assert jobs.default_max_runs() == runs
    assert jobs.threads_per_run(runs) == threads  # runs x threads never exceeds the CPUs
    monkeypatch.setenv(jobs.MAX_RUNS_ENV, "3")
    assert jobs.default_max_runs() == 3  # the operator's setting wins


# ---------------------------------------------------------------------------------------------
# A real 1-CPU quota on this machine (cgroup v1).


@pytest.fixture
def one_cpu_cgroup():
    """A cgroup v1 CPU group with a 1-CPU quota; yields a preexec_fn that moves a child into it."""
    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs a machine with 2 or more CPUs, so that a 1-CPU quota is visible")
    if not (V1_CPU_MOUNT / "cgroup.procs").exists():
        pytest.skip("no cgroup v1 CPU controller at /sys/fs/cgroup/cpu")
    group = V1_CPU_MOUNT / f"mnist-test-{uuid.uuid4().hex[:8]}"
    try:
        group.mkdir()
        (group / "cpu.cfs_period_us").write_text(str(V1_PERIOD_US))
        (group / "cpu.cfs_quota_us").write_text(str(V1_PERIOD_US))
    except OSError as exc:
        pytest.skip(f"cannot make a CPU cgroup here: {exc}")

    def enter() -> None:
        (group / "cgroup.procs").write_text(str(os.getpid()))

    yield enter
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            group.rmdir()
            break
        except OSError:  # a child still exiting
            time.sleep(0.1)


SIZES_UNDER_QUOTA = """
import json, threading
from mnist import machine
machine.limit_thread_env()  # as streamlit_app.py does, before torch loads
import torch
from mnist import jobs
from studio import serve
machine.size_torch_threads()
other = []
thread = threading.Thread(target=lambda: other.append(torch.get_num_threads()))  # a session's thread
thread.start(); thread.join()
print(json.dumps({
    "cpus_from": machine.this_machine().cpus_from,
    "backends": serve.default_processes(),
    "torch_threads": torch.get_num_threads(),
    "interop_threads": torch.get_num_interop_threads(),
    "other_thread_torch_threads": other[0],
    "training_threads": jobs.threads_per_run(jobs.default_max_runs()),
}))
"""


@pytest.mark.slow
def test_under_a_one_cpu_quota_everything_sizes_to_one(one_cpu_cgroup):
    env = {k: v for k, v in os.environ.items() if k not in (machine.CPUS_ENV, *machine.THREAD_ENV_VARS)}
    done = subprocess.run(
        [sys.executable, "-c", SIZES_UNDER_QUOTA],
        env=env,
        preexec_fn=one_cpu_cgroup,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    sizes = json.loads(done.stdout.strip().splitlines()[-1])
    assert sizes == {
        "cpus_from": "cgroup v1 cpu quota",
        "backends": 1,
        "torch_threads": 1,
        "interop_threads": 1,
        "other_thread_torch_threads": 1,
        "training_threads": 1,
    }


@pytest.mark.slow
def test_studio_serve_under_a_one_cpu_quota_starts_one_backend(one_cpu_cgroup, tmp_path):
    """With nginx installed and 2 CPUs visible, serve would start 2; the quota makes it 1 (no nginx)."""
    from bench import harness, ps

    env = {k: v for k, v in os.environ.items() if k != machine.CPUS_ENV}
    env["MNIST_RUNS_DIR"] = str(tmp_path / "runs")
    port = harness.free_port()
    launcher = subprocess.Popen(
        [sys.executable, "-m", "studio.serve", "--address", "127.0.0.1", "--port", str(port)],
        cwd=harness.REPO,
        env=env,
        preexec_fn=one_cpu_cgroup,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        harness.wait_for_health(f"http://127.0.0.1:{port}", launcher, timeout=120)
        tree = ps.process_tree(launcher.pid)
        commands = [ps.read_command_line(pid) for pid in tree]
        streamlit = [c for c in commands if "streamlit" in c and "run" in c]
        assert len(streamlit) == 1, commands
        assert not any("nginx" in part for c in commands for part in c[:1])
    finally:
        launcher.terminate()
        launcher.wait(timeout=30)
