"""The Docker image built and run as a host runs it, and checked: `python -m bench.hosting`.

What it does, in order (every build and run uses `--network host`, and every request goes to 127.0.0.1):

  engine     starts `dockerd --bridge=none --iptables=false` if no engine answers (and stops it at the end)
  base       builds a stand-in for python:3.11-slim when the engine has no such image (Docker Hub is out
             of reach on the development machines): `debootstrap --variant=minbase bookworm` from the
             Debian mirror apt uses, Debian's CPython 3.11 with pip and venv, python/python3/pip in
             /usr/local/bin, pip's EXTERNALLY-MANAGED marker removed, then `docker import`. ONLY the
             stand-in gets this machine's extra CA certificates (/usr/local/share/ca-certificates) and a
             pip.conf naming the bundle, because registry traffic here passes a TLS-inspecting proxy;
             the Dockerfile never does. docs/hosting.md says how the stand-in differs from the real image.
  build      the image twice, from scratch (--no-cache unless --cache): the classic builder
             (DOCKER_BUILDKIT=0) and BuildKit (DOCKER_BUILDKIT=1), timed, with --torch-index-url as the
             TORCH_INDEX_URL build argument (default here PyPI, i.e. the CUDA build: this machine cannot
             reach PyTorch's CPU index, the Dockerfile's default)
  run        the BuildKit image as Spaces runs it: user 1000, --cpus 1, --memory 2g, once with the MNIST
             files mounted read-only (--mnist-dir, as MNIST_DATA_DIR) and once without. The command is
             the image's own (`python -m studio.serve`) with only the address and ports changed: it
             listens on 127.0.0.1 and on free ports, since with the host's network 0.0.0.0:7860 would be
             open to the network and could clash with other servers. The classic builder's image is
             started too, and must answer health as uid 1000 (the same Dockerfile: no Sketch run there).
  checks     per run: /_stcore/health answers; the Streamlit backends (`streamlit run` processes in the
             container, counted on the host's /proc) are no more than the CPU quota; Sketch predicts over
             the websocket (python -m bench.load, with a training session when MNIST is mounted) with 0 errors;
             with MNIST, a safetensors checkpoint uploaded in Chromium through nginx is loaded (no
             403/413 from /_stcore/upload_file) by a visitor whose browser refuses cookies (so the token
             sits in the address), and no line of the container's log holds that token. When the run
             starts a single backend (no nginx), the upload check runs in one more container started with
             --processes 2, so nginx is in front.
  figures    image sizes, the CUDA libraries inside (nvidia*, triton*, torch/lib/*cuda*), per-process
             RSS and peak RSS, build times; the expected size of the CPU image (an estimate: the CUDA
             image minus its torch, nvidia and triton packages plus a CPU torch wheel's installed size,
             --cpu-wheel, installed with --no-deps into a throwaway venv)

Prints a readable report, the RESULT line and ONE JSON line; exits 1 when a check failed. It takes 10-20
minutes (two cold builds that download ~3 GB each), so it is not part of CI or the test suite.

  python -m bench.hosting [--torch-index-url URL] [--cache] [--skip-build] [--mnist-dir DIR] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from bench import benchlib, procfs, ps
from bench.docker_engine import (
    BUILD_TIMEOUT_S,
    COMMAND_TIMEOUT_S,
    MB,
    buildx_status,
    docker,
    docker_cli,
    docker_engine,
    image_inspect,
)
from bench.harness import free_port
from bench.stand_in_image import ensure_base_image

REPO = benchlib.REPO
IMAGE = "mnist-studio"
WORK_DIR = Path("/tmp/mnist-hosting")
PYPI_INDEX = "https://pypi.org/simple"  # PyPI's torch: the CUDA build
CPU_WHEEL = Path("/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl")
CONTAINER_USER = "1000"  # Spaces runs every container as uid 1000
CONTAINER_CPUS = 1.0
CONTAINER_MEMORY = "2g"
NANO = 1_000_000_000  # docker's NanoCpus per CPU
HEALTH_TIMEOUT_S = 300.0  # a cold container imports torch and streamlit under a 1-CPU quota
LOAD_TIMEOUT_S = 600.0
UPLOAD_TIMEOUT_MS = 120_000
LOG_TAIL_LINES = 40
NO_DATA_LOAD_ARGS = ("--no-ramp", "--sessions", "2", "--trainers", "0", "--step-seconds", "15")
SETTINGS_EXPANDER = "Model, device and your own checkpoint"  # the Sketch page's expander with the uploaders
WEIGHTS_LABEL = "Upload a checkpoint (model.safetensors)"
UPLOAD_PATH = "/_stcore/upload_file"
TOKEN_PARAM = "visitor"  # studio.visitor.VISITOR_PARAM: the address keeps the token where cookies are refused
UPLOAD_ARCH = "cnn-bn-fast"
UPLOAD_PROCESSES = 2  # when a run has one backend (no nginx), the upload check gets a container with nginx
# What CPU hardware never loads, relative to site-packages (fnmatch patterns on the path).
# CUDA 13 wheels also bring cuda-bindings (the `cuda` package), cuda-pathfinder and cuda-toolkit.
CUDA_PACKAGES = ("nvidia", "nvidia_*", "triton", "triton-*", "cuda", "cuda_*", "cuda-*")
CUDA_PATTERNS = (*CUDA_PACKAGES, "torch/lib/*cuda*", "torch/lib/*nvrtc*")
TORCH_STACK_PATTERNS = ("torch", "torch-*", *CUDA_PACKAGES)
# Run inside the image: bytes under site-packages per top-level entry (and per torch/lib file), as JSON.
SITE_SIZES_PY = """
import json, os, site, sysconfig
roots = [site.getusersitepackages(), sysconfig.get_paths()["purelib"]]
sizes = {}
def tree(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs
               if not os.path.islink(os.path.join(d, f)))
