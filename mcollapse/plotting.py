"""One figure style, band plots, and ``save_figure``: every figure as PNG + PDF + CSV of its numbers."""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import matplotlib as mpl
import numpy as np

from . import paths

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


def save_figure(fig, name: str, table=None, directory=None) -> dict[str, Path]:
    """Write ``name``.png and ``name``.pdf (and ``name``.csv from ``table``) into ``directory``.

    ``table`` holds the numbers the figure plots: a mapping of equal-length columns, or the tidy
    rows that ``mean_band`` / ``quantile_band`` / ``line`` collect. Files are
    written atomically, so an interrupted run never leaves a half-written figure behind.
    """
    directory = Path(directory) if directory is not None else paths.FIGURES
    directory.mkdir(parents=True, exist_ok=True)
    out = {
        "png": _atomic(directory / f"{name}.png", lambda p: fig.savefig(p, format="png")),
        "pdf": _atomic(
            directory / f"{name}.pdf",
            lambda p: fig.savefig(p, format="pdf", metadata={"CreationDate": None}),
        ),
    }
    if table is not None:
        out["csv"] = _atomic(directory / f"{name}.csv", lambda p: write_csv(p, table))
    return out


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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
