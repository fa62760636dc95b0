"""The companion site: the executed notebooks as static HTML pages that work offline.

``make figures`` leaves executed notebooks in build/notebooks/<profile>/; ``build`` renders each
one with its outputs (nbconvert's lab template) next to a landing page. nbconvert's template loads
MathJax, require.js and mermaid from CDNs; here MathJax 2.7 comes from jupyter-server-mathjax (the
version the template's configuration is written for) and is copied into the site, and the other
two are left out, so no page asks the web for anything.
"""

from __future__ import annotations

import html
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from . import notebooks, paths
from ._checks import check_choice
from .profiles import PROFILES

MATHJAX = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"
# jupyter-server-mathjax ships only the STIX-Web fonts, not MathJax's own TeX fonts, so typeset
# with HTML-CSS on STIX-Web (as the classic notebook did), never with the native-MathML output that
# points \mathcal and \mathbb at the missing TeX fonts. MathJax's fallback font points at
# about:blank, which Chromium reports as an error; a local() font that is never there falls back
# the same way, silently.
_MATHJAX_FONTS = """<script type="text/x-mathjax-config">
var never = {src: "local('mcollapse-no-such-font')"};
MathJax.Hub.Config({MMLorHTML: {prefer: "HTML"},
  "HTML-CSS": {availableFonts: [], preferredFont: null, webFont: "STIX-Web", imageFont: null,
    styles: {"@font-face": never}},
  NativeMML: {styles: {"@font-face /*1*/": never, "@font-face /*2*/": never,
    "@font-face /*3*/": never, "@font-face /*4*/": never, "@font-face /*5*/": never,
    "@font-face /*6*/": never}}});
</script>"""

# nbconvert's lab page without the CDN scripts, with a way back to the landing page.
_NOTEBOOK_TEMPLATE = """{%- extends 'index.html.j2' -%}
{% block html_head_js_requirejs %}{% endblock %}
{% block jupyter_widgets %}{% endblock %}
{% block html_head_js_mermaidjs %}{% endblock %}
{% block html_head_js_mathjax %}{{ super() }}
MATHJAX_FONTS{% endblock %}
{% block extra_css %}<link rel="icon" href="data:,"><style>.mc-nav { max-width: 1100px; margin: 1em auto 0; padding: 0 1em;
 font-family: var(--jp-ui-font-family); }</style>{% endblock %}
{% block body_header %}{{ super() }}
<nav class="mc-nav"><a href="index.html">&larr; mcollapse: all notebooks</a></nav>
{% endblock %}
"""


@dataclass
class Site:
    out: Path
    pages: list[str] = field(default_factory=list)  # notebook pages written
    missing: list[str] = field(default_factory=list)  # notebooks not executed at this profile
    # executed without inline figures (a kernel with MPLBACKEND=Agg shows none)
    without_figures: list[str] = field(default_factory=list)


def build(profile: str = "cpu", source=None, out=None) -> Site:
    """Render the notebooks executed at ``profile`` (from ``source``, default
    build/notebooks/<profile>/) and a landing page into ``out`` (default build/site/), replacing
    what was there."""
    check_choice("profile", profile, PROFILES)
    source = Path(source or paths.BUILD / "notebooks" / profile)
    executed = {p.name: p for p in notebooks.find(directory=source)} if source.is_dir() else {}
    if not executed:
        raise ValueError(
            f"no executed notebooks in {source}: run 'make figures PROFILE={profile}' first"
        )
    site = Site(Path(out or paths.BUILD / "site"))
    if site.out.exists():
        shutil.rmtree(site.out)
    site.out.mkdir(parents=True)
    shutil.copytree(_mathjax_files(), site.out / "mathjax", ignore=_unusable_mathjax)

    exporter = _exporter()
    committed = {p.name: p for p in notebooks.find()}
    entries = []
    for name in sorted(committed.keys() | executed.keys()):
        nb = json.loads((executed.get(name) or committed[name]).read_text())
        entry = {"name": name, **_summary(nb)}
        if name in executed:
            body, _ = exporter.from_filename(str(executed[name]))
            entry["page"] = f"{Path(name).stem}.html"
            (site.out / entry["page"]).write_text(body, encoding="utf-8")
            entry["run"] = nb.get("metadata", {}).get("papermill", {})
            site.pages.append(entry["page"])
            if not _has_images(nb):
                site.without_figures.append(name)
        else:
            site.missing.append(name)
        entries.append(entry)
    (site.out / "index.html").write_text(_landing_page(entries, profile), encoding="utf-8")
    return site


def _has_images(nb: dict) -> bool:
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    return any(k.startswith("image/") for o in outputs for k in o.get("data", {}))


