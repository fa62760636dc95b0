"""The model protocol every generative model implements, and the recorded constructor arguments
(``settings()``) from which run hashes and cache keys derive, so nobody builds a key by hand."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
from typing import Protocol, runtime_checkable

import numpy as np
import torch

# arguments that change where or how loudly a model runs, not what it computes
NOT_SETTINGS = ("device", "progress")


@runtime_checkable
class GenerativeModel(Protocol):
    """x: float32 (N, ...) items (points or NCHW images) or int64 tokens; y: int64 (N,) labels."""

    finetunes: bool  # whether fit continues from loaded weights (init="finetune" in a loop)

    def fit(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> None: ...

    def sample(
        self, n: int, bias: float, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...

    def settings(self) -> dict: ...


class Recorded:
    """Base class that records the constructor's arguments; ``settings()`` returns them as JSON
    (with the class name), leaving out ``NOT_SETTINGS``. Tensors enter by shape and sha256."""

    finetunes = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return
        signature = inspect.signature(init)

        @functools.wraps(init)
        def recording_init(self, *args, **kw):
            if "_arguments" not in self.__dict__:  # the outermost constructor records
                bound = signature.bind(self, *args, **kw)
                bound.apply_defaults()
                items = list(bound.arguments.items())[1:]
                self._arguments = {k: v for k, v in items if k not in NOT_SETTINGS}
            init(self, *args, **kw)

        cls.__init__ = recording_init

    def settings(self) -> dict:
        """The constructor arguments as JSON: what a run's hash and a cache key derive from."""
        return {
            "model": type(self).__name__,
            **{k: jsonable(v) for k, v in self._arguments.items()},
        }


def jsonable(value):
    """Plain JSON data for a constructor argument, or a ValueError naming what it cannot take."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.integer | np.floating):
        return value.item()
    if isinstance(value, tuple | list):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in sorted(value.items())}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, torch.device):
        return str(value)
    if torch.is_tensor(value) or isinstance(value, np.ndarray):
        array = value.detach().cpu().numpy() if torch.is_tensor(value) else value
        array = np.ascontiguousarray(array)
        return {"shape": list(array.shape), "dtype": str(array.dtype),
                "sha256": hashlib.sha256(array.tobytes()).hexdigest()}  # fmt: skip
    raise ValueError(f"a model setting must be JSON-able, a tensor or a dataclass; got {value!r}")
