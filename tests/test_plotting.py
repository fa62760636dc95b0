"""save_figure writes PNG + PDF + CSV atomically; tables round-trip; PDFs are reproducible."""

import csv

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from mcollapse import plotting  # noqa: E402


def small_figure(table):
    fig, ax = plt.subplots()
    x = np.arange(5)
    plotting.mean_band(ax, x, np.vstack([x, x + 2.0]), "runs", table, "a")
    plotting.line(ax, x, x + 1.0, "theory", table, "a", theory=True)
    return fig


def test_save_figure_writes_png_pdf_and_the_plotted_numbers(tmp_path):
    rows = []
    fig = small_figure(rows)
    out = plotting.save_figure(fig, "01_demo", rows, tmp_path)
    plt.close(fig)
    assert out["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out["pdf"].read_bytes()[:5] == b"%PDF-"
    with open(out["csv"]) as f:
        table = list(csv.DictReader(f))
    runs = [r for r in table if r["series"] == "runs"]
    assert [float(r["y"]) for r in runs] == [1.0, 2.0, 3.0, 4.0, 5.0]  # mean of x and x + 2
    assert all(float(r["lo"]) < float(r["y"]) < float(r["hi"]) for r in runs)
    assert [float(r["y"]) for r in table if r["series"] == "theory"] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert not list(tmp_path.glob(".*")), "temporary files must not be left behind"


def test_pdf_output_is_byte_identical_across_runs(tmp_path):
    outputs = []
    for sub in ("a", "b"):
        fig = small_figure(None)
        outputs.append(plotting.save_figure(fig, "f", None, tmp_path / sub)["pdf"].read_bytes())
        plt.close(fig)
    assert outputs[0] == outputs[1]


def test_a_failed_write_leaves_the_previous_figure_intact(tmp_path):
    target = tmp_path / "keep.csv"
    target.write_text("old\n")
    with pytest.raises(ValueError, match="equal lengths"):
        plotting.save_figure(plt.figure(), "keep", {"a": [1, 2], "b": [1]}, tmp_path)
    assert target.read_text() == "old\n"
    assert not list(tmp_path.glob(".*"))
