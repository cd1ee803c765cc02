"""The built site in a real browser: every page renders offline, with nothing broken.

Headless Debian Chromium, driven by Selenium through Debian's chromedriver (never a browser download),
opens every HTML page of the site served over HTTP on 127.0.0.1 and fails on: a console error, an image
that did not load, math that MathJax did not render (or rendered as an error), a widget view that did not
render, a broken internal link or `#fragment`, a failed local request, any request that leaves the local
server (the site must read offline: no CDN), and a page without its download button. It saves a
full-page screenshot of each page to `_build/screenshots/`. Two more tests check the checker: it must
flag a page broken on purpose, and the site's own packed widget scripts must render a widget offline.
One more opens the chapters' exercise solutions: hidden when the page opens, shown on a click.

Run after the book build, which `make test` does for the smoke profile:

    ADVLOGITS_SITE_DIR=_build/jb/smoke/_build/html pytest -m site tests/test_site.py

Without ADVLOGITS_SITE_DIR the tests skip; with it, a missing browser, driver or Selenium is a failure.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urldefrag, urlsplit

import pytest

pytestmark = pytest.mark.site

SITE_ENV = "ADVLOGITS_SITE_DIR"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Offline and quiet: no background connections, updates, first-run pages or sync, which this machine's
# closed network would refuse (and log) at every start. A new empty --user-data-dir is added per run.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
)
SCREENSHOT_DIR = Path(__file__).resolve().parents[1] / "_build" / "screenshots"
WINDOW_WIDTH = 1280  # CSS pixels: wide enough for the theme's three-column layout
MAX_SCREENSHOT_HEIGHT = 32_000  # CSS pixels; a longer page is cut there (the checks still see all of it)
RENDER_TIMEOUT_S = 30.0  # how long MathJax and the widget manager get to render a page
PAGE_TIMEOUT_S = 60.0
# Pages that Sphinx generates without a source file, hence without a download button.
GENERATED_PAGES = frozenset({"genindex.html", "search.html", "py-modindex.html"})

SETUP_HINT = (
    "install Debian's chromium and chromium-driver (`make system-packages` does it as root, as .ci/run does; "
    "`make browser` installs only these two)"
)


# ---- the site, its server and the browser ---------------------------------------------------------


def _site_dir_from_env() -> Path | None:
    value = os.environ.get(SITE_ENV, "").strip()
    return Path(value).resolve() if value else None


def _pages(site: Path) -> list[str]:
    """Every HTML page of the site, relative to it (files under _static/ and _sources/ are assets)."""
    return sorted(
        p.relative_to(site).as_posix()
        for p in site.rglob("*.html")
        if p.relative_to(site).parts[0] not in {"_static", "_sources"}
    )


def _page_params() -> list[str]:
    site = _site_dir_from_env()
    if site is None or not (site / "index.html").is_file():
        return ["(no site)"]  # the site_dir fixture skips or fails, with the reason
    return _pages(site)


@pytest.fixture(scope="module")
def site_dir() -> Path:
    site = _site_dir_from_env()
    if site is None:
        pytest.skip(
            f"{SITE_ENV} is not set: build the site (e.g. `make site PROFILE=smoke`) and set it to the "
            "built html folder, e.g. _build/jb/smoke/_build/html; `make test` does both"
        )
    if not (site / "index.html").is_file():
        pytest.fail(
            f"{SITE_ENV}={site} has no index.html: point it at a built site, e.g. "
            "_build/jb/smoke/_build/html after `make site PROFILE=smoke`"
        )
    return site


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


@contextlib.contextmanager
def _serve(directory: Path) -> Iterator[str]:
    """Serve `directory` over HTTP on 127.0.0.1 at a free port, from a thread; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name=f"serve {directory.name}", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def base_url(site_dir: Path) -> Iterator[str]:
    with _serve(site_dir) as url:
        yield url


