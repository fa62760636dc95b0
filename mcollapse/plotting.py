"""One figure style, band plots, and ``save_figure``: every figure as PNG + PDF + CSV of its numbers."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

import matplotlib as mpl
import numpy as np
from scipy import stats

from . import paths
from ._atomic import atomic_path
from ._checks import check_int

STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.6,
}
THEORY = {"color": "black", "linestyle": "--", "linewidth": 1.2}


def use_style() -> None:
    """Apply the project's matplotlib style (call once per notebook)."""
    mpl.rcParams.update(STYLE)


def mean_band(ax, x, samples, label, table=None, panel="", **kwargs):
    """Plot the mean over runs (axis 0 of ``samples``) with a +-2 standard-error band.

    With ``table`` (a list), appends tidy rows (panel, series, x, y, lo, hi) for the figure's CSV.
    Returns (mean, half-width of the band).
    """
    samples = np.asarray(samples, dtype=float)
    mean = samples.mean(axis=0)
    half = 2 * samples.std(axis=0, ddof=1) / np.sqrt(samples.shape[0])
    (line,) = ax.plot(x, mean, label=label, **kwargs)
    ax.fill_between(x, mean - half, mean + half, color=line.get_color(), alpha=0.2, linewidth=0)
    _record(table, panel, label, x, mean, mean - half, mean + half)
    return mean, half


def quantile_band(ax, x, samples, label, table=None, panel="", q=(0.1, 0.9), **kwargs):
    """Plot the median over runs with a band between the quantiles ``q``; returns (median, lo, hi)."""
    lo, med, hi = np.quantile(np.asarray(samples, dtype=float), [q[0], 0.5, q[1]], axis=0)
    (line,) = ax.plot(x, med, label=label, **kwargs)
    ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    _record(table, panel, label, x, med, lo, hi)
    return med, lo, hi


def line(ax, x, y, label, table=None, panel="", theory=False, **kwargs):
    """A plain line (``theory=True``: the dashed black closed-form style), recorded in ``table``."""
    style = {**THEORY, **kwargs} if theory else kwargs
    ax.plot(x, y, label=label, **style)
    _record(table, panel, label, x, y)


def band_and_theory(ax, x, samples, theory, label, table=None, panel="", **kwargs):
    """A simulation (mean over runs, +-2 s.e.) next to its closed form (dashed): the pattern of
    every "theory against Monte Carlo" panel. Returns (mean, half-width)."""
    mean, half = mean_band(ax, x, samples, f"{label}: simulation", table, panel, **kwargs)
    line(ax, x, theory, f"{label}: closed form", table, panel, theory=True)
    return mean, half


def select(records, metric: str, **where) -> tuple[np.ndarray, np.ndarray, list]:
    """One metric of the engine's tidy records as arrays: (generations, values[seed, generation],
    seeds), for the rows whose columns equal ``where`` (e.g. ``run="fresh"``). Every seed must
    have every generation; a missing one raises ValueError naming it."""
    rows = [
        r for r in records if r["metric"] == metric and all(r[k] == v for k, v in where.items())
    ]
    if not rows:
        known = sorted({r["metric"] for r in records})
        raise ValueError(f"no records for metric={metric!r} and {where}; metrics: {known}")
    gens = sorted({r["generation"] for r in rows})
    seeds = sorted({r["seed"] for r in rows})
    cell = {(r["seed"], r["generation"]): r["value"] for r in rows}
    missing = [(s, g) for s in seeds for g in gens if (s, g) not in cell]
    if missing:
        raise ValueError(f"records lack (seed, generation) {missing[:3]} for {metric!r} {where}")
    values = np.array([[cell[s, g] for g in gens] for s in seeds], dtype=float)
    return np.array(gens), values, seeds


def seed_band(ax, x, values, label, table=None, panel="", **kwargs):
    """Mean over seeds (axis 0 of ``values``) with a 95% t-interval, every seed drawn thin; one seed
    is drawn as a plain line. Returns (mean, half-width; 0 for one seed)."""
    values = np.atleast_2d(np.asarray(values, dtype=float))
    n = len(values)
    mean = values.mean(axis=0)
    half = np.zeros_like(mean)
    if n > 1:
        half = stats.t.ppf(0.975, n - 1) * values.std(axis=0, ddof=1) / np.sqrt(n)
    style = {"marker": "o", "markersize": 3, **kwargs}
    (drawn,) = ax.plot(x, mean, label=label if n == 1 else f"{label} (mean of {n} seeds, 95% CI)",
                       **style)  # fmt: skip
    if n > 1:
        color = drawn.get_color()
        ax.fill_between(x, mean - half, mean + half, color=color, alpha=0.2, linewidth=0)
        for v in values:
            ax.plot(x, v, color=color, linewidth=0.5, alpha=0.4)
    _record(table, panel, label, x, mean, mean - half if n > 1 else None,
            mean + half if n > 1 else None)  # fmt: skip
    return mean, half


