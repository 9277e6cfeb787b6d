"""Serve MNIST Studio from several Streamlit processes behind nginx: `python -m studio.serve`.

Why several processes: Streamlit runs every session's script in threads of ONE Python process, so all
visitors' strokes queue for one GIL. Measured with bench/load.py on 2 cores (50 sketching sessions, one
training job): one process stays at ~1.3 cores and strokes wait (p50 0.3-0.8 s); see the README.

How: N backends (default: one per CPU given, see below) each run `streamlit run streamlit_app.py` on a local port, and
nginx listens on --port. nginx sends every request of one browser to the same backend, because a
session's websocket, its images (/media/...) and its uploads (/_stcore/upload_file/...) live in the
memory of the process that holds the session. The key is the client's address as the trusted proxies
saw it, a thing the client cannot choose: nginx's realip module walks X-Forwarded-For from the right,
skipping entries added by proxies at private addresses (Spaces' front reaches the container from one,
as does Docker's), and takes the first other entry, the address the proxy itself saw; without a proxy in
front (a public peer), the peer's address. Not the first entry, nor a cookie: the client writes both, so
one visitor could pick a backend, or spread over all of them to pass the per-process limits.

Secrets: the visitor's token can be in the page's address (?visitor=, where cookies are refused), so
every response says Referrer-Policy: no-referrer (no request, not even to this origin, carries the
address), and uploads stream to the backend (proxy_request_buffering off) instead of being buffered to
a temporary file, whose warning in the log used to quote the referrer.

Lighter pages (issue 24): nginx gzips what Streamlit sends uncompressed (its JavaScript bundles and the
HTML: a first visit's ~2.8-7 MB become ~1.5-3 MB), marks files with a content hash in their name as
cacheable for a year, and tells each page that the server is at the root, so that it does not first ask
/<page>/_stcore/health (a 404 in the console). Figures: docs/pages.md, bench/transfer.py.

Per process: the training pool (MNIST_MAX_TRAINING_RUNS, a visitor's run reattaches in the process its
browser is routed to), uploads, caches (~0.7 GB each). Saved runs are on disk and shared by all.

How many: one backend per CPU the host gives (its cgroup CPU quota, the affinity mask, or $MNIST_CPUS),
no more than its memory holds at BACKEND_MEMORY_MB each (the cgroup limit, or $MNIST_MEMORY_MB);
--processes overrides. See mnist/machine.py.

Without nginx on PATH, or with --processes 1, this runs plain `streamlit run` on --port.
Stops (and stops its children) on SIGTERM or SIGINT; if any child exits, it stops the rest and exits.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from pathlib import Path

from mnist.errors import MnistError
from mnist.machine import MIB, Machine, this_machine
from studio.page_css import PAGE_CSS

REPO = Path(__file__).resolve().parent.parent
APP = "streamlit_app.py"
DEFAULT_PORT = 8501
FIRST_BACKEND_PORT = 8600  # backends listen on 127.0.0.1:8600, 8601, ...
MAX_PROCESSES = 16
# Memory one backend may reach once visitors use it: its peak under 50 sketching sessions plus a training
# run (bench/memory.py, docs/memory.md). A host with less than this per CPU gets fewer backends.
BACKEND_MEMORY_MB = 1536
HEALTH_PATH = "/_stcore/health"
HEALTH_TIMEOUT_S = 120.0  # a cold backend imports torch and streamlit: seconds on a slow disk
# Proxies whose X-Forwarded-For entries are believed: private and loopback addresses, where a hosting
# platform's front proxy (Spaces, a Docker or Kubernetes ingress) reaches the container from.
TRUSTED_PROXIES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "fc00::/7", "::1/128")
# no-referrer, not just same-origin: the page's own requests (uploads, media) would otherwise carry an
# address with ?visitor= to nginx and the backends, whose error messages quote the referrer.
REFERRER_POLICY = "no-referrer"
UPLOAD_SLACK_MB = 10  # nginx's body limit above Streamlit's server.maxUploadSize (multipart overhead)
STREAMLIT_CONFIG = REPO / ".streamlit" / "config.toml"
NGINX_TEMP_KINDS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")  # each nginx writes to <kind>_temp_path
LONG_TIMEOUT = "1d"  # a websocket stays open as long as the tab
# nginx drops an idle connection to a backend before the backend does (Streamlit's uvicorn: after 5 s), so
# it never sends a request down a connection being closed: that showed as "recv() failed (104: Connection
# reset by peer)" in the log, and the GET was retried on ANOTHER backend, which lacks the session's media.
UPSTREAM_IDLE_TIMEOUT_S = 4
# Streamlit sends its JavaScript bundles (~2 MB for a page, 4.7 MB more for Plotly) and the HTML
# uncompressed, on purpose: it leaves compression to a proxy in front (streamlit/web/server/starlette/
# starlette_gzip_middleware.py). gzip -6 makes them ~3-4x smaller (bench/transfer.py, docs/pages.md); woff2
# fonts and PNG images are compressed already, and websocket frames are not HTTP responses.
GZIP_LEVEL = 6
GZIP_MIN_BYTES = 1024  # below this the header costs more than it saves
GZIP_TYPES = (
    "text/css", "application/javascript", "text/javascript", "application/json", "image/svg+xml",
    "text/plain", "font/ttf", "font/otf", "application/vnd.ms-fontobject",
)  # fmt: skip
COMPRESSION = f"""\
  gzip on;
  gzip_proxied any;  # every response here comes from a backend
  gzip_comp_level {GZIP_LEVEL};
  gzip_min_length {GZIP_MIN_BYTES};
  gzip_vary on;
  gzip_types {" ".join(GZIP_TYPES)};"""
# A file whose name carries a content hash: Streamlit's /static/ bundles and fonts (Vite: index.DormvYxC.js,
# 8 characters), a component's build (CRA: main.1a2b3c4d.chunk.js). Not the page, /_stcore/, /media/.
HASHED_FILE_PATTERN = r"^/(static|component)/.+\.[A-Za-z0-9_-]{8}(\.chunk)?\.(js|css|woff2?|ttf|svg|png|wasm)$"
PROXY_BUFFERS = "32 16k"  # 512 kB per response in memory for the hashed files above, then passed on as read
CACHE_YEAR_S = 365 * 24 * 3600
HASHED_CACHE_CONTROL = f"public, max-age={CACHE_YEAR_S}, immutable"
# Injected into the page's <head>: the server is at this origin's root (see nginx_config's location /).
BACKEND_AT_ROOT_JS = "<script>window.__streamlit={BACKEND_BASE_URL:location.origin}</script>"


CSS_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)


def head_css() -> str:
    """The app's page CSS on one line, without its comments (fewer bytes, and their apostrophes), for nginx's
    single-quoted sub_filter string: the rules themselves must hold no ' $ or \\."""
    css = " ".join(CSS_COMMENT.sub(" ", PAGE_CSS).split())
    if any(c in css for c in "'$\\"):
        raise ValueError("studio.page_css.PAGE_CSS holds a character nginx's quoted string cannot carry")
    return css


