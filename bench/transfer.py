"""Transfer size of each page's first visit through studio.serve (issue 24, "Lighter pages").

Starts the app as visitors get it, `python -m studio.serve` with 2 Streamlit processes behind nginx, with
real MNIST and an empty runs folder, and loads Sketch, Train and Explore each as a first visit: a fresh
Chromium context (empty cache), the page until its script run is over and the network has been quiet
for QUIET_S. Counted per page, from the DevTools protocol:

  http       bytes on the wire of every HTTP response (Network.loadingFinished encodedDataLength:
             headers plus the body as sent, so gzip shows)
  websocket  payload bytes of the frames the server sent (the figures, tables and image references of
             the script run); Chromium reports them decoded, so this is an upper bound when the socket
             negotiated permessage-deflate (the output says whether it did)
  total      http + websocket, against the target of <= 3 MB (decimal) per page

The same pages are also loaded straight from one Streamlit backend (no nginx): that is what the pages
transferred before nginx compressed anything (Streamlit itself sends /static/ and the HTML uncompressed).
With --lighthouse, Lighthouse's mobile performance score (and its own byte count and layout shift) per page
through nginx; `npm install -g lighthouse`, Chromium at CHROMIUM_PATH (default /usr/bin/chromium).

    python3 -m bench.transfer [--lighthouse] [--quick] [--page explore]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench import benchlib, harness, ps
from bench.benchlib import Figure

PAGES = {"sketch": "/", "train": "/train", "explore": "/explore"}
TARGET_BYTES = 3_000_000  # issue 24: each page's first load transfers <= 3 MB
VIEWPORT = {"width": 1366, "height": 768}  # the desktop
TIMEOUT_MS = 120_000
# A first visit to Explore evaluates the active model on the 10,000 test images in its script run: minutes
# when other work keeps both cores busy.
SCRIPT_RUN_TIMEOUT_MS = 600_000
QUIET_S = 3.0  # no response finished for this long after the script run: the page has loaded
MAX_LOAD_S = 90.0  # a page that keeps fetching is cut off here
POLL_S = 0.2
LIGHTHOUSE_TIMEOUT_S = 240
# Lighthouse launches its own Chromium; the same flags as bench.harness (no calls out on a closed network).
LIGHTHOUSE_CHROME_FLAGS = "--headless " + " ".join(harness.CHROMIUM_ARGS)
MB = 1_000_000
HTTP_ERROR = 400


class TransferMeter:
    """Bytes one page receives, read from the DevTools protocol: per HTTP response, and websocket frames."""

    def __init__(self, page) -> None:
        self.http: dict[str, int] = {}  # requestId -> encoded bytes on the wire
        self.urls: dict[str, str] = {}
        self.encodings: dict[str, str] = {}  # requestId -> content-encoding ("" = none)
        self.failed: list[str] = []  # "404 /train/_stcore/health": what the console shows as errors
        self.websocket_bytes = 0
        self.websocket_extensions: list[str] = []
        self.last_finished = time.monotonic()
        self._session = page.context.new_cdp_session(page)
        self._session.on("Network.responseReceived", self._on_response)
        self._session.on("Network.loadingFinished", self._on_finished)
        self._session.on("Network.webSocketFrameReceived", self._on_frame)
        self._session.on("Network.webSocketHandshakeResponseReceived", self._on_handshake)
        self._session.send("Network.enable")
        self._session.send("Network.setCacheDisabled", {"cacheDisabled": True})  # a first visit

    def _on_response(self, event: dict) -> None:
        response = event["response"]
        self.urls[event["requestId"]] = response["url"]
        headers = {k.lower(): v for k, v in response.get("headers", {}).items()}
        self.encodings[event["requestId"]] = headers.get("content-encoding", "")
        if response["status"] >= HTTP_ERROR:
            self.failed.append(f"{response['status']} {short_path(response['url'])}")

    def _on_finished(self, event: dict) -> None:
        self.http[event["requestId"]] = int(event["encodedDataLength"])
        self.last_finished = time.monotonic()

    def _on_frame(self, event: dict) -> None:
        payload = event["response"]["payloadData"]
        # Binary frames (Streamlit's protobuf messages) come base64-encoded: 3 bytes per 4 characters.
        binary = event["response"]["opcode"] == harness.WEBSOCKET_BINARY_OPCODE
        self.websocket_bytes += len(payload) * 3 // 4 if binary else len(payload.encode())
        self.last_finished = time.monotonic()

    def _on_handshake(self, event: dict) -> None:
        headers = {k.lower(): v for k, v in event["response"].get("headers", {}).items()}
        self.websocket_extensions.append(headers.get("sec-websocket-extensions", ""))

    def http_bytes(self) -> int:
        return sum(self.http.values())

    def heaviest(self, n: int = 5) -> list[dict]:
        """The n largest HTTP responses: path, bytes on the wire, content-encoding."""
        ranked = sorted(self.http.items(), key=lambda item: -item[1])[:n]
        return [
            {"path": short_path(self.urls.get(rid, "?")), "bytes": size, "encoding": self.encodings.get(rid, "")}
            for rid, size in ranked
        ]

    def bytes_by_kind(self) -> dict[str, int]:
        """Bytes on the wire per kind of resource (static JS, CSS, fonts, media images, component files...)."""
        kinds: collections.Counter[str] = collections.Counter()
        for rid, size in self.http.items():
            kinds[resource_kind(self.urls.get(rid, ""))] += size
        return dict(kinds)


def short_path(url: str) -> str:
    return re.sub(r"^https?://[^/]+", "", url)[:90]


def resource_kind(url: str) -> str:
    path = short_path(url)
    for prefix, kind in (("/static/js/", "static js"), ("/static/css/", "static css"), ("/static/media/", "fonts")):
        if path.startswith(prefix):
            return kind
    for prefix, kind in (("/media/", "media (images)"), ("/component/", "components"), ("/_stcore/", "_stcore")):
        if path.startswith(prefix):
            return kind
    return "other"


def wait_until_loaded(page, meter: TransferMeter) -> float:
    """Until the script run is over and no response has finished for QUIET_S; the seconds it took."""
    started = time.monotonic()
    runs = harness.script_runs(page)  # the server's script_finished messages, read from the websocket
    while not runs.finished and time.monotonic() - started < MAX_LOAD_S:
        page.wait_for_timeout(POLL_S * 1000)
    if not runs.finished:
        raise TimeoutError(f"no script run finished within {MAX_LOAD_S:.0f} s of opening {page.url}")
    harness.wait_until_idle(page, SCRIPT_RUN_TIMEOUT_MS)
    idle = time.monotonic()  # the quiet wait is bounded from here, however long the run took
    while time.monotonic() - meter.last_finished < QUIET_S and time.monotonic() - idle < MAX_LOAD_S:
        page.wait_for_timeout(POLL_S * 1000)  # lets Playwright deliver the protocol's events
    return time.monotonic() - started


def measure_page(browser, url: str) -> dict:
    """One first visit in a fresh context: its bytes, by kind, and the heaviest responses."""
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        meter = TransferMeter(page)
        harness.script_runs(page)  # watching frames from the start
        page.goto(url, timeout=TIMEOUT_MS)
        seconds = wait_until_loaded(page, meter)
        page.wait_for_timeout(500)  # the last frames' events
        return {
            "http_bytes": meter.http_bytes(),
            "websocket_bytes": meter.websocket_bytes,
            "total_bytes": meter.http_bytes() + meter.websocket_bytes,
            "responses": len(meter.http),
            "gzipped_responses": sum(1 for e in meter.encodings.values() if e),
            "websocket_deflate": any("permessage-deflate" in e for e in meter.websocket_extensions),
            "by_kind": meter.bytes_by_kind(),
            "heaviest": meter.heaviest(),
            "failed": meter.failed,
            "load_s": round(seconds, 1),
        }
    finally:
        context.close()


def backend_url(server: harness.Server) -> str:
    """One Streamlit backend of the running studio.serve, read from its children's command lines."""
    for pid in ps.process_tree(server.process.pid)[1:]:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        if "--server.port" in args:
            return f"http://127.0.0.1:{args[args.index('--server.port') + 1]}"
    raise RuntimeError("no Streamlit backend found among studio.serve's children")