for root in roots:
    if not os.path.isdir(root):
        continue
    for name in os.listdir(root):
        sizes[name] = sizes.get(name, 0) + tree(os.path.join(root, name))
    lib = os.path.join(root, "torch", "lib")
    if os.path.isdir(lib):
        for name in os.listdir(lib):
            sizes["torch/lib/" + name] = tree(os.path.join(lib, name))
print(json.dumps(sizes))
"""


# ---------------------------------------------------------------------------------------------
# Pure helpers (tests/test_hosting_bench.py)


def matches(path: str, patterns: tuple[str, ...]) -> bool:
    from fnmatch import fnmatch

    return any(fnmatch(path, pattern) for pattern in patterns)


def bytes_matching(sizes: dict[str, int], patterns: tuple[str, ...]) -> int:
    """Sum of the entries matching `patterns`; a torch/lib file only when its top folder is not counted whole."""
    total = 0
    for path, size in sizes.items():
        top = path.split("/", 1)[0]
        if matches(path, patterns) and (path == top or not matches(top, patterns)):
            total += size
    return total


def is_backend(argv: list[str]) -> bool:
    """A Streamlit server process: `... streamlit run APP ...` (python -m streamlit run, or the script)."""
    names = [Path(word).name for word in argv]
    return any(a == "streamlit" and b == "run" for a, b in zip(names, names[1:], strict=False))


def process_kind(argv: list[str]) -> str:
    if is_backend(argv):
        return "streamlit backend"
    if argv and Path(argv[0].split()[0]).name.startswith("nginx"):  # nginx renames itself "nginx: worker process"
        role = next((r for r in ("master", "worker") if r in argv[0]), "")
        return f"nginx {role}".strip()
    if "studio.serve" in argv:
        return "studio.serve"
    return Path(argv[0]).name if argv else "?"


def quota_cpus(nano_cpus: int, cpu_quota_us: int, cpu_period_us: int) -> float | None:
    """The CPUs a container may use from docker inspect's HostConfig; None when unlimited."""
    if nano_cpus > 0:
        return nano_cpus / NANO
    if cpu_quota_us > 0 and cpu_period_us > 0:
        return cpu_quota_us / cpu_period_us
    return None


def backends_fit(backends: int, cpus: float | None) -> bool:
    """At most one backend per CPU of the quota (rounded up), and at least one."""
    return backends >= 1 and (cpus is None or backends <= math.ceil(cpus))


def cpu_image_estimate(cuda_image_bytes: int, torch_stack_bytes: int, cpu_torch_bytes: int) -> int:
    """The CUDA image with its torch + nvidia + triton packages swapped for the CPU torch."""
    return cuda_image_bytes - torch_stack_bytes + cpu_torch_bytes


def last_json_line(text: str) -> dict | None:
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                return json.loads(line)
    return None


# ---------------------------------------------------------------------------------------------
# Builds


