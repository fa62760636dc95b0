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


def test_image_grid_tiles_images_with_nearest_neighbour_upscaling():
    x = -np.ones((5, 1, 2, 2))
    x[1, 0, 0, 1] = 1.0  # one white pixel in the second image
    grid = plotting.image_grid(x, nrow=3, upscale=4, pad=1)
    assert grid.shape == (2 * (8 + 1) + 1, 3 * (8 + 1) + 1)
    tile = grid[1:9, 10:18]  # second tile of the first row
    assert (
        (tile[0:4, 4:8] == 1.0).all() and (tile[4:, :] == 0.0).all() and (tile[:4, :4] == 0).all()
    )
    assert grid[0].max() == 1.0 and grid[:, 0].min() == 1.0  # padding is white
    assert (grid[10:18, 19:27] == 1.0).all()  # the empty sixth slot stays background


def test_image_grid_colour_and_default_upscale():
    grid = plotting.image_grid(np.zeros((4, 3, 8, 8)), pad=0)
    assert grid.shape == (64, 64, 3)  # 8 px tiles are enlarged 4x to 32 px
    assert np.allclose(grid, 0.5)


@pytest.mark.parametrize("shape", [(3, 8, 8), (2, 2, 8, 8), (0, 1, 8, 8)])
def test_image_grid_rejects_non_images(shape):
    with pytest.raises(ValueError, match="x must be images"):
        plotting.image_grid(np.zeros(shape))


def test_metric_by_generation_draws_one_line_per_series_in_generation_order():
    records = [
        {"seed": 0, "generation": g, "metric": m, "value": v, "bias": b}
        for b in (1.0, 0.7)
        for g in (3, 1, 2)
        for m, v in (("fid", g * b), ("recall", 1 / g))
    ]
    table = []
    fig, ax = plt.subplots()
    plotting.metric_by_generation(ax, records, "fid", "bias", table)
    assert [line.get_label() for line in ax.get_lines()] == ["bias = 1.0", "bias = 0.7"]
    assert list(ax.get_lines()[1].get_ydata()) == [0.7, 1.4, 0.7 * 3]
    assert {r["series"] for r in table} == {"bias = 1.0", "bias = 0.7"} and len(table) == 6
    assert ax.get_xlabel() == "generation" and ax.get_ylabel() == "fid"
    with pytest.raises(ValueError, match="metric must be one of"):
        plotting.metric_by_generation(ax, records, "precision", "bias")
    plt.close(fig)


def test_ratio_map_draws_the_ratio_one_contour_and_records_every_cell():
    fig, ax = plt.subplots()
    x, y = np.array([100, 1000, 10000]), np.array([0.5, 1.0])
    ratio = np.array([[1.5, 0.8, 0.2], [1.2, 1.1, 1.05]])
    table = []
    image = plotting.ratio_map(ax, x, y, ratio, "n_s", "lambda", table, "p", log_y=False)
    assert image.norm(1.0) == pytest.approx(0.5)  # 1 sits mid-scale: blue above, red below
    assert len(ax.collections) >= 2  # the mesh and the contour at ratio 1
    assert len(table) == ratio.size and {r["series"] for r in table} == {"lambda=0.5", "lambda=1"}
    assert ax.get_xscale() == "log" and ax.get_yscale() == "linear"
    with pytest.raises(ValueError, match="ratio must have shape"):
        plotting.ratio_map(ax, x, y, ratio.T, "n_s", "lambda")
    plt.close(fig)


def test_select_and_seed_band_draw_the_mean_and_95_percent_interval_over_seeds():
    records = [
        {"run": r, "seed": s, "generation": g, "metric": "fid", "value": 10 * (r == "b") + g + s}
        for r in ("a", "b") for s in (0, 1, 2) for g in (1, 2, 3)
    ]  # fmt: skip
    gens, values, seeds = plotting.select(records, "fid", run="a")
    assert gens.tolist() == [1, 2, 3] and seeds == [0, 1, 2]
    assert values.tolist() == [[1, 2, 3], [2, 3, 4], [3, 4, 5]]
    fig, ax = plt.subplots()
    table = []
    mean, half = plotting.seed_band(ax, gens, values, "a", table, "p")
    assert mean.tolist() == [2, 3, 4]
    assert half == pytest.approx(4.303 * 1 / 3**0.5, rel=1e-3)  # t(0.975, 2) * sd / sqrt(3)
    assert [row["lo"] for row in table] == pytest.approx((mean - half).tolist())
    table = []
    plotting.metric_by_generation(ax, records, "fid", "run", table)
    assert {row["series"] for row in table} == {"a", "b"}
    with pytest.raises(ValueError, match="lack"):
        plotting.select(records[:-1], "fid", run="b")
    with pytest.raises(ValueError, match="no records for metric='kid'"):
        plotting.select(records, "kid")
    plt.close(fig)


def test_written_files_get_the_usual_permissions(tmp_path):
    import os

    fig, ax = plt.subplots()
    plotting.save_figure(fig, "perm", [{"x": 1}], tmp_path)
    plt.close(fig)
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "perm.png").stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_saved_series_reads_back_and_a_missing_one_is_none(tmp_path):
    fig, ax = plt.subplots()
    table = []
    plotting.seed_band(ax, [1, 2, 3], [[1.0, 2.0, 4.0], [1.0, 2.0, 2.0]], "loop", table, "fid")
    plotting.save_figure(fig, "demo", table, tmp_path)
    plt.close(fig)
    x, y = plotting.read_series(tmp_path / "demo.csv", "fid", "loop")
    assert x.tolist() == [1, 2, 3] and y.tolist() == [1.0, 2.0, 3.0]
    assert plotting.read_series(tmp_path / "demo.csv", "recall", "loop") is None
    assert plotting.read_series(tmp_path / "absent.csv", "fid", "loop") is None
