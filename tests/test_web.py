"""The web page, JSON API, /healthz and /metrics of `coderag serve --http` (coderag_assets.web).

One server for the module: the app `coderag serve --http` builds (MCP mounted too), served by
uvicorn on a free loopback port in this process, over the fixture repository plus a secret,
an escaping symlink, an HTML file holding `<script>` and a caller of `retry_with_backoff`. The
server starts before the first index (health 503), then the repository is indexed (real
Dagster run, real model) and every test answers from it. The browser test drives Debian's
Chromium; the last test re-indexes while requests run.
"""

from __future__ import annotations

import html
import json
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

from coderag_assets.backend import IndexBackend
from coderag_assets.cli import main as cli_main
from coderag_assets.settings import load_settings
from coderag_assets.store import IndexStore
from coderag_assets.web.server import build_http_app
from tests.browser import chromium_driver
from tests.conftest import copy_served_repo, index_root

SERVER_START_TIMEOUT_S = 30
SCREENSHOTS_ENV = "CODERAG_SCREENSHOTS_DIR"  # docs/images: scripts write the docs' pictures
SCRIPT_FILE = '<script>document.title = "pwned"</script>\n<b>not bold</b>\n'
CALLER_FILE = (
    "from pyutils.retry import retry_with_backoff\n\n\n"
    "def fetch_with_retries(operation):\n"
    "    return retry_with_backoff(operation, attempts=3)\n"
)

# One function long enough to be cut into several chunks; the marker sits in a later one.
LONG_FUNCTION = (
    "def process_everything(items):\n"
    + "".join(
        f"    step_{n} = [item * {n} for item in items if item % {n + 2} == 0]\n" for n in range(60)
    )
    + "    return finalize_unique_marker(step_59)\n"
)


@dataclass
class Site:
    url: str
    root: Path
    data_dir: Path
    backend: IndexBackend
    app: object
    health_before: tuple[int, dict]

    def get(self, url_path: str, /, **params: object) -> httpx.Response:
        return httpx.get(self.url + url_path, params=params or None, timeout=60)


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[Site]:
    root = copy_served_repo(tmp_path_factory.mktemp("web"))
    (root / "docs" / "page.html").write_text(SCRIPT_FILE)
    (root / "pyutils" / "client.py").write_text(CALLER_FILE)
    (root / "pyutils" / "long_task.py").write_text(LONG_FUNCTION)
    settings = load_settings(data_dir=data_dir, workers=2).with_root(root)
    backend = IndexBackend(IndexStore.for_root(data_dir, root), settings)
    app = build_http_app(backend, host="127.0.0.1", token=None)
    port = free_loopback_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    before = httpx.get(url + "/healthz", timeout=30)
    index_root(data_dir, root)
    app.state.web.status.refresh()  # the status strip's snapshot, without waiting for its tick
    try:
        yield Site(url, root, data_dir, backend, app, (before.status_code, before.json()))
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        backend.close()


