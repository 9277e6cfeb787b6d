"""studio.serve: the nginx config it writes (checked by nginx itself) and its command line.

Routing through a running studio.serve is tested by tests/test_load.py's quick run with 2 processes; that no
log line of a run through it carries a visitor's token, by tests/e2e/test_secrets.py.
"""

from __future__ import annotations

import contextlib
import gzip
import http.server
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from bench import harness, ps
from mnist import machine
from studio import page_css, serve


def test_nginx_accepts_the_config(tmp_path):
    if not serve.nginx_available():
        pytest.skip("nginx is not installed")
    config = tmp_path / "nginx.conf"
    config.write_text(serve.nginx_config("127.0.0.1", 8999, [9001, 9002, 9003], tmp_path))
    done = subprocess.run(
        [shutil.which("nginx"), "-t", "-c", str(config), "-p", str(tmp_path), "-e", "stderr"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert "syntax is ok" in done.stderr


def test_config_routes_one_browser_to_one_backend(tmp_path):
    text = serve.nginx_config("0.0.0.0", 7860, [8600, 8601], tmp_path)
    assert "listen 0.0.0.0:7860;" in text
    assert text.count("server 127.0.0.1:") == 2 and "127.0.0.1:8601" in text
    assert "hash $remote_addr consistent;" in text  # a browser's address always picks the same backend
    assert "proxy_set_header Upgrade $http_upgrade;" in text  # websockets pass through
    assert f"keepalive_timeout {serve.UPSTREAM_IDLE_TIMEOUT_S}s;" in text  # closes idle links before uvicorn does
    assert str(tmp_path) in text  # nginx writes nothing outside the temporary folder
    assert f"client_max_body_size {serve.streamlit_upload_mb() + serve.UPLOAD_SLACK_MB}m;" in text


def test_config_routes_on_what_the_client_cannot_choose(tmp_path):
    """The address the trusted proxy saw (X-Forwarded-For from the right), never the first entry or a cookie."""
    text = serve.nginx_config("0.0.0.0", 7860, [8600, 8601], tmp_path)
    assert "real_ip_header X-Forwarded-For;" in text and "real_ip_recursive on;" in text
    assert "set_real_ip_from 10.0.0.0/8;" in text  # Spaces' front proxy reaches the container from a private address
    assert "$cookie_" not in text and "$http_x_forwarded_for" not in text


def test_config_keeps_the_token_out_of_logs_and_referrers(tmp_path):
    text = serve.nginx_config("0.0.0.0", 7860, [8600], tmp_path)
    assert "proxy_request_buffering off;" in text  # no upload buffered to a file, so no warning quoting the referrer
    assert "access_log off;" in text
    assert f"add_header Referrer-Policy {serve.REFERRER_POLICY} always;" in text
    assert serve.REFERRER_POLICY in ("no-referrer", "same-origin", "strict-origin")


NGINX_START_TIMEOUT_S = 20.0
PROXY_ADDRESS = "203.0.113.7"  # a public address (TEST-NET-3): the client as a trusted proxy saw it


class PortHandler(http.server.BaseHTTPRequestHandler):
    """A stand-in backend: answers every GET with its own port."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = str(self.server.server_address[1]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:  # quiet
        pass


@contextlib.contextmanager
def running_nginx(tmp_path, backends: int, handler=PortHandler):
    """nginx with studio.serve's config in front of `backends` stand-in backends; its front URL."""
    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) for _ in range(backends)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    port = harness.free_port()
    config = tmp_path / "nginx.conf"
    config.write_text(serve.nginx_config("127.0.0.1", port, [s.server_address[1] for s in servers], tmp_path))
    nginx = subprocess.Popen([shutil.which("nginx"), "-c", str(config), "-p", str(tmp_path), "-e", "stderr"])
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
        for server in servers:
            server.shutdown()


def backend_for(url: str, forwarded_for: str) -> tuple[str, str]:
    """(the backend's port, the Referrer-Policy header) for a request with this X-Forwarded-For."""
    deadline = time.monotonic() + NGINX_START_TIMEOUT_S
    while True:
        request = urllib.request.Request(url, headers={"X-Forwarded-For": forwarded_for})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.read().decode(), response.headers.get("Referrer-Policy")
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.mark.slow
def test_a_client_cannot_choose_its_backend(tmp_path):
    """Behind a proxy, whatever the client writes into X-Forwarded-For, the proxy's entry decides."""
    if not serve.nginx_available():
        pytest.skip("nginx is not installed")
    with running_nginx(tmp_path, backends=4) as url:
        chosen, policy = backend_for(url, PROXY_ADDRESS)
        assert policy == serve.REFERRER_POLICY
        for i in range(24):  # 24 forged first entries: with 4 backends, routing on them would spread
            forged = f"198.51.100.{i}, 10.{i}.0.1"
            assert backend_for(url, f"{forged}, {PROXY_ADDRESS}")[0] == chosen, forged
        others = {backend_for(url, f"203.0.113.{i}")[0] for i in range(24)}
        assert len(others) > 1  # other clients do spread over the backends


def test_config_compresses_and_caches_hashed_files(tmp_path):
    text = serve.nginx_config("0.0.0.0", 7860, [8600], tmp_path)
    assert "gzip on;" in text and "gzip_proxied any;" in text  # the backends' responses are all proxied
    assert "application/javascript" in text and "text/css" in text
    assert f'location ~ "{serve.HASHED_FILE_PATTERN}"' in text
    assert serve.HASHED_CACHE_CONTROL == "public, max-age=31536000, immutable"
    assert text.count(f"add_header Referrer-Policy {serve.REFERRER_POLICY} always;") == text.count("location ")


HASHED_JS = "/static/js/index.DormvYxC.js"  # a Streamlit bundle's name: a content hash before .js
COMPONENT_JS = "/component/streamlit_drawable_canvas.st_canvas/static/js/main.1a2b3c4d.chunk.js"
MISSING_JS = "/static/js/gone.AbCd1234.js"  # Streamlit answers a missing static file with its page
ASSET_BYTES = 50_000


class AssetHandler(http.server.BaseHTTPRequestHandler):
    """A stand-in backend that answers as Streamlit does: the page (also for a missing file), JavaScript."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path in (HASHED_JS, COMPONENT_JS):
            body, kind, cache = b"var streamlit = 1;\n" * (ASSET_BYTES // 19), "application/javascript", "public"
        else:
            body, kind, cache = b"<html><head><title>t</title></head><body></body></html>", "text/html", "no-cache"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Cache-Control", cache)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:  # quiet
        pass


def fetch(url: str, gzip: bool = True) -> tuple[bytes, dict[str, str]]:
    """The body (as sent) and the headers, retried until nginx answers."""
    deadline = time.monotonic() + NGINX_START_TIMEOUT_S
    while True:
        request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"} if gzip else {})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.read(), {k.lower(): v for k, v in response.headers.items()}
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_nginx_gzips_assets_and_caches_hashed_ones(tmp_path):
    if not serve.nginx_available():
        pytest.skip("nginx is not installed")
    with running_nginx(tmp_path, backends=1, handler=AssetHandler) as url:
        for path in (HASHED_JS, COMPONENT_JS):
            body, headers = fetch(url + path)
            assert headers.get("content-encoding") == "gzip", path
            assert len(body) < ASSET_BYTES / 10 and gzip.decompress(body).startswith(b"var streamlit")
            assert headers["cache-control"] == serve.HASHED_CACHE_CONTROL, path
            assert headers["referrer-policy"] == serve.REFERRER_POLICY
        body, headers = fetch(url + HASHED_JS, gzip=False)
        assert "content-encoding" not in headers and len(body) >= ASSET_BYTES * 0.9  # plain when not asked
        for path in ("/", "/train", MISSING_JS):  # pages are never cached for long
            body, headers = fetch(url + path, gzip=False)
            assert headers["cache-control"] == "no-cache", path
            assert headers["referrer-policy"] == serve.REFERRER_POLICY
            # A page asks for the server's health at the root only, not at /train/_stcore/health (a 404).
            assert (serve.BACKEND_AT_ROOT_JS in body.decode()) == (path != MISSING_JS), path
            # The app's CSS is in the page's <head> before its first paint (no layout shift when it arrives).
            head = body.decode().split("</head>")[0]
            assert (serve.head_css() in head) == (path != MISSING_JS), path
            assert f"outline: {page_css.FOCUS_RING_PX}px solid" in serve.head_css() and "\n" not in serve.head_css()


def test_processes_out_of_range_is_refused(capsys):
    with pytest.raises(SystemExit):
        serve.parse_args(["--processes", "0"])
    assert "--processes must be between 1 and" in capsys.readouterr().err


def test_default_processes_is_at_most_the_cpus_given():
    assert 1 <= serve.default_processes() <= machine.this_machine().cpus <= (os.cpu_count() or 1)


def test_process_tree_sums_a_childs_cpu():
    """bench.load's server CPU with studio.serve: the launcher's own plus its children's."""
    busy = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5: pass\ntime.sleep(30)"
    parent = subprocess.Popen(
        [sys.executable, "-c", f"import subprocess, sys; subprocess.run([sys.executable, '-c', {busy!r}])"]
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(ps.process_tree(parent.pid)) < 2:
            time.sleep(0.1)
        tree = ps.process_tree(parent.pid)
        assert tree[0] == parent.pid and len(tree) == 2
        child_cpu = 0.0
        while time.monotonic() < deadline + 30 and child_cpu < 0.45:  # the child burns 0.5 s of CPU, then sleeps
            time.sleep(0.2)
            child_cpu = ps.read_cpu_seconds(tree[1])
        own = ps.read_cpu_seconds(parent.pid)
        assert child_cpu >= 0.45
        assert ps.read_tree_cpu_seconds(parent.pid) >= own + child_cpu
        assert ps.read_tree_rss_mb(parent.pid) > ps.read_rss_mb(parent.pid)
    finally:
        for pid in ps.process_tree(parent.pid)[::-1]:
            subprocess.run(["kill", str(pid)], check=False)
        parent.wait(timeout=10)
