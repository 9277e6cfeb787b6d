"""The visitor's token stays secret, in Chromium through `python -m studio.serve` (nginx, two backends).

The token is the visitor's identity (studio.ownership): whoever has it can delete their runs. It lives in a
cookie, and in the address (?visitor=) only where the browser refuses the cookie. So: no log line of the
server (nginx and Streamlit) holds it, even after uploads from an address that carries it; no page loads
anything from another origin (each such request would tell that origin the address); every response says
Referrer-Policy; and where the cookie works the address never holds the token.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import torch

try:
    from playwright.sync_api import expect
except ImportError:  # conftest.py skips every test with the reason (in CI: fails them)
    expect = None

from bench import harness
from mnist.checkpoint import build_record, encode_weights
from mnist.config import TrainConfig
from mnist.models import build_model
from mnist.records import RunMetrics
from studio import ownership, serve, visitor

from .helpers import SERVER_START_TIMEOUT, TIMEOUT_MS, VIEWPORT, go_to, open_app

pytestmark = pytest.mark.e2e

PROCESSES = 2  # nginx in front, as the Docker image runs it
SETTINGS = "Model, device and your own checkpoint"  # the Sketch expander holding the uploaders
WEIGHTS_LABEL = "Upload a checkpoint (model.safetensors)"
UPLOAD_PATH = "/_stcore/upload_file/"
LARGE_UPLOAD_MB = serve.streamlit_upload_mb() - 5  # near server.maxUploadSize: bigger than any nginx buffer
PAGES = (("Train", "Train a model"), ("Explore", "Explore"), ("Sketch", "Sketch a digit"))


@pytest.fixture(scope="module")
def served(mnist_dir, tmp_path_factory):
    """The app through studio.serve with two backends, its output (nginx's and Streamlit's) in a log file."""
    if not serve.nginx_available():
        pytest.skip("nginx is not installed: studio.serve would run one plain Streamlit process")
    folder = tmp_path_factory.mktemp("e2e-serve")
    env = {"MNIST_DATA_DIR": str(mnist_dir), "MNIST_RUNS_DIR": str(folder / "runs")}
    log_path = folder / "serve.log"
    with harness.run_app(env, timeout=SERVER_START_TIMEOUT, log_path=log_path, processes=PROCESSES) as server:
        server.log_path = log_path
        yield server


def new_visitor(browser, refuse_cookies: bool = False):
    """A browser context (one visitor) and its page; all the page's requests and responses are recorded."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    if refuse_cookies:
        context.add_init_script(harness.REFUSE_COOKIES_JS)
    page = context.new_page()
    page.requests, page.responses = [], []
    page.on("request", lambda request: page.requests.append(request.url))
    page.on("response", lambda response: page.responses.append(response))
    return context, page


def origin_of(url: str) -> str:
    """scheme://host:port of a URL; a blob: URL has its creator's origin."""
    parts = urlsplit(url.removeprefix("blob:"))
    return f"{parts.scheme}://{parts.netloc}"


def address_token(page) -> str | None:
    return (parse_qs(urlsplit(page.url).query).get(visitor.VISITOR_PARAM) or [None])[0]


def wait_for_address_token(page) -> str:
    """The token the address gets once the page has told the server that the cookie is refused."""
    expect(page).to_have_url(re.compile(rf"[?&]{visitor.VISITOR_PARAM}="))
    return address_token(page)


def cookie_token(context) -> str | None:
    return next((c["value"] for c in context.cookies() if c["name"] == visitor.VISITOR_COOKIE), None)


def write_model(folder: Path) -> Path:
    torch.manual_seed(0)
    model = build_model("mlp").eval()
    record = build_record(model, TrainConfig(arch="mlp"), RunMetrics(test_accuracy=0.9), "secret.safetensors")
    path = folder / "secret.safetensors"
    path.write_bytes(encode_weights(model, record))
    return path