def cli_json(site: Site, capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    code = cli_main(["--data-dir", str(site.data_dir), *argv, "--root", str(site.root), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


# ------------------------------------------------------------------------------ operators


def test_healthz_before_and_after_the_first_publish(site: Site) -> None:
    status, body = site.health_before
    assert status == 503 and body["status"] == "unavailable"
    assert "has not been indexed yet" in body["reason"]
    after = site.get("/healthz")
    assert after.status_code == 200
    meta = site.backend.meta
    assert after.json()["version"] == meta["version"] and after.json()["status"] == "ok"


def test_metrics_parse_and_count_queries_errors_and_the_index(site: Site) -> None:
    for _ in range(3):
        assert site.get("/api/search", q="retry", mode="bm25").status_code == 200
    assert site.get("/api/search", q="retry", mode="nope").status_code == 400
    site.app.state.web.status.refresh()
    response = site.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in families.values()
        for sample in family.samples
    }
    assert samples[("coderag_queries_total", (("mode", "bm25"), ("tool", "api_search")))] >= 3
    assert samples[("coderag_errors_total", (("kind", "bad_request"), ("tool", "api_search")))] >= 1
    assert (
        samples[("coderag_query_latency_seconds_count", (("mode", "bm25"), ("tool", "api_search")))]
        >= 3
    )
    assert samples[("coderag_results_returned_count", (("tool", "api_search"),))] >= 3
    assert samples[("coderag_index_version", ())] == site.backend.meta["version"]
    assert samples[("coderag_index_chunks", ())] > 10
    assert samples[("coderag_index_readable", ())] == 1
    assert samples[("coderag_index_age_seconds", ())] >= 0
    assert samples[("coderag_freshness_changed_files", ())] == 0
    assert samples[("coderag_freshness_lag_seconds", ())] == 0
    assert samples[("coderag_last_run_duration_seconds", ())] > 0
    outcome = families["coderag_last_run_success"].samples[0]
    assert outcome.labels["status"] == "SUCCESS" and outcome.value == 1


# ------------------------------------------------------------------------------ JSON API


def test_api_returns_exactly_the_cli_json_records(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    for mode in ("bm25", "hybrid"):
        api = site.get("/api/search", q="retry with backoff", mode=mode, limit=5).json()
        cli = cli_json(site, capsys, "search", "retry with backoff", "--mode", mode, "--limit", "5")
        assert api == cli and api[0]["path"] == "pyutils/retry.py"
    glob = site.get("/api/search", q="cache", mode="bm25", path="pyutils/*", lang="py").json()
    assert glob and all(hit["path"].startswith("pyutils/") for hit in glob)
    assert site.get("/api/symbols", path="pyutils/retry.py").json() == cli_json(
        site, capsys, "symbols", "list", "pyutils/retry.py"
    )
    assert site.get("/api/symbols", name="LRUCache").json() == cli_json(
        site, capsys, "symbols", "find", "LRUCache"
    )
    refs = site.get("/api/refs", name="retry_with_backoff").json()
    assert refs == cli_json(site, capsys, "refs", "retry_with_backoff")
    assert {r["path"] for r in refs["references"]} == {"pyutils/retry.py", "pyutils/client.py"}
    status = site.get("/api/status").json()
    assert status["version"] == site.backend.meta["version"]
    assert status["last_run"]["status"] == "SUCCESS"
    cli_status = cli_json(site, capsys, "status")
    assert {key: status[key] for key in ("root", "version", "chunks", "model_id")} == {
        key: cli_status[key] for key in ("root", "version", "chunks", "model_id")
    }


def test_api_file_reads_a_confined_line_range(site: Site) -> None:
    body = site.get("/api/file", path="pyutils/retry.py", start=7, end=8).json()
    assert body["path"] == "pyutils/retry.py" and (body["start_line"], body["end_line"]) == (7, 8)
    assert body["content"].startswith("def retry_with_backoff(")
    assert body["total_lines"] > 20 and body["truncated"] is False


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("/api/search", {"q": ""}, 400, "bad_argument"),
        ("/api/search", {"q": "   "}, 400, "bad_argument"),
        ("/api/search", {"q": "x" * 10_000}, 400, "bad_argument"),
        ("/api/search", {"q": "retry", "mode": "semantic"}, 400, "bad_argument"),
        ("/api/search", {"q": "retry", "lang": "klingon"}, 400, "bad_argument"),
        ("/api/search", {"q": "retry", "path": "../*"}, 400, "bad_argument"),
        ("/api/search", {"q": "retry", "path": "/etc/*"}, 400, "bad_argument"),
        ("/api/search", {"q": "retry", "limit": "ten"}, 400, "bad_argument"),
        ("/api/search", {"q": "retry", "limit": "0"}, 400, "bad_argument"),
        ("/api/search", {"q": "retry", "rerank": "maybe"}, 400, "bad_argument"),
        ("/api/file", {"path": "../private.txt"}, 404, "outside_root"),
        ("/api/file", {"path": "/etc/passwd"}, 404, "outside_root"),
        ("/api/file", {"path": "escape.txt"}, 404, "outside_root"),
        ("/api/file", {"path": ".env"}, 404, "secret"),
        ("/api/file", {"path": "no/such.py"}, 404, "not_indexed"),
        ("/api/file", {"path": "pyutils/retry.py", "start": "999"}, 400, "bad_argument"),
        ("/api/file", {"path": "pyutils/retry.py", "start": "x"}, 400, "bad_argument"),
        ("/api/symbols", {}, 400, "bad_argument"),
        ("/api/symbols", {"path": "../x.py"}, 404, "outside_root"),
        ("/api/symbols", {"name": "x", "mode": "regex"}, 400, "bad_argument"),
        ("/api/refs", {"name": ""}, 400, "bad_argument"),
        ("/api/refs", {"name": "two words"}, 400, "bad_argument"),
    ],
)
def test_api_errors_are_4xx_json_with_a_code(
    site: Site, path: str, params: dict, status: int, code: str
) -> None:
    response = site.get(path, **params)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code and body["error"]


def test_non_utf8_paths_are_404_not_500(site: Site) -> None:
    for url in ("/api/file?path=pyutils/%FF.py", "/api/symbols?path=%C3%28", "/file/%FF%FE.py"):
        response = httpx.get(site.url + url, timeout=30)
        assert response.status_code == 404, url


def test_deleted_file_is_404_on_api_and_page(site: Site) -> None:
    target = site.root / "lib" / "slugify.rb"
    saved = target.read_bytes()
    target.unlink()
    try:
        response = site.get("/api/file", path="lib/slugify.rb")
        assert response.status_code == 404 and response.json()["code"] == "gone"
        page = site.get("/file/lib/slugify.rb")
        assert page.status_code == 404 and "deleted or moved" in page.text
    finally:
        target.write_bytes(saved)


# ------------------------------------------------------------------------------ pages


@pytest.mark.parametrize(
    "url",
    [
        "/file/../../etc/passwd",
        "/file/%2e%2e/private.txt",
        "/file/..%2F..%2Fetc%2Fpasswd",
        "/file/%2Fetc%2Fpasswd",
        "/file/escape.txt",
        "/file/.env",
        "/file/%FF%FE.py",
        "/file/no/such/file.py",
    ],
)
def test_file_view_refuses_paths_it_may_not_serve(site: Site, url: str) -> None:
    response = httpx.get(site.url + url, timeout=30)
    assert response.status_code == 404, url
    assert "outside the root" not in response.text and "not-a-real-secret" not in response.text


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({"q": "   "}, 400, "empty query"),
        ({"q": "y" * 10_000}, 400, "longer than"),
        ({"q": "retry", "mode": "semantic"}, 400, "unknown mode"),
        ({"q": "retry", "lang": "klingon"}, 400, "unknown language"),
        ({"q": "retry", "path": "../x"}, 400, "bad path glob"),
    ],
)
def test_search_page_shows_bad_input_as_a_message(
    site: Site, params: dict, status: int, message: str
) -> None:
    response = site.get("/", **params)
    assert response.status_code == status and message in response.text
    assert 'role="alert"' in response.text and "Traceback" not in response.text