@pytest.fixture(scope="module")
def driver(site_dir: Path) -> Iterator[Any]:
    """Headless Debian Chromium through Debian's chromedriver; both paths explicit, so nothing is downloaded."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail(f"{SITE_ENV} is set but {' and '.join(missing)} is missing: {SETUP_HINT}")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as error:
        pytest.fail(
            f"{SITE_ENV} is set but Selenium is not importable ({error}): install the test extras "
            "with `pip install -e '.[test]'` (`make setup` does it)"
        )

    profile = tempfile.mkdtemp(prefix="advlogits-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("SE_OFFLINE", "true")  # Selenium Manager, should anything call it, must not download
            browser = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    except BaseException:
        shutil.rmtree(profile, ignore_errors=True)
        raise
    browser.set_page_load_timeout(PAGE_TIMEOUT_S)
    browser.set_script_timeout(PAGE_TIMEOUT_S)
    try:
        yield browser
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def screenshot_dir(site_dir: Path) -> Path:
    """_build/screenshots/, emptied of the previous run's screenshots."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOT_DIR.glob("*.png"):
        old.unlink()
    return SCREENSHOT_DIR


# ---- link targets, fetched over HTTP once each -----------------------------------------------------


class _AnchorParser(HTMLParser):
    """Collects the fragment targets of an HTML page: every `id` and every `<a name=...>`."""

    def __init__(self) -> None:
        super().__init__()
        self.anchors: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value and (name == "id" or (name == "name" and tag == "a")):
                self.anchors.add(value)


@dataclass
class _Target:
    status: int
    anchors: set[str] | None  # None when the target is not HTML


@dataclass
class _LinkCache:
    """Each link target is requested over HTTP once per module, however many pages link to it."""

    targets: dict[str, _Target] = field(default_factory=dict)

    def get(self, url: str) -> _Target:
        if url not in self.targets:
            try:
                with urllib.request.urlopen(url, timeout=30) as response:
                    body, status = response.read(), response.status
                    is_html = response.headers.get_content_type() == "text/html"
            except urllib.error.HTTPError as error:
                self.targets[url] = _Target(error.code, None)
                return self.targets[url]
            anchors = None
            if is_html:
                parser = _AnchorParser()
                parser.feed(body.decode("utf-8", errors="replace"))
                anchors = parser.anchors
            self.targets[url] = _Target(status, anchors)
        return self.targets[url]


@pytest.fixture(scope="module")
def link_cache() -> _LinkCache:
    return _LinkCache()


# ---- what the browser reports ----------------------------------------------------------------------

# Waits for MathJax 3 to finish typesetting where the page has math (Sphinx gives it the class `math`).
# MathJax is loaded with `defer`, so its startup promise may not exist yet when this starts.
WAIT_FOR_MATHJAX_JS = """
const [timeoutMs, done] = arguments;
if (!document.querySelector('.math')) { done('no math'); return; }
const started = Date.now();
(function poll() {
  const mj = window.MathJax;
  if (mj && mj.startup && mj.startup.promise) {
    mj.startup.promise.then(() => done('typeset'), (e) => done('MathJax failed: ' + e));
  } else if (Date.now() - started > timeoutMs) {
    done('MathJax never started on a page with math (window.MathJax has: '
         + JSON.stringify(Object.keys(mj || {})) + ')');
  } else { setTimeout(poll, 100); }
})();
"""

# Waits until the ipywidgets HTML manager has rendered every embedded widget view (it puts a
# .widget-subarea holding the view right before the view's script tag); returns those still missing.
WAIT_FOR_WIDGETS_JS = """
const [timeoutMs, done] = arguments;
const views = Array.from(document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]'));
const started = Date.now();
const missing = () => views.filter((s) => {
  const area = s.previousElementSibling;
  return !(area && area.classList.contains('widget-subarea') && area.querySelector('.jupyter-widgets'));
}).map((s) => s.textContent.trim().slice(0, 120));
(function poll() {
  const left = missing();
  if (!left.length || Date.now() - started > timeoutMs) { done(left); } else { setTimeout(poll, 200); }
})();
"""

