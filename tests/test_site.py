"""The companion site without a browser: what is rendered, what is listed, nothing from the web.

The browser checks (pages load offline, figures, typeset equations, links) are in
test_browser_site.py; these run everywhere, in seconds.
"""

import base64
import re

import nbformat
import pytest

from mcollapse import cli, notebooks, paths, site

PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c63f8ffff3f0005fe02fea7d6a4a30000000049454e44ae426082"
    )
).decode()


def executed_copy(directory, with_figure=True):
    """Notebook 01 as if run: a TeX equation in markdown and, optionally, a figure output."""
    nb = nbformat.read(paths.NOTEBOOKS / "01_gaussian_theory.ipynb", as_version=4)
    nb.cells.insert(1, nbformat.v4.new_markdown_cell(r"The error grows like $\sigma^2 n / M$."))
    code = next(c for c in nb.cells if c.cell_type == "code")
    if with_figure:
        code.outputs = [nbformat.v4.new_output("display_data", data={"image/png": PNG})]
    directory.mkdir(exist_ok=True)
    nbformat.write(nb, directory / "01_gaussian_theory.ipynb")
    return directory


def test_build_renders_executed_notebooks_and_lists_the_rest(tmp_path):
    built = site.build("ci", source=executed_copy(tmp_path / "run"), out=tmp_path / "site")
    assert built.pages == ["01_gaussian_theory.html"] and not built.without_figures
    assert len(built.missing) == len(notebooks.find()) - 1
    page = (built.out / "01_gaussian_theory.html").read_text()
    index = (built.out / "index.html").read_text()
    assert "data:image/png;base64," in page and r"$\sigma^2 n / M$" in page
    assert 'href="index.html"' in page and 'href="01_gaussian_theory.html"' in index
    assert "make figures PROFILE=ci NOTEBOOKS=02" in index
    for html in (page, index):
        assert site.MATHJAX in html
        assert not re.search(r"<(script|link|img)\b[^>]*\b(src|href)=[\"']?(https?:)?//", html)
    assert (built.out / "mathjax" / "MathJax.js").is_file()
    assert (built.out / "mathjax" / "fonts" / "HTML-CSS" / "STIX-Web").is_dir()


def test_a_notebook_run_without_inline_figures_is_reported(tmp_path):
    source = executed_copy(tmp_path / "run", with_figure=False)
    built = site.build("ci", source=source, out=tmp_path / "site")
    assert built.without_figures == ["01_gaussian_theory.ipynb"]


def test_nothing_executed_says_what_to_run(tmp_path):
    with pytest.raises(ValueError, match="make figures PROFILE=gpu"):
        site.build("gpu", source=tmp_path, out=tmp_path / "site")
    assert not (tmp_path / "site").exists()


def test_cli_book_rejects_a_bad_profile_in_one_line(capsys):
    assert cli.main(["book", "--profile", "laptop"]) == 2
    assert capsys.readouterr().err.startswith("mcollapse: error: profile must be one of")