def build_image(builder: str, tag: str, torch_index: str, no_cache: bool, work: Path) -> dict:
    """`docker build` with the classic builder or BuildKit; its time, exit code and log."""
    log_path = work / f"build-{builder}.log"
    env = {**os.environ, "DOCKER_BUILDKIT": "1" if builder == "buildkit" else "0"}
    args = [docker_cli(), "build", "--network", "host", "--build-arg", f"TORCH_INDEX_URL={torch_index}", "-t", tag]
    if builder == "buildkit":
        args += ["--progress", "plain"]
    if no_cache:
        args.append("--no-cache")
    print(f"build: {builder} -> {tag} (log {log_path}) ...", flush=True)
    started = time.perf_counter()
    with log_path.open("w") as log:
        done = subprocess.run([*args, str(REPO)], stdout=log, stderr=subprocess.STDOUT, env=env,
                              timeout=BUILD_TIMEOUT_S, check=False)  # fmt: skip
    seconds = time.perf_counter() - started
    tail = log_path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
    if done.returncode != 0:
        print("\n".join(f"  | {line}" for line in tail))
    inspected = image_inspect(tag) if done.returncode == 0 else None
    return {
        "builder": builder,
        "tag": tag,
        "ok": done.returncode == 0,
        "seconds": round(seconds, 1),
        "user": inspected and inspected["Config"].get("User"),
        "size_mb": inspected and round(inspected["Size"] / MB),
        "log": str(log_path),
    }


def site_package_sizes(image: str) -> dict[str, int]:
    text = docker("run", "--rm", "--network", "host", "--entrypoint", "python", image, "-c", SITE_SIZES_PY)
    return json.loads(text)


def cpu_torch_installed_bytes(wheel: Path, work: Path) -> int | None:
    """A CPU torch wheel installed (--no-deps) into a throwaway venv: the bytes of its torch* folders."""
    if not wheel.is_file():
        return None
    with tempfile.TemporaryDirectory(prefix="cpu-torch-", dir=work) as temp:
        venv = Path(temp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=COMMAND_TIMEOUT_S)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--no-deps", "--no-index", "--quiet"]
        subprocess.run([*pip, str(wheel)], check=True, timeout=COMMAND_TIMEOUT_S)
        site = next((venv / "lib").glob("python3*/site-packages"))
        paths = [p for p in site.iterdir() if matches(p.name, TORCH_STACK_PATTERNS)]
        return sum(f.stat().st_size for p in paths for f in p.rglob("*") if f.is_file() and not f.is_symlink())


# ---------------------------------------------------------------------------------------------
# Runs


def start_container(name: str, image: str, port: int, mnist_dir: Path | None, processes: int | None = None) -> str:
    docker("rm", "-f", name, check=False)
    args = ["run", "-d", "--name", name, "--network", "host", "--user", CONTAINER_USER]
    args += ["--cpus", str(CONTAINER_CPUS), "--memory", CONTAINER_MEMORY]
    if mnist_dir is not None:
        args += ["-v", f"{mnist_dir}:/mnist:ro", "-e", "MNIST_DATA_DIR=/mnist"]
    # The image's CMD with the address and ports changed (see the module docstring).
    command = ["python", "-m", "studio.serve", "--address", "127.0.0.1", "--port", str(port)]
    command += ["--backend-port", str(free_port())]
    if processes is not None:
        command += ["--processes", str(processes)]
    return docker(*args, image, *command).strip()


def container_state(name: str) -> dict:
    return json.loads(docker("inspect", name))[0]


