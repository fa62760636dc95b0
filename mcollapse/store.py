"""How runs are kept on disk: atomic writes, sha256 checksums and stable digests of settings.

The loop engine (``loops.py``) and the reflow rounds (``reflow.py``) both persist through these, so
a file is written, verified and named the same way everywhere.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

import torch

from ._atomic import atomic_path


def json_key(key):
    """``key`` as plain JSON data (sorted, no NaN), or a ValueError saying why it cannot be."""
    if key is not None and not isinstance(key, Mapping):
        raise ValueError(f"key must be None or a JSON-able mapping, got {key!r}")
    try:
        return json.loads(json.dumps(key, sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise ValueError(f"key must be None or a JSON-able mapping, got {key!r} ({err})") from None


def digest(obj) -> str:
    """sha256 of a JSON-able object, independent of key order."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def sha256(path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def load(path):
    """Tensors and plain containers only (``weights_only``), always onto the CPU."""
    return torch.load(path, map_location="cpu", weights_only=True)


def save(path: Path, obj) -> None:
    _write(path, lambda f: torch.save(obj, f))


def save_json(path: Path, obj) -> None:
    _write(path, lambda f: f.write((json.dumps(obj, indent=1, sort_keys=True) + "\n").encode()))


def _write(path: Path, write) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(f)