def run_lighthouse(url: str, out_dir: Path) -> dict:
    """Lighthouse's mobile performance run of one page: score, its byte count, layout shift."""
    report = out_dir / f"lighthouse-{re.sub(r'[^a-z0-9]+', '-', url.lower())}.json"
    command = [
        shutil.which("lighthouse") or "lighthouse", url, "--quiet", "--only-categories=performance",
        "--output=json", f"--output-path={report}", f"--chrome-flags={LIGHTHOUSE_CHROME_FLAGS}",
    ]  # fmt: skip
    env = {**os.environ, "CHROME_PATH": str(harness.CHROMIUM)}
    subprocess.run(command, env=env, check=True, timeout=LIGHTHOUSE_TIMEOUT_S, capture_output=True)
    audits = json.loads(report.read_text())
    score = audits["categories"]["performance"]["score"]
    return {
        "score": None if score is None else round(score * 100),
        "bytes": audits["audits"]["total-byte-weight"].get("numericValue"),
        "cls": audits["audits"]["cumulative-layout-shift"].get("numericValue"),
        "lcp_ms": audits["audits"]["largest-contentful-paint"].get("numericValue"),
    }


def print_page(where: str, name: str, result: dict) -> None:
    kinds = ", ".join(f"{k} {v / MB:.2f}" for k, v in sorted(result["by_kind"].items(), key=lambda kv: -kv[1]))
    print(
        f"{where:8s} {name:8s} total {result['total_bytes'] / MB:5.2f} MB = http {result['http_bytes'] / MB:.2f} "
        f"+ websocket {result['websocket_bytes'] / MB:.3f} (deflate: {result['websocket_deflate']}); "
        f"{result['responses']} responses, {result['gzipped_responses']} compressed; by kind (MB): {kinds}",
        flush=True,
    )
    for failure in result["failed"]:
        print(f"{'':17s}failed: {failure}")
    for item in result["heaviest"]:
        print(f"{'':17s}{item['bytes'] / MB:6.3f} MB {item['encoding'] or 'identity':8s} {item['path']}")