def wait_healthy(name: str, url: str, timeout: float = HEALTH_TIMEOUT_S) -> float:
    """Seconds until /_stcore/health answered 200; raises when the container stops or time runs out."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if not container_state(name)["State"]["Running"]:
            raise RuntimeError(f"container {name} stopped:\n{container_log_tail(name)}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - started
        time.sleep(1)
    raise TimeoutError(f"{url}/_stcore/health did not answer within {timeout:.0f} s:\n{container_log_tail(name)}")


def container_log_tail(name: str) -> str:
    done = subprocess.run([docker_cli(), "logs", "--tail", str(LOG_TAIL_LINES), name], capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    return (done.stdout + done.stderr).strip()


def container_processes(host_pid: int) -> list[dict]:
    """The container's processes as the host's /proc sees them: kind, RSS and peak RSS (MB)."""
    rows = []
    for pid in ps.process_tree(host_pid):
        argv = ps.read_command_line(pid)
        rss, peak = ps.read_rss_mb(pid), procfs.read_peak_rss_mb(pid)
        if argv:  # a kernel thread or a process that just exited has none
            rows.append({"pid": pid, "kind": process_kind(argv), "rss_mb": rss and round(rss),
                         "peak_mb": peak and round(peak)})  # fmt: skip
    return rows


def run_load(url: str, host_pid: int, with_training: bool, work: Path, label: str) -> dict:
    """bench.load against the container: --quick (4 sketchers, 1 trainer) or sketchers only."""
    args = [sys.executable, "-m", "bench.load", "--url", url, "--server-pid", str(host_pid), "--json"]
    args += ["--quick"] if with_training else list(NO_DATA_LOAD_ARGS)
    log_path = work / f"load-{label}.log"
    print(f"check: Sketch over the websocket (bench.load {' '.join(args[3:])}; log {log_path}) ...", flush=True)
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=LOAD_TIMEOUT_S, check=False)
    log_path.write_text(done.stdout + done.stderr)
    figures = last_json_line(done.stdout) or {}
    return {
        "exit_code": done.returncode,
        "errors": figures.get("errors"),
        "strokes": figures.get("strokes"),
        "stroke_p50_ms": figures.get("stroke_p50_ms"),
        "stroke_p99_ms": figures.get("stroke_p99_ms"),
        "training_jobs_finished": figures.get("training_jobs_finished"),
        "ok": done.returncode == 0 and figures.get("errors") == 0 and (figures.get("strokes") or 0) > 0,
    }


def write_upload_model(folder: Path) -> Path:
    """An untrained model saved as MNIST Studio saves one (its description embedded)."""
    import torch

    from mnist.checkpoint import build_record, encode_weights
    from mnist.config import TrainConfig
    from mnist.models import build_model
    from mnist.records import RunMetrics

    torch.manual_seed(0)
    model = build_model(UPLOAD_ARCH).eval()
    name = "hosting-check.safetensors"
    record = build_record(model, TrainConfig(arch=UPLOAD_ARCH), RunMetrics(test_accuracy=0.5), name)
    path = folder / name
    path.write_bytes(encode_weights(model, record))
    return path


def upload_check(url: str, work: Path) -> dict:
    """A checkpoint uploaded in Chromium through the front port; the upload requests' statuses.

    The visitor's browser refuses cookies, so the app keeps their token in the address (?visitor=), the
    case where a log could quote it; result["token"] is that token, for the log check.
    """
    from playwright.sync_api import sync_playwright

    from bench import harness

    model = write_upload_model(work)
    statuses: list[int] = []
    result = {"file_kb": round(model.stat().st_size / 1024), "statuses": statuses, "loaded": False, "error": None,
              "token": None}  # fmt: skip
    with sync_playwright() as playwright:
        browser = harness.launch_chromium(playwright)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.add_init_script(harness.REFUSE_COOKIES_JS)
            page = context.new_page()
            page.on("response", lambda r: statuses.append(r.status) if UPLOAD_PATH in r.url else None)
            page.goto(url + "/")
            page.locator(harness.CANVAS_SELECTOR).wait_for(timeout=UPLOAD_TIMEOUT_MS)
            page.wait_for_url(f"**{TOKEN_PARAM}=*", timeout=UPLOAD_TIMEOUT_MS)
            result["token"] = address_token(page.url)
            page.get_by_text(SETTINGS_EXPANDER).click()
            uploader = page.locator('[data-testid="stFileUploader"]').filter(has_text=WEIGHTS_LABEL)
            uploader.locator('input[type="file"]').set_input_files(str(model))
            success = page.locator('[data-testid="stAlertContentSuccess"]').filter(has_text=f"Loaded {model.name}")
            success.wait_for(timeout=UPLOAD_TIMEOUT_MS)
            result["loaded"] = True
        except Exception as exc:  # noqa: BLE001 - the check reports any failure
            result["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        finally:
            browser.close()
    result["ok"] = result["loaded"] and bool(statuses) and all(s < 400 for s in statuses)
    return result


def address_token(url: str) -> str | None:
    return (parse_qs(urlsplit(url).query).get("visitor") or [None])[0]


def token_in_log(name: str, token: str | None) -> bool | None:
    """Whether the container's whole log (nginx's and Streamlit's output) holds the visitor's token."""
    if not token:
        return None
    done = subprocess.run([docker_cli(), "logs", name], capture_output=True, text=True, timeout=60, check=False)
    return token in done.stdout + done.stderr


def check_run(image: str, label: str, mnist_dir: Path | None, work: Path, sketch: bool = True) -> dict:
    """One container: health, uid, backends against the quota; with `sketch` also Sketch (and with MNIST an
    upload through nginx) and the processes' RSS after them."""
    name = f"mnist-hosting-{label}"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    print(f"run: {label}: {image} as user {CONTAINER_USER}, --cpus {CONTAINER_CPUS:g} --memory {CONTAINER_MEMORY}, "
          f"MNIST {'mounted from ' + str(mnist_dir) if mnist_dir else 'not mounted'}, {url}", flush=True)  # fmt: skip
    start_container(name, image, port, mnist_dir)
    try:
        result: dict = {"label": label, "image": image, "mnist_mounted": mnist_dir is not None}
        result["health_s"] = round(wait_healthy(name, url), 1)
        host_pid = container_state(name)["State"]["Pid"]
        result.update(observe(name))
        if sketch:
            result["load"] = run_load(url, host_pid, mnist_dir is not None, work, label)
        if sketch and mnist_dir is not None:
            result["upload"] = upload_through_nginx(image, url, result["nginx"], mnist_dir, work, name)
        result.update(observe(name))  # the process table again, after the load: its peak RSS
        return result
    finally:
        docker("rm", "-f", name, check=False)