def _record(table, panel, series, x, y, lo=None, hi=None):
    if table is None:
        return
    x, y = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    lo = np.full_like(y, np.nan) if lo is None else np.asarray(lo, dtype=float)
    hi = np.full_like(y, np.nan) if hi is None else np.asarray(hi, dtype=float)
    for row in zip(x.ravel(), y.ravel(), lo.ravel(), hi.ravel(), strict=True):
        table.append(
            dict(zip(("panel", "series", "x", "y", "lo", "hi"), (panel, series, *row), strict=True))
        )


def image_grid(x, nrow: int | None = None, upscale: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile images in [-1, 1] (N, C, H, W) into one array for ``imshow``, values in [0, 1].

    Small images are enlarged by pixel repetition (nearest neighbour), never smoothed: an 8x8
    digit should look like 64 pixels, not a blur. ``upscale`` defaults to a factor that makes
    each tile at least 32 pixels wide. Returns (rows, cols) for one channel, else (rows, cols, 3).
    """
    x = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=float)
    if x.ndim != 4 or x.shape[1] not in (1, 3) or len(x) == 0:
        raise ValueError(f"x must be images of shape (N, 1 or 3, H, W) with N >= 1, got {x.shape}")
    n, channels, height, width = x.shape
    nrow = int(np.ceil(np.sqrt(n))) if nrow is None else check_int("nrow", nrow, minimum=1)
    upscale = (
        max(1, -(-32 // width)) if upscale is None else check_int("upscale", upscale, minimum=1)
    )
    tiles = np.clip((x + 1) / 2, 0, 1).repeat(upscale, axis=2).repeat(upscale, axis=3)
    rows = -(-n // nrow)
    size_h, size_w = height * upscale + pad, width * upscale + pad
    grid = np.ones((channels, rows * size_h + pad, nrow * size_w + pad))
    for i, tile in enumerate(tiles):
        r, c = divmod(i, nrow)
        grid[:, pad + r * size_h : (r + 1) * size_h, pad + c * size_w : (c + 1) * size_w] = tile
    return grid[0] if channels == 1 else grid.transpose(1, 2, 0)


def show_grid(ax, x, title: str = "", nrow: int | None = None, upscale: int | None = None) -> None:
    """Draw a sample grid on ``ax`` (grey scale for one channel), without axes."""
    grid = image_grid(x, nrow=nrow, upscale=upscale)
    ax.imshow(
        grid, cmap="gray" if grid.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest"
    )
    ax.set_title(title)
    ax.set_axis_off()


MARKERS = ("o", "s", "D", "^", "v", "P", "X", "*")


def metric_by_generation(ax, records, metric: str, series: str, table=None, panel=None,
                         colors=None, **kwargs):  # fmt: skip
    """Plot ``metric`` against generation, one seed band per value of the ``series`` column.

    ``records`` are the engine's tidy rows (run, seed, generation, metric, value, ...); series are
    drawn in order of first appearance and recorded in ``table`` under ``panel`` (default: metric).
    ``colors`` ({series value: colour}) keeps one colour per series across figures.
    """
    rows = [r for r in records if r["metric"] == metric]
    if not rows:
        known = sorted({r["metric"] for r in records})
        raise ValueError(f"metric must be one of {known}, got {metric!r}")
    for i, name in enumerate(dict.fromkeys(r[series] for r in rows)):
        marker = MARKERS[i % len(MARKERS)]
        x, values, _ = select(rows, metric, **{series: name})
        label = name if series == "run" else f"{series} = {name}"
        style = {"marker": marker, **({"color": colors[name]} if colors else {}), **kwargs}
        seed_band(ax, x, values, label, table, panel or metric, **style)
    ax.set_xlabel("generation")
    ax.set_ylabel(metric)
    ax.xaxis.get_major_locator().set_params(integer=True)


def ratio_map(ax, x, y, ratio, xlabel: str, ylabel: str, table=None, panel="", log_x=True,
              log_y=True, limits=(0.1, 10.0)):  # fmt: skip
    """A heat map of a ratio (e.g. n_e / n_r) on a diverging log colour scale centred on 1, with
    the ratio = 1 contour drawn: where it sits is the boundary the map is about. Returns the image.

    ``ratio`` has shape (len(y), len(x)); values beyond ``limits`` take the end colours.
    """
    from matplotlib.colors import LogNorm

    x, y, ratio = np.asarray(x, float), np.asarray(y, float), np.asarray(ratio, float)
    if ratio.shape != (len(y), len(x)):
        raise ValueError(
            f"ratio must have shape (len(y), len(x)) = {(len(y), len(x))}, got {ratio.shape}"
        )
    norm = LogNorm(*limits, clip=True)
    image = ax.pcolormesh(x, y, ratio, shading="nearest", cmap="RdBu", norm=norm)
    if (ratio > 1).any() and (ratio < 1).any() and min(ratio.shape) > 1:
        contour = ax.contour(x, y, ratio, levels=[1.0], colors="black", linewidths=1.5)
        ax.clabel(contour, fmt={1.0: "1"}, fontsize=8)
    ax.set_xscale("log" if log_x else "linear")
    ax.set_yscale("log" if log_y else "linear")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(False)
    if table is not None:
        for i, yi in enumerate(y):
            _record(table, panel, f"{ylabel}={yi:g}", x, ratio[i])
    return image


def read_series(path, panel: str, series: str):
    """(x, y) of one series of a table that ``save_figure`` wrote (``name``.csv), or None when the
    file or the series is absent: how one notebook draws another's saved result."""
    path = Path(path)
    if not path.exists():
        return None
    with path.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["panel"] == panel and r["series"] == series]
    if not rows:
        return None
    return np.array([float(r["x"]) for r in rows]), np.array([float(r["y"]) for r in rows])