def _unusable_mathjax(directory: str, names: list[str]) -> list[str]:
    """The SVG output's fonts (3 MB) come without the SVG output itself: leave them out."""
    return ["SVG"] if Path(directory).name == "output" else []


def _mathjax_files() -> Path:
    import jupyter_server_mathjax

    return Path(jupyter_server_mathjax.__file__).parent / "static"


def _exporter():
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    template = _NOTEBOOK_TEMPLATE.replace("MATHJAX_FONTS", _MATHJAX_FONTS)
    return HTMLExporter(
        template_name="lab",
        template_file="mcollapse_notebook.html.j2",
        extra_loaders=[DictLoader({"mcollapse_notebook.html.j2": template})],
        mathjax_url=MATHJAX,
    )


def _summary(nb: dict) -> dict:
    """Title and first sentence of a notebook's opening markdown cell: its line on the index."""
    first = next((c for c in nb["cells"] if c["cell_type"] == "markdown"), None)
    text = "".join(first["source"]) if first else ""
    blocks = [b.strip() for b in text.split("\n\n") if b.strip()]
    title = blocks[0].lstrip("#").strip() if blocks and blocks[0].startswith("#") else ""
    prose = next((b for b in blocks if not re.match(r"#|[*-] |\d+\. ", b)), "")
    sentence = re.split(r"(?<=[.?!])\s+(?=[A-Z*])", " ".join(prose.split()), maxsplit=1)[0]
    return {"title": title, "line": sentence}


def _landing_page(entries: list[dict], profile: str) -> str:
    from nbconvert.filters import markdown2html

    intro = _readme_intro()
    items = []
    for e in entries:
        title = html.escape(e["title"] or e["name"])
        if "page" in e:
            run = e["run"]
            when = (
                f"run {run['end_time'][:16].replace('T', ' ')} UTC, " if run.get("end_time") else ""
            )
            took = f"{run['duration']:.0f} s" if run.get("duration") is not None else ""
            status = " &mdash; <strong>failed</strong>" if run.get("exception") else ""
            head = f'<a href="{e["page"]}">{title}</a> <span class="meta">({when}{took}){status}</span>'
        else:
            key = e["name"][:2]
            head = (
                f'{title} <span class="meta">(not run at profile {profile} yet: '
                f"<code>make figures PROFILE={profile} NOTEBOOKS={key}</code>)</span>"
            )
        items.append(f"<li>{head}<br>{markdown2html(e['line'])}</li>")
    return _INDEX.format(
        mathjax=MATHJAX,
        fonts=_MATHJAX_FONTS,
        intro=markdown2html(intro),
        profile=profile,
        items="\n".join(items),
    )


def _readme_intro() -> str:
    """The README's opening paragraph, so the site says what the README says."""
    readme = paths.ROOT / "README.md"
    if not readme.exists():
        return ""
    blocks = [b.strip() for b in readme.read_text().split("\n\n")]
    return next((b for b in blocks if b and not b.startswith(("#", "!", "|", "```"))), "")


_INDEX = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>mcollapse: model collapse, reproduced</title>
<link rel="icon" href="data:,">
<style>
body {{ font-family: system-ui, sans-serif; line-height: 1.5; max-width: 50em; margin: 2em auto;
  padding: 0 1em; color: #222; }}
li {{ margin-bottom: 1em; }} li p {{ margin: 0.2em 0; }}
.meta {{ color: #666; font-size: 0.9em; }}
pre {{ background: #f5f5f5; padding: 0.8em; overflow-x: auto; }}
</style>
<script src="{mathjax}"></script>
<script type="text/x-mathjax-config">
MathJax.Hub.Config({{tex2jax: {{inlineMath: [["$", "$"], ["\\\\(", "\\\\)"]], processEscapes: true}},
  messageStyle: "none"}});
</script>
{fonts}
</head>
<body>
<main>
<h1>mcollapse: model collapse, reproduced</h1>
{intro}
<h2>The notebooks</h2>
<p>Each page is a notebook as executed at the <code>{profile}</code> profile, with its figures and
the claims cell that checks the papers' results on the numbers it computed.</p>
<ol>
{items}
</ol>
<h2>Running them yourself</h2>
<pre>make figures              # every notebook, headless, at the cpu profile
make figures PROFILE=ci   # the quick profile: about a minute per notebook
make book                 # this site, from build/notebooks/cpu/, into build/site/
make lab                  # JupyterLab: set profile in the first cell, Run All</pre>
<p>Profiles: <code>ci</code> (about a minute per notebook), <code>cpu</code> (the papers' claims
appear and are asserted, up to 20 minutes per notebook on 2 cores), <code>gpu</code> (closer to
paper scale). To cite the project or the papers it reproduces, see <code>CITATION.cff</code>; every
figure file records the commit, profile and seeds that made it.</p>
</main>
</body>
</html>
"""