def observe(name: str) -> dict:
    """What a running container is: its uid, CPU quota, processes (RSS), backends, nginx, OOM state."""
    state = container_state(name)
    host = state["HostConfig"]
    cpus = quota_cpus(host.get("NanoCpus") or 0, host.get("CpuQuota") or 0, host.get("CpuPeriod") or 0)
    processes = container_processes(state["State"]["Pid"]) if state["State"]["Running"] else []
    backends = sum(p["kind"] == "streamlit backend" for p in processes)
    return {
        "uid": ps.read_uid(state["State"]["Pid"]),
        "quota_cpus": cpus,
        "backends": backends,
        "backends_ok": backends_fit(backends, cpus),
        "nginx": any(p["kind"].startswith("nginx") for p in processes),
        "processes": processes,
        "oom_killed": state["State"].get("OOMKilled"),
        "running_at_end": state["State"]["Running"],
    }


def upload_through_nginx(
    image: str, url: str, nginx_in_front: bool, mnist_dir: Path, work: Path, container_name: str
) -> dict:
    """The upload check, through nginx: this run's port, or one more container with two backends."""
    if nginx_in_front:
        print("check: upload through nginx (Chromium) ...", flush=True)
        result = {"via": "nginx (this run)", **upload_check(url, work)}
        return {**result, "token_in_log": token_in_log(container_name, result["token"])}
    name = "mnist-hosting-upload"
    port = free_port()
    print(f"check: upload: one backend and no nginx in this run, so through a container started with "
          f"--processes {UPLOAD_PROCESSES} (nginx in front) ...", flush=True)  # fmt: skip
    start_container(name, image, port, mnist_dir, processes=UPLOAD_PROCESSES)
    try:
        wait_healthy(name, f"http://127.0.0.1:{port}")
        seen = observe(name)
        result = {
            "via": f"nginx (--processes {UPLOAD_PROCESSES} container)",
            **upload_check(f"http://127.0.0.1:{port}", work),
        }
        result["token_in_log"] = token_in_log(name, result["token"])
        after = observe(name)
        result["ok"] = result["ok"] and seen["nginx"]  # else it was not through nginx
        result.update(nginx=seen["nginx"], backends=seen["backends"], processes=after["processes"])
        return result
    finally:
        docker("rm", "-f", name, check=False)


# ---------------------------------------------------------------------------------------------
# Report


