"""studio.serve: the nginx config it writes (checked by nginx itself) and its command line.

Routing through a running studio.serve is tested by tests/test_load.py's quick run with 2 processes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from bench import procfs
from mnist import machine
from studio import serve


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
    assert "hash $route_key consistent;" in text  # a browser's key always picks the same backend
    assert f"$cookie_{serve.ROUTE_COOKIE}" in text  # the key: the cookie, else the client's address
    assert "proxy_set_header Upgrade $http_upgrade;" in text  # websockets pass through
    assert str(tmp_path) in text  # nginx writes nothing outside the temporary folder
    assert f"client_max_body_size {serve.streamlit_upload_mb() + serve.UPLOAD_SLACK_MB}m;" in text


def test_processes_out_of_range_is_refused(capsys):
    with pytest.raises(SystemExit):
        serve.parse_args(["--processes", "0"])
    assert "--processes must be between 1 and" in capsys.readouterr().err


def test_default_processes_is_at_most_the_cpus_given():
    assert 1 <= serve.default_processes() <= machine.this_machine().cpus <= (os.cpu_count() or 1)


def test_process_tree_sums_a_childs_cpu():
    """bench/load.py's server CPU with studio.serve: the launcher's own plus its children's."""
    busy = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5: pass\ntime.sleep(30)"
    parent = subprocess.Popen(
        [sys.executable, "-c", f"import subprocess, sys; subprocess.run([sys.executable, '-c', {busy!r}])"]
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(procfs.process_tree(parent.pid)) < 2:
            time.sleep(0.1)
        tree = procfs.process_tree(parent.pid)
        assert tree[0] == parent.pid and len(tree) == 2
        child_cpu = 0.0
        while time.monotonic() < deadline + 30 and child_cpu < 0.45:  # the child burns 0.5 s of CPU, then sleeps
            time.sleep(0.2)
            child_cpu = procfs.read_process_cpu_seconds(tree[1])
        own = procfs.read_process_cpu_seconds(parent.pid)
        assert child_cpu >= 0.45
        assert procfs.read_tree_cpu_seconds(parent.pid) >= own + child_cpu
        assert procfs.read_tree_status_mb(parent.pid, "VmRSS") > procfs.read_status_mb(parent.pid, "VmRSS")
    finally:
        for pid in procfs.process_tree(parent.pid)[::-1]:
            subprocess.run(["kill", str(pid)], check=False)
        parent.wait(timeout=10)