# Waits for every image to load or fail, then lists those that failed (naturalWidth 0).
BROKEN_IMAGES_JS = """
const done = arguments[arguments.length - 1];
const imgs = Array.from(document.images);
Promise.all(imgs.map((img) => img.complete ? null : new Promise((resolve) => {
  img.addEventListener('load', resolve, {once: true}); img.addEventListener('error', resolve, {once: true});
}))).then(() => done(imgs.filter((img) => img.naturalWidth === 0)
  .map((img) => img.currentSrc || img.src || img.outerHTML.slice(0, 120))));
"""

# Math that MathJax left alone or could not parse: every .math element must hold an mjx-container, no
# mjx-merror may appear, and no TeX delimiter may be left in the visible text outside code.
MATH_PROBLEMS_JS = r"""
const problems = [];
const unrendered = Array.from(document.querySelectorAll('.math')).filter((el) => !el.querySelector('mjx-container'));
for (const el of unrendered.slice(0, 5)) problems.push('math not rendered: ' + el.textContent.trim().slice(0, 80));
if (unrendered.length > 5) problems.push(`... ${unrendered.length} math elements not rendered in all`);
for (const el of Array.from(document.querySelectorAll('mjx-merror')).slice(0, 5))
  problems.push('MathJax error: ' + (el.getAttribute('data-mjx-error') || el.textContent).slice(0, 120));
// TeX's `noundefined` package shows an unknown macro as red text (mathcolor red) instead of an error
for (const el of Array.from(document.querySelectorAll('mjx-mtext[style*="color: red"]')).slice(0, 5)) {
  const mml = el.closest('mjx-container').querySelector('mjx-assistive-mml mtext[mathcolor="red"]');
  problems.push('MathJax: undefined macro ' + (mml ? mml.textContent : '(name not available)').slice(0, 80));
}
const skip = 'pre, code, script, style, textarea, mjx-container, mjx-assistive-mml, .highlight';
const raw = /\\\(|\\\)|\\\[|\\\]|\$\$/;
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
for (let node = walker.nextNode(); node && problems.length < 12; node = walker.nextNode()) {
  const parent = node.parentElement;
  if (parent && !parent.closest(skip) && raw.test(node.textContent))
    problems.push('raw TeX left in the text: ' + node.textContent.trim().slice(0, 100));
}
return problems;
"""


def _network_problems(entries: list[dict[str, Any]], base_url: str) -> list[str]:
    """From Chromium's performance log: requests that leave the local server, and local ones that failed."""
    problems, urls = [], {}
    for entry in entries:
        message = json.loads(entry["message"])["message"]
        method, params = message.get("method", ""), message.get("params", {})
        if method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            urls[params["requestId"]] = url
            if urlsplit(url).scheme in {"http", "https", "ws", "wss"} and not url.startswith(base_url):
                problems.append(f"request outside the local site (it must read offline, no CDN): {url}")
        elif method == "Network.webSocketCreated":
            problems.append(f"web socket opened: {params.get('url')}")
        elif method == "Network.responseReceived":
            response = params["response"]
            if response["url"].startswith(base_url) and response.get("status", 200) >= 400:
                problems.append(f"HTTP {response['status']} for {response['url']}")
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            problems.append(
                f"request failed ({params.get('errorText')}): "
                f"{urls.get(params.get('requestId'), params.get('requestId'))}"
            )
    return problems


def _link_problems(hrefs: list[str], base_url: str, cache: _LinkCache) -> list[str]:
    """Same-site links whose target does not answer 200, or whose #fragment is no anchor there."""
    problems = []
    for href in sorted(set(hrefs)):
        if not href.startswith(base_url):
            continue  # another site (a DOI, a repository): not fetched, we are offline
        page, fragment = urldefrag(href)
        target = cache.get(page)
        if target.status != 200:
            problems.append(f"broken link (HTTP {target.status}): {href}")
        elif fragment and target.anchors is not None and unquote(fragment) not in target.anchors:
            problems.append(f"broken anchor (no id {unquote(fragment)!r} on {page}): {href}")
    return problems