def failed_checks(builds: list[dict], runs: list[dict]) -> list[str]:
    failures = [f"build {b['builder']}" for b in builds if not b["ok"]]
    failures += [f"build {b['builder']} runs as {b['user']!r}" for b in builds if b["ok"] and b["user"] != "user"]
    for run in runs:
        if "error" in run:
            failures.append(f"{run['label']}: {run['error'][:200]}")
            continue
        if not run["backends_ok"]:
            failures.append(f"{run['label']}: {run['backends']} backends for a quota of {run['quota_cpus']} CPU")
        if run["uid"] != int(CONTAINER_USER):
            failures.append(f"{run['label']}: runs as uid {run['uid']}")
        if "load" in run and not run["load"]["ok"]:
            failures.append(f"{run['label']}: Sketch over the websocket (exit {run['load']['exit_code']})")
        if "upload" in run and run["upload"].get("token_in_log") is not False:
            failures.append(f"{run['label']}: the visitor's token in the log: {run['upload'].get('token_in_log')}")
        if "upload" in run and not run["upload"]["ok"]:
            up = run["upload"]
            failures.append(f"{run['label']}: upload via {up['via']}: {up['statuses']} {up['error'] or ''}")
        if run["oom_killed"] or not run["running_at_end"]:
            failures.append(f"{run['label']}: the container stopped (OOM killed: {run['oom_killed']})")
    return failures


def print_runs(runs: list[dict]) -> None:
    for run in runs:
        if "error" in run:
            print(f"\nrun {run['label']}: ERROR {run['error']}")
            continue
        print(f"\nrun {run['label']} ({run['image']}): healthy after {run['health_s']} s, uid {run['uid']}, "
              f"{run['backends']} backend(s) for a quota of {run['quota_cpus']} CPU "
              f"({benchlib.status(run['backends_ok'])}), nginx {'in front' if run['nginx'] else 'absent'}")  # fmt: skip
        if "load" in run:
            load = run["load"]
            print(f"  Sketch: {load['strokes']} strokes, {load['errors']} errors, p50 {load['stroke_p50_ms']} ms, "
                  f"p99 {load['stroke_p99_ms']} ms, training runs finished {load['training_jobs_finished']} "
                  f"({benchlib.status(load['ok'])})")  # fmt: skip
        print_process_table(run["processes"])
        if "upload" in run:
            up = run["upload"]
            print(
                f"  upload via {up['via']}: {up['file_kb']} KB, {UPLOAD_PATH} statuses {up['statuses']}, "
                f"loaded {up['loaded']} ({benchlib.status(up['ok'])}){' ' + up['error'] if up['error'] else ''}"
            )
            print(f"  the visitor's token (cookies refused: in the address) in the container's log: "
                  f"{up.get('token_in_log')} ({benchlib.status(up.get('token_in_log') is False)})")  # fmt: skip
            if "processes" in up:
                print_process_table(up["processes"])


def print_process_table(processes: list[dict]) -> None:
    rows = [[p["pid"], p["kind"], p["rss_mb"], p["peak_mb"]] for p in processes]
    print("  " + benchlib.format_table(["pid", "process", "RSS MB", "peak MB"], rows).replace("\n", "\n  "))


def summary(builds: list[dict], runs: list[dict], sizes: dict, base: dict) -> dict:
    by = {b["builder"]: b for b in builds}
    with_data = next((r for r in runs if r.get("mnist_mounted") and "error" not in r), {})
    backends = [p for p in with_data.get("processes", []) if p["kind"] == "streamlit backend"]
    return {
        "base_stand_in": base["stand_in"],
        "base_python": base["python"],
        "classic_build_s": by.get("classic", {}).get("seconds"),
        "buildkit_build_s": by.get("buildkit", {}).get("seconds"),
        "image_mb": sizes.get("image_mb"),
        "cuda_libraries_mb": sizes.get("cuda_libraries_mb"),
        "torch_stack_mb": sizes.get("torch_stack_mb"),
        "cpu_torch_installed_mb": sizes.get("cpu_torch_installed_mb"),
        "cpu_image_estimate_mb": sizes.get("cpu_image_estimate_mb"),
        "backends_cpus1": with_data.get("backends"),
        "backend_peak_rss_mb": max((p["peak_mb"] or 0 for p in backends), default=None),
        "upload_ok": (with_data.get("upload") or {}).get("ok"),
        "token_in_logs": (with_data.get("upload") or {}).get("token_in_log"),
    }