def upload(page, path: Path) -> None:
    """Upload `path` in Sketch's checkpoint uploader and wait for its upload request's answer."""
    uploader = page.locator('[data-testid="stFileUploader"]').filter(has_text=WEIGHTS_LABEL)
    with page.expect_response(lambda r: UPLOAD_PATH in r.url and r.request.method == "PUT") as answer:
        uploader.locator('input[type="file"]').set_input_files(str(path))
    assert answer.value.ok, f"upload of {path.name} ({path.stat().st_size:,} bytes): HTTP {answer.value.status}"


def test_no_log_line_carries_the_token_after_uploads(served, browser, tmp_path):
    """The worst case: cookies refused, so the address carries ?visitor= while the visitor uploads."""
    context, page = new_visitor(browser, refuse_cookies=True)
    try:
        open_app(page, served.url)
        token = wait_for_address_token(page)
        assert ownership.valid_token(token) and cookie_token(context) is None
        page.get_by_text(SETTINGS).click()
        upload(page, write_model(tmp_path))
        expect(page.get_by_text(re.compile(r"^Loaded secret\.safetensors"))).to_be_visible()  # not "uploaded secret…"
        large = tmp_path / "large.safetensors"
        large.write_bytes(b"\0" * (LARGE_UPLOAD_MB * 1024 * 1024))  # not a model: refused by the app, after upload
        upload(page, large)
        expect(page.locator('[data-testid="stAlertContentError"]').first).to_be_visible()
        assert address_token(page) == token  # the address still holds it: it was there to leak
    finally:
        context.close()
    log = served.log_path.read_text(errors="replace")
    assert log.strip(), "the server wrote nothing: is the log the right one?"
    leaks = [line for line in log.splitlines() if token in line]
    assert not leaks, leaks


def test_pages_load_nothing_from_another_origin(served, browser):
    context, page = new_visitor(browser)
    try:
        open_app(page, served.url)
        for link, heading in PAGES:
            go_to(page, link, heading)
            page.wait_for_load_state("networkidle")
        page.reload()
        expect(page.get_by_role("heading", name="Sketch a digit")).to_be_visible()
        page.wait_for_load_state("networkidle")
    finally:
        context.close()
    others = sorted({url for url in page.requests if origin_of(url) != served.url and not url.startswith("data:")})
    assert not others, others
    documents = [r for r in page.responses if r.request.resource_type == "document"]
    assert documents and all(r.headers.get("referrer-policy") == serve.REFERRER_POLICY for r in documents)


def test_the_address_holds_the_token_only_where_cookies_are_refused(served, browser):
    context, page = new_visitor(browser)
    try:
        open_app(page, served.url)
        token = cookie_token(context)
        assert token and ownership.valid_token(token)
        expect(page.get_by_role("heading", name="Sketch a digit")).to_be_visible()
        assert address_token(page) is None  # the cookie works: the address never gets the token
        for link, heading in PAGES:
            go_to(page, link, heading)
            assert address_token(page) is None, page.url
        page.reload()
        expect(page.get_by_role("heading", name="Sketch a digit")).to_be_visible()
        assert address_token(page) is None and cookie_token(context) == token  # the same visitor after a reload
        page.goto(f"{served.url}/?{visitor.VISITOR_PARAM}={token}")  # an old bookmark: cleaned at once
        expect(page).to_have_url(re.compile(r"^[^?]*$"))
    finally:
        context.close()
    assert [url for url in page.requests if f"{visitor.VISITOR_PARAM}=" in url] == [f"{served.url}/?visitor={token}"]

    context, page = new_visitor(browser, refuse_cookies=True)
    try:
        open_app(page, served.url)
        token = wait_for_address_token(page)
        for link, heading in PAGES:
            go_to(page, link, heading)
            expect(page).to_have_url(re.compile(rf"[?&]{visitor.VISITOR_PARAM}={token}"))
        page.reload()
        expect(page.get_by_role("heading", name="Sketch a digit")).to_be_visible()
        assert address_token(page) == token  # the address kept the visitor across pages and the reload
    finally:
        context.close()