def _screenshot(driver: Any, path: Path) -> None:
    """A full-page screenshot: the viewport made as tall as the page (whose height may change once resized)."""
    height = 0
    for _ in range(3):
        new_height, chrome = driver.execute_script(
            "return [Math.max(document.documentElement.scrollHeight, document.body.scrollHeight),"
            " window.outerHeight - window.innerHeight]"
        )
        if new_height == height:
            break
        height = new_height
        # the window's height includes the browser's own chrome, which the viewport does not
        driver.set_window_size(WINDOW_WIDTH, min(height, MAX_SCREENSHOT_HEIGHT) + chrome)
    assert driver.save_screenshot(str(path)), f"could not save the screenshot {path}"


def _wait_until_settled(driver: Any, timeout_s: float = 10.0) -> None:
    """Wait until the page is loaded and stays put (the root index.html redirects with a meta refresh)."""
    deadline, last = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        state = (driver.current_url, driver.execute_script("return document.readyState"))
        if state == last and state[1] == "complete":
            return
        last = state
        time.sleep(0.25)


def check_page(
    driver: Any,
    base_url: str,
    page: str,
    *,
    link_cache: _LinkCache,
    screenshot: Path | None,
    download: str | None,
    render_timeout_s: float = RENDER_TIMEOUT_S,
) -> list[str]:
    """Open `page` (relative to `base_url`) and list everything wrong with it; empty when it is sound.

    `download` is the suffix the page's download button must link to ("" for any source file), or None
    when the page needs none.
    """
    driver.set_window_size(WINDOW_WIDTH, 900)
    driver.get("about:blank")
    driver.get_log("browser")  # drop what earlier pages left behind
    driver.get_log("performance")

    driver.get(base_url + page)
    _wait_until_settled(driver)
    timeout_ms = int(render_timeout_s * 1000)
    mathjax = driver.execute_async_script(WAIT_FOR_MATHJAX_JS, timeout_ms)
    unrendered_widgets = driver.execute_async_script(WAIT_FOR_WIDGETS_JS, timeout_ms)
    if screenshot is not None:
        _screenshot(driver, screenshot)  # the window is now page-tall: every image is in view
    broken_images = driver.execute_async_script(BROKEN_IMAGES_JS)
    math = driver.execute_script(MATH_PROBLEMS_JS)
    hrefs = driver.execute_script("return Array.from(document.querySelectorAll('a[href]')).map((a) => a.href)")

    problems = [f"console {e['level']}: {e['message']}" for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    problems += _network_problems(driver.get_log("performance"), base_url)
    problems += [f"image did not load: {src}" for src in broken_images]
    if mathjax not in {"typeset", "no math"}:
        problems.append(mathjax)
    problems += math
    problems += [f"widget view not rendered: {view}" for view in unrendered_widgets]
    problems += _link_problems(hrefs, base_url, link_cache)
    if download is not None:
        sources = [h for h in hrefs if "/_sources/" in urlsplit(h).path]
        if not any(urlsplit(h).path.endswith(download) for h in sources):
            problems.append(f"no download button for the page's source {download}".rstrip())
    return problems


# ---- the tests -------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", _page_params())
def test_page_renders_offline_without_errors(
    page: str, site_dir: Path, base_url: str, driver: Any, screenshot_dir: Path, link_cache: _LinkCache
) -> None:
    assert (site_dir / page).is_file(), f"{page} is not a page of {site_dir}"
    download = None
    if page not in GENERATED_PAGES:
        download = ".ipynb" if (site_dir / "_sources" / page).with_suffix(".ipynb").is_file() else ""
    problems = check_page(
        driver,
        base_url,
        page,
        link_cache=link_cache,
        download=download,
        screenshot=screenshot_dir / (page.removesuffix(".html").replace("/", "__") + ".png"),
    )
    assert not problems, f"{page}: {len(problems)} problem(s):\n  " + "\n  ".join(problems)


def test_exercise_solutions_are_hidden_until_opened(site_dir: Path, base_url: str, driver: Any) -> None:
    """The chapters' exercise solutions (sphinx-exercise, ``:class: dropdown``) are collapsed when a page opens
    and open when the reader clicks their toggle (sphinx-togglebutton). tests/test_exercises.py checks that
    every chapter has them."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    pages = [
        page
        for page in _pages(site_dir)
        if page.startswith("chapters/") and 'class="solution' in (site_dir / page).read_text(encoding="utf8")
    ]
    assert pages, f"no chapter page of {site_dir} has an exercise solution: the exercises are missing"
    for page in pages:
        driver.get(base_url + page)
        _wait_until_settled(driver)
        solutions = driver.find_elements(By.CSS_SELECTOR, "div.solution")
        assert solutions, f"{page}: the solutions were not rendered"
        for number, solution in enumerate(solutions, 1):
            body = solution.find_element(By.CSS_SELECTOR, ":scope > section")
            assert not body.is_displayed(), f"{page}: solution {number} is shown before the reader opens it"
            driver.execute_script("arguments[0].click()", solution.find_element(By.CSS_SELECTOR, ".toggle-button"))
            try:  # the dropdown opens with a short animation
                WebDriverWait(driver, 5).until(lambda _, body=body: body.is_displayed())
            except TimeoutException:
                pytest.fail(f"{page}: solution {number} does not open when its toggle is clicked")


def _page_html(head: str, body: str) -> str:
    """A test page; its empty icon keeps the browser from asking for a /favicon.ico the test folder lacks."""
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><link rel='icon' href='data:,'>{head}</head>"
        f"<body>{body}</body></html>"
    )


def test_checker_flags_a_page_broken_on_purpose(site_dir: Path, driver: Any, tmp_path: Path) -> None:
    """Each kind of fault, planted in one page, must be reported: the checker cannot pass a broken site."""
    (tmp_path / "_static").symlink_to(site_dir / "_static")
    mathjax = "_static/mathjax/tex-mml-chtml.js"
    assert (site_dir / mathjax).is_file(), f"the site has no offline MathJax at {mathjax}"
    (tmp_path / "target.html").write_text(_page_html("", "<p id='here'>target</p>"))
    head = (
        "<script>window.MathJax = {options: {processHtmlClass: 'math'}};</script>"
        f"<script defer src='{mathjax}'></script>"
        # port 9 (discard) on loopback: refused at once, and no traffic leaves the machine
        "<script src='http://127.0.0.1:9/cdn/library.js'></script>"
    )
    body = (
        "<div class='tex2jax_ignore mathjax_ignore'>"
        r"<span class='math'>\(\notamacro x\)</span> <span class='math'>\(x^\)</span>"
        r"<p>left raw: \(x^2\)</p>"
        "<img src='missing.png' alt='missing'>"
        "<a href='target.html#here'>fine</a> <a href='target.html#gone'>bad anchor</a>"
        "<a href='nowhere.html'>bad link</a>"
        "<script>console.error('planted error')</script>"
        '<script type=\'application/vnd.jupyter.widget-view+json\'>{"model_id": "nothing"}</script>'
        "</div>"
    )
    (tmp_path / "broken.html").write_text(_page_html(head, body))

    with _serve(tmp_path) as url:
        problems = check_page(
            driver, url, "broken.html", link_cache=_LinkCache(), screenshot=None, download="", render_timeout_s=3.0
        )
    report = "\n".join(problems)
    expected = [
        "planted error",
        "request outside the local site",
        "127.0.0.1:9/cdn/library.js",
        "image did not load",
        "missing.png",
        "MathJax error: Missing superscript or subscript argument",
        r"MathJax: undefined macro \notamacro",
        r"raw TeX left in the text: left raw: \(x^2\)",
        "widget view not rendered",
        "broken anchor (no id 'gone'",
        "broken link (HTTP 404)",
        "no download button",
        "HTTP 404 for",
    ]
    assert not [e for e in expected if e not in report], report
    assert "'here'" not in report, "a valid anchor was reported as broken"


def test_packed_widget_scripts_render_a_widget_offline(site_dir: Path, driver: Any, tmp_path: Path) -> None:
    """The site's own RequireJS and ipywidgets HTML manager render an embedded slider with no CDN."""
    ipywidgets = pytest.importorskip("ipywidgets")
    from ipywidgets.embed import embed_data

    (tmp_path / "_static").symlink_to(site_dir / "_static")
    scripts = ["_static/widgets/require.js", "_static/widgets/embed-amd.js"]
    assert all((site_dir / s).is_file() for s in scripts), f"the site lacks its offline widget scripts {scripts}"
    slider = ipywidgets.IntSlider(value=3, min=0, max=9, description="rank")
    data = embed_data(views=[slider])
    state = json.dumps(data["manager_state"])
    view = json.dumps(data["view_specs"][0])
    head = "".join(f"<script src='{s}'></script>" for s in scripts)
    body = (
        f"<script type='application/vnd.jupyter.widget-state+json'>{state}</script>"
        f"<div><script type='application/vnd.jupyter.widget-view+json'>{view}</script></div>"
    )
    (tmp_path / "widget.html").write_text(_page_html(head, body))

    with _serve(tmp_path) as url:
        problems = check_page(driver, url, "widget.html", link_cache=_LinkCache(), screenshot=None, download=None)
        label = driver.execute_script(
            "const el = document.querySelector('.widget-subarea .widget-label'); return el && el.textContent"
        )
    assert not problems, "\n".join(problems)
    assert label == "rank", f"the slider rendered without its description (label {label!r})"


def test_jupyterlab_page_loads_without_console_errors(driver: Any, tmp_path: Path) -> None:
    """`make lab`'s JupyterLab, serving the chapters, opens once in the same headless Chromium: its launcher offers
    the project's kernel and the console has no error. The server (tests/test_lab.py) is stopped, also on failure."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait
    from test_lab import KERNEL_DISPLAY_NAME, lab_layout, lab_server, require_jupyterlab

    require_jupyterlab()
    with lab_server(lab_layout(tmp_path / "repo"), env={"ADVLOGITS_HOME": str(tmp_path / "store")}) as server:
        driver.set_window_size(WINDOW_WIDTH, 900)
        driver.get("about:blank")
        driver.get_log("browser")  # drop what earlier pages left behind
        driver.get_log("performance")
        driver.get(f"{server.url}lab?token={server.token}")
        try:  # the splash screen goes once the shell is laid out; the launcher lists the kernelspecs
            WebDriverWait(driver, PAGE_TIMEOUT_S).until(
                lambda d: d.execute_script(
                    "return !document.querySelector('#jupyterlab-splash') && "
                    "document.querySelectorAll('.jp-LauncherCard').length > 0"
                )
            )
        except TimeoutException:
            pytest.fail(f"JupyterLab's launcher did not appear within {PAGE_TIMEOUT_S:.0f} s:\n{server.log_tail()}")
        cards = driver.execute_script(
            "return Array.from(document.querySelectorAll('.jp-LauncherCard')).map((c) => c.textContent.trim())"
        )
        time.sleep(2.0)  # what the page does right after it settles (settings, kernelspecs, sessions) is logged too
        errors = [f"console {e['level']}: {e['message']}" for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        driver.get("about:blank")  # before the server goes, so its disappearing is no error of the page
    assert server.process.returncode is not None, "the JupyterLab server is still running"
    assert KERNEL_DISPLAY_NAME in cards, f"the launcher does not offer the project's kernel: {cards}"
    assert not errors, "JupyterLab's page logged errors:\n  " + "\n  ".join(errors)