def save_figure(
    fig, name: str, table=None, directory=None, *, profile=None, seeds=None
) -> dict[str, Path]:
    """Write ``name``.png and ``name``.pdf (and ``name``.csv from ``table``) into ``directory``.

    ``table`` holds the numbers the figure plots: a mapping of equal-length columns, or the tidy
    rows that ``mean_band`` / ``quantile_band`` / ``line`` collect. Files are
    written atomically, so an interrupted run never leaves a half-written figure behind.

    So that a figure can be cited and traced, every file carries its provenance (``_provenance``):
    a PNG text chunk ``mcollapse``, the PDF's ``Subject``, and ``name``.csv.meta.json beside the
    CSV. ``profile`` and ``seeds`` default to the calling notebook's ``profile`` and ``seed``
    parameters, and the profile otherwise to what ``directory`` implies.
    """
    directory = Path(directory) if directory is not None else paths.FIGURES
    directory.mkdir(parents=True, exist_ok=True)
    caller = sys._getframe(1).f_globals
    stamp = json.dumps(_provenance(name, directory, profile, seeds, caller), sort_keys=True)
    out = {
        "png": _atomic(
            directory / f"{name}.png",
            lambda p: fig.savefig(p, format="png", metadata={"Title": name, "mcollapse": stamp}),
        ),
        "pdf": _atomic(
            directory / f"{name}.pdf",
            lambda p: fig.savefig(
                p, format="pdf", metadata={"CreationDate": None, "Title": name, "Subject": stamp}
            ),
        ),
    }
    if table is not None:
        out["csv"] = _atomic(directory / f"{name}.csv", lambda p: write_csv(p, table))
        out["csv_meta"] = _atomic(
            directory / f"{name}.csv.meta.json", lambda p: Path(p).write_text(stamp + "\n")
        )
    return out


def _provenance(name: str, directory=None, profile=None, seeds=None, caller=None) -> dict:
    """What made a figure: git commit, profile, seeds and the versions of the numeric libraries.

    Unknown values are recorded as "unknown" rather than guessed. ``caller`` is the namespace of
    the code saving the figure: a notebook's ``profile`` and ``seed`` parameters live there.
    """
    caller = caller or {}
    if profile is None:
        profile = caller.get("profile")
        if profile not in ("ci", "cpu", "gpu"):
            profile = _profile_from_directory(directory)
    if seeds is None:
        seed = caller.get("seed")
        seeds = {"seed": seed} if isinstance(seed, int) else "unknown"
    return {
        "figure": name,
        "commit": _git_commit(),
        "profile": profile,
        "seeds": seeds,
        "versions": {
            pkg: _version(pkg) for pkg in ("mcollapse", "torch", "numpy", "torch-fidelity")
        },
    }


def _profile_from_directory(directory) -> str:
    """``ci`` runs write under build/figures/ci; figures/ holds cpu (or gpu) runs, so say neither."""
    if (
        directory is not None
        and Path(directory).resolve() == (paths.BUILD / "figures" / "ci").resolve()
    ):
        return "ci"
    return "unknown"


def _git_commit() -> str:
    """HEAD of the checkout the package runs from, with ``-dirty`` if tracked files differ from it."""
    if not (paths.ROOT / ".git").exists():  # an installed copy, not a checkout
        return "unknown"
    try:
        run = dict(cwd=paths.ROOT, capture_output=True, text=True, timeout=30, check=True)
        commit = subprocess.run(["git", "rev-parse", "--verify", "HEAD"], **run).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], **run)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("-dirty" if dirty.stdout.strip() else "")


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def write_csv(path, table: Mapping) -> None:
    """CSV with a header row, from columns of equal length or a list of row dicts (tidy rows)."""
    if not isinstance(table, Mapping):
        keys = list(dict.fromkeys(k for row in table for k in row))
        table = {k: [row.get(k, "") for row in table] for k in keys}
    columns = {k: np.atleast_1d(np.asarray(v)) for k, v in table.items()}
    lengths = {k: len(v) for k, v in columns.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"table columns must have equal lengths, got {lengths}")
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in zip(*columns.values(), strict=True):
            writer.writerow([_cell(v) for v in row])


def _cell(value):
    if isinstance(value, float | np.floating):
        return repr(float(value))
    return value.item() if isinstance(value, np.generic) else value


def _atomic(path: Path, write) -> Path:
    with atomic_path(path) as tmp:
        write(tmp)
    return path
