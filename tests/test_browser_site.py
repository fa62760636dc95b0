"""The companion site in a real browser: every page loads offline, with figures and equations.

The site is built from notebooks 01 (line plots) and 04 (the TeX equations, heat maps, sample
grids) run at the ci profile by the project's runner; the other notebooks' pages are left out to
keep this test short (nbval runs all six).
"""

from __future__ import annotations

import functools
import http.server
import re
import threading
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from _browser import SCREENSHOTS, chromium, free_port, require_chromium

from mcollapse import notebooks, site

pytestmark = pytest.mark.browser

SELECTED = ["01", "04"]
# Raw TeX where MathJax should have typeset it: display or bracket delimiters, or $...$ holding a
# TeX command, sub- or superscript.
RAW_TEX = r"/\$\$|\\\(|\\\[|\$[^$\s][^$]*[\\^_][^$]*\$/"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    require_chromium()
    executed = tmp_path_factory.mktemp("executed")
    with pytest.MonkeyPatch.context() as env:
        # The Makefile exports MPLBACKEND=Agg; a kernel that inherits it shows no figures inline.
        env.delenv("MPLBACKEND", raising=False)
        for nb in notebooks.find(SELECTED):
            result = notebooks.execute(nb, "ci", executed)
            assert result.ok, f"{nb.name} failed at profile ci: {result.error}"
    return site.build("ci", source=executed, out=tmp_path_factory.mktemp("site") / "site")


@pytest.fixture(scope="module")
def served(built):
    """The site over HTTP on loopback, as a reader's browser (or a static host) would load it."""
    handler = functools.partial(_QuietHandler, directory=str(built.out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_build_writes_a_page_per_executed_notebook_and_lists_the_others(built):
    assert sorted(built.pages) == [f"{p.stem}.html" for p in notebooks.find(SELECTED)]
    assert len(built.missing) == len(notebooks.find()) - len(SELECTED)
    assert (built.out / "mathjax" / "MathJax.js").is_file()
    assert not built.without_figures
    for page in [*built.pages, "index.html"]:
        text = (built.out / page).read_text()
        assert not re.search(r"<(script|link|img)\b[^>]*\b(src|href)=[\"']?(https?:)?//", text), (
            page
        )


def test_every_page_loads_offline_with_images_equations_and_working_links(built, served):
    pages = ["index.html", *built.pages]
    seen_math = seen_images = 0
    with chromium() as context:
        outside, failures = [], []

        def route(r):
            if urlsplit(r.request.url).hostname in ("127.0.0.1", None) or r.request.url.startswith(
                "data:"
            ):
                r.continue_()
            else:  # nothing may come from the web: record it and never let it out
                outside.append(r.request.url)
                r.abort()

        context.route("**/*", route)
        for name in pages:
            page = context.new_page()
            errors = []
            page.on("console", lambda m, e=errors: m.type == "error" and e.append(m.text))
            page.on("pageerror", lambda exc, e=errors: e.append(str(exc)))
            page.on("requestfailed", lambda r, f=failures: f.append(r.url))
            page.on("response", lambda r, f=failures: r.status >= 400 and f.append(r.url))
            page.goto(served + name, wait_until="load", timeout=60_000)
            # MathJax typesets after load; queue a callback behind its work and wait for it.
            page.evaluate("() => new Promise(done => MathJax.Hub.Queue(done))")
            assert not errors, f"{name}: console errors {errors}"

            broken = page.evaluate(
                "() => [...document.images].filter(i => !i.complete || i.naturalWidth === 0)"
                ".map(i => i.src.slice(0, 80))"
            )
            assert not broken, f"{name}: images that did not load: {broken}"
            seen_images += page.locator("img").count()
            raw = page.evaluate(_RAW_TEX_JS)
            assert not raw, f"{name}: TeX left untypeset: {raw[:5]}"
            assert page.locator(".MathJax_Error, merror").count() == 0, f"{name}: MathJax errors"
            seen_math += page.locator(".MathJax, .MathJax_Display").count()

            for href in page.evaluate("() => [...document.links].map(a => a.href)"):
                _check_link(page, served, built.out, href)
            if name.startswith("04"):  # a page with equations and figures, to look at
                SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                page.locator(".MathJax").nth(10).scroll_into_view_if_needed()
                page.screenshot(path=str(SCREENSHOTS / "site_04_ci.png"))
            page.close()
    assert not outside, f"requests to the web: {outside}"
    assert not failures, f"failed requests: {failures}"
    assert seen_math > 20, "the equations should be typeset by MathJax"
    assert seen_images >= 10, f"the notebooks' figures should be on their pages ({seen_images})"


def _check_link(page, served: str, root: Path, href: str) -> None:
    """Links within the site must reach a file and, with a fragment, an element with that id."""
    if not href.startswith(served):
        return  # arXiv and other references: links, not requests
    parts = urlsplit(href)
    path = parts.path.lstrip("/") or "index.html"
    assert (root / path).is_file(), f"{page.url}: broken link {href}"
    if not parts.fragment:
        return
    here = urlsplit(page.url).path.lstrip("/") or "index.html"
    if path == here:
        found = page.evaluate(_HAS_ID, parts.fragment)
    else:
        other = page.context.new_page()
        other.goto(urljoin(served, path), wait_until="domcontentloaded")
        found = other.evaluate(_HAS_ID, parts.fragment)
        other.close()
    assert found, f"{page.url}: link to a missing anchor {href}"


# As browsers resolve a fragment: the id as written, else percent-decoded.
_HAS_ID = "f => !!(document.getElementById(f) || document.getElementById(decodeURIComponent(f)))"
_RAW_TEX_JS = f"""() => {{
  const skip = "SCRIPT, STYLE, PRE, CODE, .jp-InputArea, .MathJax, .MathJax_Display, .MathJax_Preview";
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const found = [];
  while (walker.nextNode()) {{
    const node = walker.currentNode;
    if (node.parentElement.closest(skip)) continue;
    if ({RAW_TEX}.test(node.textContent)) found.push(node.textContent.trim().slice(0, 80));
  }}
  return found;
}}"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass
