"""The documentation site: it builds with ``mkdocs build --strict`` (every link and anchor resolved, every page
in the nav), and its home page and a tutorial render in headless Chromium with no broken link or missing image."""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import re
import subprocess
import sys
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest

from tests.browser import SKIP_REASON, chromium, screenshot
from tests.docs.blocks import ROOT

pytest.importorskip("mkdocs", reason="the docs extra is not installed (pip install -e '.[docs]'; make test does)")
README_LINES = 250
RENDERED = ["index.html", "tutorials/rl-sb3/index.html"]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


def test_the_site_builds_strict_with_the_api_reference(site: Path) -> None:
    assert (site / "index.html").is_file() and (site / "search" / "search_index.json").is_file()
    api = (site / "reference" / "index.html").read_text(encoding="utf-8")
    assert "recoworld.scenario.Scenario" in api  # rendered from the docstrings, not written by hand


def test_the_readme_stays_short() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_LINES, f"README.md has {lines} lines; move the detail into docs/ (at most {README_LINES})"


def test_the_readme_links_into_the_docs_resolve(site: Path) -> None:
    """The README is read on its own (not a page of the site): its links to docs/ pages and their anchors exist."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        path, _, anchor = target.partition("#")
        if re.match(r"[a-z]+:", path):
            continue
        if not (ROOT / path).exists():
            broken.append(target)
        elif anchor and path.startswith("docs/") and path.endswith(".md"):
            page = site / path.removeprefix("docs/").removesuffix(".md").removesuffix("index")
            html = page / "index.html" if page.is_dir() else page.with_suffix(".html")
            if anchor not in _parse(html.resolve()).ids:
                broken.append(target)
    assert not broken, broken


# ------------------------------------------------------------------ links and images, statically
class _Refs(HTMLParser):
    """The links, images, stylesheets and scripts of a page, and the ids it defines."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.assets: list[str] = []
        self.images: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        elif tag == "img" and a.get("src"):
            self.images.append(a["src"])
        elif tag == "link" and a.get("href") and a.get("rel") in ("stylesheet", "icon"):
            self.assets.append(a["href"])
        elif tag == "script" and a.get("src"):
            self.assets.append(a["src"])


@functools.lru_cache(maxsize=None)
def _parse(path: Path) -> _Refs:
    refs = _Refs()
    refs.feed(path.read_text(encoding="utf-8"))
    return refs


def _target(site: Path, page: Path, ref: str) -> tuple[Path, str] | None:
    """The file a relative reference points to, and its fragment; None for another site or a scheme."""
    parts = urlsplit(ref)
    if parts.scheme or parts.netloc or ref.startswith("//"):
        return None
    if not parts.path:
        return page, parts.fragment
    base = site if parts.path.startswith("/") else page.parent  # 404.html links from the site's root
    path = (base / unquote(parts.path).lstrip("/")).resolve()
    if path.is_dir() or parts.path.endswith("/"):
        path = path / "index.html"
    return path, parts.fragment


def broken_references(site: Path, page: Path) -> list[str]:
    """Links, images, stylesheets and scripts of ``page`` that point to no file of the site, or to a missing anchor."""
    refs, broken = _parse(page), []
    for ref in refs.links + refs.images + refs.assets:
        target = _target(site, page, ref)
        if target is None:
            continue
        path, fragment = target
        if not path.is_file():
            broken.append(f"{ref} (no file)")
        elif fragment and path.suffix == ".html" and fragment not in _parse(path).ids:
            broken.append(f"{ref} (no anchor '{fragment}')")
    return broken


def test_no_page_of_the_site_has_a_broken_link_or_missing_image(site: Path) -> None:
    broken = {str(p.relative_to(site)): b for p in site.rglob("*.html") if (b := broken_references(site, p))}
    assert not broken, broken


def test_the_link_check_finds_a_broken_link_and_a_missing_image(tmp_path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "index.html").write_text('<h2 id="here">x</h2>')
    page = tmp_path / "index.html"
    page.write_text('<a href="a/#here">ok</a><a href="a/#gone">x</a><a href="b/">x</a><img src="p.png">'
                    '<a href="https://example.org/">external</a>')
    assert broken_references(tmp_path, page) == ["a/#gone (no anchor 'gone')", "b/ (no file)", "p.png (no file)"]


# ------------------------------------------------------------------ a real browser
class _LoggedHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the site and records each request's path and status (what the browser asked for and got)."""

    requests: list[tuple[str, int]]

    def log_request(self, code="-", size="-"):
        self.requests.append((urlsplit(self.path).path, int(code) if str(code).isdigit() else 0))

    def log_message(self, format, *args):  # quiet
        pass


@contextlib.contextmanager
def serving(directory: Path):
    """``directory`` on an HTTP server bound to 127.0.0.1 (an OS-chosen port); yields its URL and the request log."""
    requests: list[tuple[str, int]] = []
    handler = type("Handler", (_LoggedHandler,), {"requests": requests})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", requests
    finally:
        server.shutdown()
        server.server_close()


def _distinct_colours(png: Path) -> int:
    from PIL import Image

    with Image.open(png) as image:
        return len(image.convert("RGB").resize((320, 400)).getcolors(maxcolors=1_000_000) or [])


@pytest.mark.timeout(600)
@pytest.mark.parametrize("page", RENDERED)
def test_the_page_renders_in_headless_chromium_with_every_image_and_link(site: Path, page: str, tmp_path) -> None:
    browser = chromium()
    if browser is None:
        pytest.skip(SKIP_REASON)
    shot = tmp_path / "page.png"
    with serving(site) as (base, requests):
        errors = screenshot(browser, urljoin(base, page.removesuffix("index.html")), shot, tmp_path / "profile")
    assert not errors, errors
    failed = [(path, code) for path, code in requests if code >= 400]
    assert not failed, f"the browser asked for these and got an error: {failed}"
    fetched = {unquote(path) for path, code in requests if code == 200}
    html = site / page
    images = [t[0] for ref in _parse(html).images if (t := _target(site, html, ref))]
    assert images, f"{page} shows no image to check"
    missing = [str(img.relative_to(site)) for img in images if "/" + str(img.relative_to(site)) not in fetched]
    assert not missing, f"images the browser did not load: {missing}"
    assert not broken_references(site, html)
    raw = shot.read_bytes()
    assert raw.startswith(b"\x89PNG\r\n\x1a\n") and _distinct_colours(shot) > 50  # text and figures, not a blank page


def test_the_browser_check_sees_a_missing_image(tmp_path) -> None:
    browser = chromium()
    if browser is None:
        pytest.skip(SKIP_REASON)
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "index.html").write_text('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>x</title>'
                                                 '</head><body><p>x</p><img src="gone.png" alt="x"></body></html>')
    with serving(tmp_path / "www") as (base, requests):
        screenshot(browser, base, tmp_path / "shot.png", tmp_path / "profile")
    assert ("/gone.png", 404) in requests
