"""Evaluators: what the engine measures on every generation's samples, with one signature.

``evaluator(x, y, model, generation) -> {metric: number}``, for the ``spec.n_draw`` samples of that
generation. An evaluator gets nothing random; one that needs noise (straightness) holds it fixed,
so every generation is scored the same way.
"""

from __future__ import annotations

import math

import torch

from . import metrics
from ._checks import check_choice, check_int
from .models.protocol import jsonable


class ImageEvaluator:
    """FID / KID / precision / recall of the first ``n`` samples against ``ref`` (a fixed ``n``
    keeps FID comparable with ``metrics.real_floor(ref, n)``), the share of the rarest class among
    all samples (the minority that vanishes first), and, with ``straightness_z``, the straightness
    of a flow's paths from that fixed noise.

    ``crop`` pixels are cut from each border first (MNIST padded to 32 px for a generator is read
    at 28 px by the feature network).
    """

    def __init__(self, ref, n: int | None = None, metrics=("fid", "prc"), crop: int = 0,
                 straightness_z: torch.Tensor | None = None, straight_steps: int = 8):  # fmt: skip
        self.ref, self.metrics = ref, tuple(metrics)
        self.n = None if n is None else check_int("n", n, minimum=2)
        self.crop = check_int("crop", crop, minimum=0)
        self.z, self.straight_steps = (
            straightness_z,
            check_int("straight_steps", straight_steps, minimum=1),
        )

    def identity(self) -> dict:
        """What this evaluator computes (the engine re-evaluates stored samples when it changes)."""
        return {"type": "ImageEvaluator", "reference": self.ref.cache_name, "n": self.n,
                "metrics": list(self.metrics), "crop": self.crop, "z": jsonable(self.z),
                "straight_steps": self.straight_steps}  # fmt: skip

    def __call__(self, x, y, model, generation) -> dict[str, float]:
        p = self.crop
        x = x[..., p : x.shape[-2] - p, p : x.shape[-1] - p] if p else x
        n = len(x) if self.n is None else self.n
        if len(x) < n:
            raise ValueError(f"evaluation needs n={n} samples, the generation made {len(x)}")
        found = metrics.image_metrics(x[:n], self.ref, metrics=self.metrics)
        keep = ("fid", "kid", "precision", "recall", "n_generated", "n_reference")
        out = {k: v for k, v in found.items() if k in keep}
        out["min_class_share"] = float(metrics.class_shares(x, self.ref.net).min())
        if self.z is not None:
            out["straightness"] = model.straightness(self.z, self.straight_steps)
        return out


class PointEvaluator:
    """For 2-D toys: exact W2 and precision / recall (k = 5) of the first ``n`` samples against a
    held-out draw ``test``; with ``straightness_z``, the straightness of a flow's paths."""

    def __init__(self, test: torch.Tensor, n: int | None = None, metrics=("w2", "prc"),
                 straightness_z: torch.Tensor | None = None, straight_steps: int = 16):  # fmt: skip
        self.test, self.metrics = test, tuple(metrics)
        for name in self.metrics:
            check_choice("metrics", name, ("w2", "prc"))
        self.n = None if n is None else check_int("n", n, minimum=2)
        self.z, self.straight_steps = (
            straightness_z,
            check_int("straight_steps", straight_steps, minimum=1),
        )

    def identity(self) -> dict:
        return {"type": "PointEvaluator", "test": jsonable(self.test), "n": self.n,
                "metrics": list(self.metrics), "z": jsonable(self.z),
                "straight_steps": self.straight_steps}  # fmt: skip

    def __call__(self, x, y, model, generation) -> dict[str, float]:
        x = x if self.n is None else x[: self.n]
        out = {"n_generated": len(x), "n_reference": len(self.test)}
        if "w2" in self.metrics:
            out["w2"] = metrics.empirical_w2(x, self.test)["w2"]
        if "prc" in self.metrics:
            pr = metrics.point_precision_recall(x, self.test)
            out.update(precision=pr["precision"], recall=pr["recall"])
        if self.z is not None:
            out["straightness"] = model.straightness(self.z, self.straight_steps)
        return out


class TextEvaluator:
    """For language models: perplexity on the real test windows, and what the samples keep of the
    language (distinct 1-, 2-, 3-grams, the share of <unk>)."""

    def __init__(self, test: tuple[torch.Tensor, torch.Tensor]):
        self.test = test

    def identity(self) -> dict:
        return {"type": "TextEvaluator", "test": [jsonable(t) for t in self.test]}

    def __call__(self, x, y, model, generation) -> dict[str, float]:
        from . import text

        return {"test_perplexity": text.perplexity(model, *self.test), **text.text_metrics(x, y)}


class RosenbrockTails:
    """Tail masses of samples of the ``rosenbrock`` toy, against exact values for the real density.

    Under the real density u = (x1, sqrt(2) (x2 - x1^2)) is standard normal, so
    |u|^2 = -2 log p + const is chi-squared with 2 degrees of freedom: the mass outside the
    highest-density region of mass q is exactly 1 - q. And x1 ~ N(0, 1), so 5% of the mass lies in
    the arms |x1| > 1.96. A model that loses its tails scores below ``REAL``.
    """

    HDR = {"outside_95": 0.95, "outside_99": 0.99}
    ARM = 1.959964
    REAL = {"outside_95": 0.05, "outside_99": 0.01, "arm": 0.05}

    def identity(self) -> dict:
        return {"type": "rosenbrock_tails", "hdr": self.HDR, "arm": self.ARM}

    def __call__(self, x, y, model, generation) -> dict[str, float]:
        u2 = x[:, 0] ** 2 + 2 * (x[:, 1] - x[:, 0] ** 2) ** 2
        out = {
            name: float((u2 > -2 * math.log(1 - q)).float().mean()) for name, q in self.HDR.items()
        }
        return {**out, "arm": float((x[:, 0].abs() > self.ARM).float().mean())}
