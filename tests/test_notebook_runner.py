"""The papermill runner: a failing notebook is reported with its cell; a good one writes output."""

import nbformat
import pytest

from mcollapse import notebooks


def write_notebook(path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell('profile = "cpu"')]
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.cells += [nbformat.v4.new_code_cell(s) for s in sources]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)
    return path


def test_failing_notebook_names_the_failing_cell_and_error(tmp_path):
    nb = write_notebook(
        tmp_path / "98_broken.ipynb", "x = 1", "raise RuntimeError('bad generation')"
    )
    result = notebooks.execute(nb, "ci", tmp_path / "out")
    assert not result.ok
    assert "RuntimeError: bad generation" in result.error
    assert (
        "index 3" in result.error
    )  # parameters, injected parameters, x = 1, then the failing cell


def test_profile_is_injected_and_executed_copy_written(tmp_path):
    nb = write_notebook(tmp_path / "97_ok.ipynb", "assert profile == 'ci', profile")
    result = notebooks.execute(nb, "ci", tmp_path / "out")
    assert result.ok, result.error
    assert result.output.exists()
    executed = nbformat.read(result.output, as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)


def test_prepare_injects_without_executing(tmp_path):
    nb = write_notebook(tmp_path / "96_prep.ipynb", "1 / 0")
    out = notebooks.prepare(nb, "ci", tmp_path / "prep")
    prepared = nbformat.read(out, as_version=4)
    assert any('profile = "ci"' in c.source for c in prepared.cells)
    assert not notebooks.has_outputs(out)


def test_find_selects_by_number_and_rejects_unknown(tmp_path):
    for name in ("01_a.ipynb", "02_b.ipynb", "notes.ipynb"):
        (tmp_path / name).write_text("{}")
    assert [p.name for p in notebooks.find(None, tmp_path)] == ["01_a.ipynb", "02_b.ipynb"]
    assert [p.name for p in notebooks.find(["2"], tmp_path)] == ["02_b.ipynb"]
    with pytest.raises(ValueError, match="notebooks must name existing notebooks"):
        notebooks.find(["03"], tmp_path)