def measure_all(server: harness.Server, pages: dict[str, str], lighthouse: bool, out_dir: Path) -> dict:
    """{"nginx": {page: result}, "backend": {page: result}, "lighthouse": {page: result}}."""
    from playwright.sync_api import sync_playwright

    results: dict[str, dict] = {"nginx": {}, "backend": {}, "lighthouse": {}}
    targets = {"nginx": server.url, "backend": backend_url(server)}
    with sync_playwright() as playwright:
        browser = harness.launch_chromium(playwright)
        try:
            for name, path in pages.items():
                for where, base in targets.items():
                    results[where][name] = measure_page(browser, base + path)
                    print_page(where, name, results[where][name])
        finally:
            browser.close()
    for name, path in pages.items() if lighthouse else ():
        results["lighthouse"][name] = run_lighthouse(server.url + path, out_dir)
        print(f"lighthouse {name}: {results['lighthouse'][name]}", flush=True)
    return results


def transfer_figures(results: dict) -> list[Figure]:
    figures = []
    for name in results["nginx"]:
        ours, before = results["nginx"][name], results["backend"][name]
        total = ours["total_bytes"]
        figures += [
            Figure(
                f"{name}_bytes",
                total,
                "bytes",
                f"{name}: first visit through studio.serve",
                spec=",",
                note=f"({total / MB:.2f} MB; websocket {ours['websocket_bytes'] / MB:.3f})",
                target=f"<= {TARGET_BYTES / MB:.0f} MB",
                passed=total <= TARGET_BYTES,
            ),
            Figure(
                f"{name}_backend_bytes",
                before["total_bytes"],
                "bytes",
                f"{name}: straight from a backend (no nginx)",
                spec=",",
                note=f"({before['total_bytes'] / MB:.2f} MB)",
            ),
        ]
        score = results["lighthouse"].get(name, {}).get("score")
        if name in results["lighthouse"]:
            figures.append(Figure(f"{name}_lighthouse_performance", score, "", f"{name}: Lighthouse performance"))
    return figures


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lighthouse", action="store_true", help="also Lighthouse's mobile performance per page")
    p.add_argument("--quick", action="store_true", help="Sketch only: checks that the script works")
    p.add_argument("--page", choices=sorted(PAGES), action="append", help="only this page (repeatable)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    info = benchlib.start("transfer", threads=1)
    git = benchlib.read_git_state()  # the code measured: others may commit while this runs
    print(f"git commit: {git['commit']}{' (with uncommitted changes)' if git['dirty'] else ''}", flush=True)
    pages = {"sketch": PAGES["sketch"]} if args.quick else PAGES
    if args.page:
        pages = {name: PAGES[name] for name in args.page}
    with tempfile.TemporaryDirectory(prefix="mnist-transfer-") as temp:
        env = {"MNIST_DATA_DIR": str(benchlib.data_dir()), "MNIST_RUNS_DIR": str(Path(temp) / "runs")}
        with harness.run_app(env, timeout=TIMEOUT_MS / 1000, processes=2) as server:
            results = measure_all(server, pages, args.lighthouse, Path(temp))
    figures = transfer_figures(results)
    benchlib.report("transfer", info, figures, pages=results)
    print(json.dumps({"name": "transfer", "commit": git["commit"], "dirty": git["dirty"], "cpu": info["cpu"],
                      **benchlib.collect_values(figures)}))  # fmt: skip


if __name__ == "__main__":
    main()