def test_pages_escape_queries_and_file_contents(site: Site) -> None:
    page = site.get("/", q='<img src=x onerror="alert(1)">', mode="bm25").text
    assert "<img src=x" not in page and "&lt;img src=x onerror=" in page
    file_page = site.get("/file/docs/page.html").text
    assert "<script>document" not in file_page and "<b>not" not in file_page
    shown = html.unescape(re.sub(r"<[^>]+>", "", file_page))  # the text a browser shows
    assert SCRIPT_FILE.splitlines()[0] in shown and "<b>not bold</b>" in shown


def test_a_hit_inside_a_long_definition_shows_its_header(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    hits = site.get("/api/search", q="finalize_unique_marker", mode="bm25", limit=1).json()
    assert hits[0]["path"] == "pyutils/long_task.py" and hits[0]["start_line"] > 1
    page = site.get("/", q="finalize_unique_marker", mode="bm25", limit=1).text
    assert "def process_everything(items):" in page
    assert 'class="header-line"' in page and "/file/pyutils/long_task.py?hl=1-1" in page
    code = cli_main(
        ["--data-dir", str(site.data_dir), "search", "finalize_unique_marker", "--mode", "bm25",
         "--limit", "1", "--root", str(site.root)]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0 and "def process_everything(items):" in printed
    assert printed.index("def process_everything") < printed.index("step_48 = ")


# ------------------------------------------------------------------------------ security


def test_a_token_guards_page_api_metrics_and_mcp_beyond_loopback(site: Site) -> None:
    from starlette.testclient import TestClient

    token = "test-token-0123456789abcdef"
    app = build_http_app(site.backend, host="0.0.0.0", token=token)
    client = TestClient(app, base_url="http://203.0.113.7:8765")
    for path in ("/", "/api/search?q=retry&mode=bm25", "/metrics", "/file/pyutils/retry.py"):
        assert client.get(path).status_code == 401, path
    assert client.post("/mcp", json={}).status_code == 401
    assert client.get("/healthz").status_code == 200  # health says nothing about the code
    assert (
        client.get(
            "/api/search?q=retry&mode=bm25", headers={"X-CodeRAG-Token": "wrong"}
        ).status_code
        == 401
    )
    ok = client.get("/api/search?q=retry&mode=bm25", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200 and ok.json()[0]["path"] == "pyutils/retry.py"
    landing = client.get(f"/?token={token}&q=retry", follow_redirects=False)
    assert landing.status_code == 303 and landing.headers["location"] == "/?q=retry"
    assert "HttpOnly" in landing.headers["set-cookie"]
    assert client.get("/?q=retry&mode=bm25").status_code == 200  # the cookie now
    # On loopback, another Host (DNS rebinding) is refused.
    loopback = TestClient(site.app, base_url="http://evil.example:8765")
    assert loopback.get("/api/status").status_code == 421


def test_cli_refuses_a_malformed_token_and_a_bad_port(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--data-dir", str(site.data_dir)]
    code = cli_main([*base, "serve", "--http", "--host", "0.0.0.0", "--token", "short;",
                     "--root", str(site.root)])  # fmt: skip
    assert code == 2 and "the token must be 16-200 characters" in capsys.readouterr().err
    code = cli_main([*base, "web", str(site.root), "--port", "0", "--no-browser"])
    assert code == 2 and "--port 0 is not a TCP port" in capsys.readouterr().err


# ------------------------------------------------------------------------------ browser


def test_browser_search_open_navigate_permalink_escape(site: Site, tmp_path: Path) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    shots = Path(os.environ.get(SCREENSHOTS_ENV) or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    with chromium_driver() as driver:
        wait = WebDriverWait(driver, 20)
        driver.get(site.url + "/")
        # `/` focuses the search box; type a query; Enter searches.
        driver.find_element(By.TAG_NAME, "body").send_keys("/")
        box = driver.switch_to.active_element
        assert box.get_attribute("id") == "q"
        box.send_keys("retry with backoff", Keys.ENTER)
        wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, ".result .path")))
        paths = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".result .path")]
        assert paths[0] == "pyutils/retry.py"
        assert driver.find_elements(By.CSS_SELECTOR, ".result .snippet mark")  # terms marked
        driver.save_screenshot(str(shots / "web-search.png"))

        # Arrow down selects the first result, Enter opens it: hit lines marked, outline shown.
        driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ARROW_DOWN, Keys.ENTER)
        wait.until(ready.presence_of_element_located((By.ID, "code")))
        assert "/file/pyutils/retry.py" in driver.current_url
        hit_ids = [e.get_attribute("id") for e in driver.find_elements(By.CSS_SELECTOR, ".ln.hit")]
        assert "L7" in hit_ids and len(hit_ids) >= 5
        outline = driver.find_element(By.CSS_SELECTOR, "nav.outline").text
        assert "retry_with_backoff" in outline and "parse_duration" in outline
        driver.save_screenshot(str(shots / "web-file.png"))

        # A call in another file links to the definition.
        driver.get(site.url + "/file/pyutils/client.py")
        links = driver.find_elements(By.CSS_SELECTOR, "#code a.def")
        target = next(link for link in links if link.text == "retry_with_backoff")
        target.click()
        wait.until(ready.url_contains("/file/pyutils/retry.py"))
        assert "hit" in driver.find_element(By.ID, "L7").get_attribute("class").split()

        # Line permalinks mark their range.
        driver.get(site.url + "/file/pyutils/retry.py#L20-L22")
        picked = [
            e.get_attribute("id") for e in driver.find_elements(By.CSS_SELECTOR, ".ln.picked")
        ]
        assert picked == ["L20", "L21", "L22"]

        # A search permalink reproduces the page: same results, same filters.
        permalink = site.url + "/?q=parse+duration&mode=bm25&lang=python&path=pyutils"
        driver.get(permalink)
        first = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".result .where")]
        driver.get(permalink)
        again = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".result .where")]
        assert first and first == again and "pyutils/retry.py" in first[0]
        mode = driver.find_element(By.ID, "mode").get_attribute("value")
        assert (mode, driver.find_element(By.ID, "lang").get_attribute("value")) == (
            "bm25",
            "python",
        )

        # A file holding <script> renders as text and runs nothing.
        driver.get(site.url + "/file/docs/page.html")
        assert driver.title != "pwned"
        assert (
            '<script>document.title = "pwned"</script>' in driver.find_element(By.ID, "code").text
        )
        assert not driver.find_elements(By.CSS_SELECTOR, "#code script, #code b")
        with pytest.raises(NoAlertPresentException):
            driver.switch_to.alert.text  # noqa: B018

        # A path escape is a 404 page.
        driver.get(site.url + "/file/..%2F..%2Fetc%2Fpasswd")
        assert driver.find_element(By.TAG_NAME, "h1").text == "Not found"


# ------------------------------------------------------------------------------ publishing


def test_requests_during_a_publish_are_answered_and_the_new_version_appears(site: Site) -> None:
    version = site.get("/healthz").json()["version"]
    with open(site.root / "pyutils" / "retry.py", "a") as source:
        source.write("\n\ndef jitter_fraction_for_tests():\n    return 0.5\n")
    statuses: list[int] = []
    indexing = threading.Thread(target=index_root, args=(site.data_dir, site.root))
    indexing.start()
    while indexing.is_alive():
        for path, params in (
            ("/api/search", {"q": "retry", "mode": "bm25"}),
            ("/healthz", {}),
            ("/", {"q": "retry", "mode": "bm25"}),
            ("/file/pyutils/retry.py", {}),
        ):
            statuses.append(site.get(path, **params).status_code)
    indexing.join()
    assert statuses and set(statuses) == {200}
    assert site.get("/healthz").json()["version"] > version
    found = site.get("/api/search", q="jitter_fraction_for_tests", mode="bm25").json()
    assert found and found[0]["path"] == "pyutils/retry.py"
    site.app.state.web.status.refresh()
    assert site.get("/api/status").json()["version"] > version
