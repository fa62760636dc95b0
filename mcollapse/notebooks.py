"""Run the numbered notebooks headless with papermill, at a profile, and report how each went."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import paths
from ._checks import check_choice
from .profiles import PROFILES


@dataclass(frozen=True)
class NotebookResult:
    name: str
    ok: bool
    seconds: float
    output: Path
    error: str = ""


def find(selection=None, directory: Path | None = None) -> list[Path]:
    """The numbered notebooks (``NN_*.ipynb``), all of them or those whose number is selected."""
    directory = Path(directory or paths.NOTEBOOKS)
    available = sorted(p for p in directory.glob("[0-9][0-9]_*.ipynb"))
    if not selection:
        return available
    by_key = {p.name[:2]: p for p in available}
    chosen = []
    for item in selection:
        key = str(item).split("_", 1)[0].zfill(2)
        if key not in by_key:
            known = ", ".join(by_key) or "none"
            raise ValueError(f"notebooks must name existing notebooks ({known}); got {item!r}")
        chosen.append(by_key[key])
    return chosen


def execute(notebook: Path, profile: str, output_dir: Path | None = None) -> NotebookResult:
    """Execute one notebook with ``profile`` injected; failures are caught and described."""
    import papermill as pm

    check_choice("profile", profile, PROFILES)
    output_dir = Path(output_dir or paths.BUILD / "notebooks" / profile)
    output_dir.mkdir(parents=True, exist_ok=True)
    output = output_dir / notebook.name
    started = time.perf_counter()
    error = ""
    try:
        pm.execute_notebook(
            str(notebook),
            str(output),
            parameters={"profile": profile},
            kernel_name="python3",
            cwd=str(notebook.parent),
            progress_bar=sys.stderr.isatty(),  # a cell-by-cell bar for people, none in logs
        )
    except pm.PapermillExecutionError as exc:
        error = f"cell {exc.exec_count} (index {exc.cell_index}): {exc.ename}: {_first_line(exc.evalue)}"
    return NotebookResult(notebook.name, not error, time.perf_counter() - started, output, error)


def prepare(notebook: Path, profile: str, output_dir: Path) -> Path:
    """A copy of ``notebook`` with ``profile`` injected but not executed (for nbval)."""
    import papermill as pm

    check_choice("profile", profile, PROFILES)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    output = output_dir / notebook.name
    pm.execute_notebook(
        str(notebook),
        str(output),
        parameters={"profile": profile},
        prepare_only=True,
        kernel_name="python3",
    )
    return output


def has_outputs(notebook: Path) -> bool:
    """True if any code cell carries outputs or an execution count (committed notebooks must not)."""
    cells = json.loads(Path(notebook).read_text())["cells"]
    return any(
        c.get("outputs") or c.get("execution_count") for c in cells if c["cell_type"] == "code"
    )


def _first_line(text: str) -> str:
    text = str(text).strip()
    return text.splitlines()[0] if text else ""