def default_processes(given: Machine | None = None) -> int:
    """One backend per CPU this process is given, as many as its memory holds (at least one)."""
    given = given or this_machine()
    by_memory = int(given.memory_bytes // (BACKEND_MEMORY_MB * MIB))
    return max(1, min(given.cpus, by_memory, MAX_PROCESSES))


def streamlit_upload_mb() -> int:
    """server.maxUploadSize of the app's .streamlit/config.toml (Streamlit's default, 200, if unset)."""
    with STREAMLIT_CONFIG.open("rb") as f:
        return int(tomllib.load(f).get("server", {}).get("maxUploadSize", 200))


def nginx_available() -> bool:
    return shutil.which("nginx") is not None


def nginx_config(address: str, port: int, backend_ports: list[int], temp: Path) -> str:
    """nginx.conf for one front port and the backends, everything it writes kept under `temp`."""
    servers = "\n".join(f"    server 127.0.0.1:{p} max_fails=0;" for p in backend_ports)
    temps = "\n".join(
        f"  {kind}_temp_path {temp / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    trusted = "\n".join(f"  set_real_ip_from {cidr};" for cidr in TRUSTED_PROXIES)
    return f"""\
worker_processes 1;
daemon off;
pid {temp / "nginx.pid"};
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
{temps}
  client_max_body_size {streamlit_upload_mb() + UPLOAD_SLACK_MB}m;
  map $http_upgrade $connection_upgrade {{ default upgrade; "" ""; }}
  # The client's address, which it cannot choose (see the module docstring): X-Forwarded-For read from
  # the right, believed only as far as it was written by trusted proxies.
{trusted}
  real_ip_header X-Forwarded-For;
  real_ip_recursive on;
  upstream studio {{
    hash $remote_addr consistent;
{servers}
    keepalive 16;
    keepalive_timeout {UPSTREAM_IDLE_TIMEOUT_S}s;
  }}
{COMPRESSION}
  # Hashed files (a content hash in the name) never change: a year in the browser's cache. Streamlit says
  # so itself for /static/ (not for a component's files), but an HTML page it serves at a missing file's
  # address must not be cached.
  map $upstream_http_content_type $hashed_cache_control {{
    "~^text/html" "no-cache";
    default "{HASHED_CACHE_CONTROL}";
  }}
  server {{
    listen {address}:{port};
    proxy_http_version 1.1;
    proxy_set_header Upgrade $http_upgrade;
    proxy_set_header Connection $connection_upgrade;
    proxy_set_header Host $host;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    # nginx compresses (see COMPRESSION), not the backends' Python event loop; the HTML arrives plain for
    # sub_filter below.
    proxy_set_header Accept-Encoding "";
    proxy_read_timeout {LONG_TIMEOUT};
    proxy_send_timeout {LONG_TIMEOUT};
    proxy_buffering off;
    # Uploads go to the backend as they arrive: nothing is written to a temporary file (whose warning
    # quotes the request's referrer), and nothing depends on the worker's rights to the temp folder.
    proxy_request_buffering off;
    location ~ "{HASHED_FILE_PATTERN}" {{
      proxy_pass http://studio;
      # Buffered, so that gzip compresses the file as one stream: unbuffered, every chunk read from the
      # backend is flushed on its own and the Plotly bundle came out 33 kB (2%) larger. In memory only.
      proxy_buffering on;
      proxy_buffers {PROXY_BUFFERS};
      proxy_max_temp_file_size 0;
      proxy_hide_header Cache-Control;
      add_header Cache-Control $hashed_cache_control;
      add_header Referrer-Policy {REFERRER_POLICY} always;
    }}
    location / {{
      proxy_pass http://studio;
      add_header Referrer-Policy {REFERRER_POLICY} always;
      # Streamlit's page looks for its server first under the page's own path (/train/_stcore/health, a
      # 404 in the console), then at the root. The app is always at the root here: say so before its
      # script runs (window.__streamlit is read once, when Streamlit's bundle loads).
      # The app's CSS goes in too, so the page is laid out as it will stay before its first paint (else the
      # header and paddings change when the script's copy arrives: a layout shift).
      sub_filter_once on;
      sub_filter "<head>" '<head>{BACKEND_AT_ROOT_JS}{head_css()}';
    }}
  }}
}}
"""


def streamlit_command(address: str, port: int) -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", APP, "--server.address", address, "--server.port", str(port)]


def backend_env() -> dict[str, str]:
    """The backends' environment: unless the operator set it, a training pool of one run per process."""
    env = dict(os.environ)
    env.setdefault("MNIST_MAX_TRAINING_RUNS", "1")
    return env


def wait_healthy(port: int, process: subprocess.Popen, timeout: float = HEALTH_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the backend on port {port} exited with code {process.returncode} while starting")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{HEALTH_PATH}", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"the backend on port {port} did not answer {HEALTH_PATH} within {timeout:.0f} s")


def stop_all(children: list[subprocess.Popen]) -> None:
    for child in children:
        if child.poll() is None:
            child.terminate()
    for child in children:
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def supervise(children: list[subprocess.Popen]) -> int:
    """Block until a child exits (or a signal arrives); stop the others; the exit code."""
    stopping: list[int] = []

    def on_signal(signum, _frame) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stopping:
        for child in children:
            if child.poll() is not None:
                print(f"studio.serve: {' '.join(map(str, child.args[:4]))} exited ({child.returncode}); stopping")
                stop_all(children)
                return child.returncode or 1
        time.sleep(0.5)
    stop_all(children)
    return 0


def serve(address: str, port: int, processes: int, first_backend_port: int) -> int:
    nginx = shutil.which("nginx")
    if processes == 1 or nginx is None:
        if nginx is None and processes > 1:
            print("studio.serve: nginx is not installed: serving from one process (apt-get install nginx-light)")
        os.chdir(REPO)
        os.execv(sys.executable, streamlit_command(address, port))
    backend_ports = [first_backend_port + i for i in range(processes)]
    children: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="mnist-serve-") as temp_name:
        temp = Path(temp_name)
        config = temp / "nginx.conf"
        config.write_text(nginx_config(address, port, backend_ports, temp))
        try:
            env = backend_env()
            for p in backend_ports:
                children.append(subprocess.Popen(streamlit_command("127.0.0.1", p), cwd=REPO, env=env))
            for p, child in zip(backend_ports, children, strict=True):
                wait_healthy(p, child)
            # -e: nginx opens its default error log before reading the config; point it at stderr.
            children.append(subprocess.Popen([nginx, "-c", str(config), "-p", str(temp), "-e", "stderr"]))
        except BaseException:
            stop_all(children)
            raise
        print(f"studio.serve: http://{address}:{port} -> {processes} Streamlit processes on ports {backend_ports}")
        print(f"studio.serve: this host gives {this_machine().describe()}")
        return supervise(children)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m studio.serve", description=__doc__.splitlines()[0])
    p.add_argument("--address", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    p.add_argument(
        "--port", type=int, default=int(os.environ.get("PORT", DEFAULT_PORT)), help="port ($PORT, else 8501)"
    )
    p.add_argument(
        "--processes",
        type=int,
        default=default_processes(),
        help="Streamlit processes (default: one per CPU given, as memory allows)",
    )
    p.add_argument("--backend-port", type=int, default=FIRST_BACKEND_PORT, help="the first backend's local port")
    args = p.parse_args(argv)
    if not 1 <= args.processes <= MAX_PROCESSES:
        p.error(f"--processes must be between 1 and {MAX_PROCESSES}, got {args.processes}")
    return args


def main(argv: list[str] | None = None) -> int:
    try:
        this_machine()
    except MnistError as exc:
        print(f"studio.serve: error: {exc}", file=sys.stderr)
        return 2
    args = parse_args(argv)
    return serve(args.address, args.port, args.processes, args.backend_port)


if __name__ == "__main__":
    sys.exit(main())
