"""Where things live: the repository's folders, found from the package's own location."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
FIGURES = Path(os.environ.get("MCOLLAPSE_FIGURES_DIR", ROOT / "figures"))
BUILD = ROOT / "build"
DATA = Path(os.environ.get("MCOLLAPSE_DATA_DIR", ROOT / "data"))
DOWNLOADS = DATA / "downloads"
FEATURES = DATA / "features"