def measure_sizes(tag: str, torch_index: str, cpu_wheel: Path, work: Path) -> dict:
    inspected = image_inspect(tag)
    if inspected is None:
        return {}
    sizes = site_package_sizes(tag)
    cuda = bytes_matching(sizes, CUDA_PATTERNS)
    stack = bytes_matching(sizes, TORCH_STACK_PATTERNS)
    result = {
        "image": tag,
        "torch_index": torch_index,
        "image_mb": round(inspected["Size"] / MB),
        "cuda_libraries_mb": round(cuda / MB),
        "torch_stack_mb": round(stack / MB),
    }
    cpu_torch = cpu_torch_installed_bytes(cpu_wheel, work)
    if cpu_torch is not None and cuda > 0:  # an estimate only makes sense from a CUDA image
        result["cpu_torch_installed_mb"] = round(cpu_torch / MB)
        result["cpu_torch_wheel"] = cpu_wheel.name
        result["cpu_image_estimate_mb"] = round(cpu_image_estimate(inspected["Size"], stack, cpu_torch) / MB)
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.hosting", description=__doc__.splitlines()[0])
    p.add_argument("--torch-index-url", default=PYPI_INDEX,
                   help=f"the TORCH_INDEX_URL build argument (default {PYPI_INDEX}: the CUDA build; the "
                        "Dockerfile's own default, PyTorch's CPU index, is out of reach here)")  # fmt: skip
    p.add_argument("--cache", action="store_true", help="let the builds use the layer cache (not timed cold)")
    p.add_argument("--skip-build", action="store_true", help="run the images built before")
    p.add_argument("--mnist-dir", type=Path, default=benchlib.SHARED_MNIST, help="mounted read-only as MNIST")
    p.add_argument("--cpu-wheel", type=Path, default=CPU_WHEEL, help="a CPU torch wheel, for the size estimate")
    p.add_argument("--work-dir", type=Path, default=WORK_DIR, help="logs and the stand-in's root file system")
    p.add_argument("--json", action="store_true", help="(always on) end with one JSON line")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    machine = benchlib.start("hosting")
    git = benchlib.read_git_state()
    print(f"commit: {git['commit']}{' (with uncommitted changes)' if git['dirty'] else ''}")
    with docker_engine() as engine:
        print(f"engine: {engine}; CLI {docker_cli()}; buildx: {buildx_status()}")
        base = ensure_base_image(args.work_dir)
        print(f"base: {base['image']} {'STAND-IN' if base['stand_in'] else 'official'}, {base['python']}, "
              f"{base['size_mb']} MB")  # fmt: skip
        builds = []
        for builder in ("classic", "buildkit"):
            tag = f"{IMAGE}:{builder}"
            if args.skip_build and image_inspect(tag) is not None:
                builds.append({"builder": builder, "tag": tag, "ok": True, "seconds": None, "skipped": True,
                               "user": image_inspect(tag)["Config"].get("User")})  # fmt: skip
            else:
                builds.append(build_image(builder, tag, args.torch_index_url, not args.cache, args.work_dir))
        image = next((b["tag"] for b in reversed(builds) if b["ok"]), None)
        runs: list[dict] = []
        sizes: dict = {}
        if image is not None:
            sizes = measure_sizes(image, args.torch_index_url, args.cpu_wheel, args.work_dir)
            plan = [(image, "with-mnist", args.mnist_dir, True), (image, "without-mnist", None, True)]
            # The classic builder's image only has to start and serve as user 1000 (same Dockerfile).
            plan += [(b["tag"], f"{b['builder']}-starts", None, False) for b in builds if b["ok"] and b["tag"] != image]
            for tag, label, mnist, sketch in plan:
                try:
                    runs.append(check_run(tag, label, mnist, args.work_dir, sketch=sketch))
                except (RuntimeError, TimeoutError, subprocess.SubprocessError) as exc:
                    runs.append({"label": label, "error": str(exc)})
    print("\nbuilds:")
    print(benchlib.format_table(["builder", "ok", "seconds", "user", "size MB", "log"],
                                [[b["builder"], b["ok"], b["seconds"], b["user"], b.get("size_mb"), b.get("log", "-")]
                                 for b in builds]))  # fmt: skip
    print(f"\nsizes: {json.dumps(sizes)}")
    print_runs(runs)
    failures = failed_checks(builds, runs) if image else ["no image was built"]
    figures = {**summary(builds, runs, sizes, base), "failed_checks": len(failures)}
    rows = [benchlib.row(k, str(v)) for k, v in figures.items()]
    benchlib.finish("hosting", machine, figures, rows, builds=builds, runs=runs, sizes=sizes, base=base)
    for failure in failures:
        print(f"FAILED: {failure}")
    print(json.dumps({"date": time.strftime("%Y-%m-%d"), "commit": git["commit"], "dirty": git["dirty"],
                      "cpu": machine["cpu"], "cores": machine["cores"], "contended": machine.get("contended"),
                      **figures, "failures": failures}))  # fmt: skip
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
