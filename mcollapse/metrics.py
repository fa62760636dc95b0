"""Metrics of a sample set against the truth: FID, KID, precision / recall, W2, log det, class shares.

Image metrics go through torch-fidelity with the project's own feature network
(:mod:`mcollapse.features`); the reference features are cached by torch-fidelity under
``data/features/fidelity-cache``. Every result carries the sample sizes it was computed from:
FID and precision / recall are biased at small sizes, so numbers are only comparable at equal sizes.
"""

from __future__ import annotations

import hashlib
import pickle
import warnings
from dataclasses import dataclass

import numpy as np
import ot
import torch
import torch_fidelity
from torch_fidelity.metric_prc import calculate_precision_recall_full

from . import data, features, paths
from ._checks import check_choice, check_int
from .gaussian import gaussian_w2_squared

IMAGE_METRICS = ("fid", "kid", "prc")


class _Uint8Images(torch.utils.data.Dataset):
    """uint8 images (N, C, H, W) as the Dataset torch-fidelity expects."""

    def __init__(self, x: torch.Tensor):
        self.x = x

    def __len__(self):
        return len(self.x)

    def __getitem__(self, index):
        return self.x[index]


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> uint8 0..255 (values outside [-1, 1] are clipped)."""
    return ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


@dataclass(frozen=True)
class Reference:
    """Real images that samples are compared with, and the feature network that compares them."""

    x: torch.Tensor
    y: torch.Tensor
    net: features.FeatureNet
    cache_name: str
    quantised: torch.Tensor  # x as uint8, made once: what torch-fidelity reads

    def __len__(self):
        return len(self.x)


def reference(
    dataset: str = "digits", split: str = "test", n: int | None = None, net=None
) -> Reference:
    """The reference set: by default the held-out split, which no model ever trains on."""
    images = data.load_images(dataset, split)
    if n is not None:
        n = check_int("n", n, minimum=2, maximum=len(images))
        images = data.Images(images.name, split, images.x[:n], images.y[:n], images.num_classes)
    net = net or features.feature_net(dataset)
    return reference_from(images.x, images.y, net)


def reference_from(x: torch.Tensor, y: torch.Tensor, net: features.FeatureNet) -> Reference:
    """A reference set from any images; the cache key hashes the images and the network."""
    quantised = to_uint8(x)
    digest = hashlib.sha256(quantised.numpy().tobytes()).hexdigest()[:12]
    name = f"{net.settings.dataset}-{net.settings.digest()}-ref{len(x)}-{digest}"
    return Reference(x, y, net, name, quantised)


def image_metrics(
    x: torch.Tensor, ref: Reference, metrics=IMAGE_METRICS, k: int = 5, kid_subsets: int = 100
) -> dict:
    """FID, KID (mean and std over subsets) and precision / recall (k-NN, k = 5 as in MAD).

    Returns a dict with ``fid``, ``kid``, ``kid_std``, ``precision``, ``recall`` (those asked for)
    and the sizes ``n_generated`` and ``n_reference``.
    """
    metrics = tuple(metrics)
    for name in metrics:
        check_choice("metrics", name, IMAGE_METRICS)
    k = check_int("k", k, minimum=1)
    n = check_int("number of generated images", len(x), minimum=k + 1)
    if tuple(x.shape[1:]) != tuple(ref.x.shape[1:]):
        raise ValueError(
            f"x must have the reference's image shape {tuple(ref.x.shape[1:])}, got {tuple(x.shape[1:])}"
        )
    kwargs = dict(
        input1=_Uint8Images(to_uint8(x)),
        input2=_Uint8Images(ref.quantised),
        input2_cache_name=ref.cache_name,
        cache_root=str(paths.FEATURES / "fidelity-cache"),
        feature_extractor=features.register(),
        feature_extractor_weights_path=str(ref.net.path),
        fid="fid" in metrics,
        kid="kid" in metrics,
        prc="prc" in metrics,
        kid_subsets=kid_subsets,
        # subsets of half the smaller set, so that the spread over subsets means something
        kid_subset_size=max(2, min(1000, n // 2, len(ref) // 2)),
        prc_neighborhood=k,
        cuda=torch.cuda.is_available(),
        save_cpu_ram=True,  # no DataLoader worker processes: they cost more than they save here
        verbose=False,
    )
    try:
        raw = torch_fidelity.calculate_metrics(**kwargs)
    except (EOFError, RuntimeError, OSError, pickle.UnpicklingError) as error:  # a damaged cache
        _drop_cache(ref.cache_name, error)
        raw = torch_fidelity.calculate_metrics(**kwargs)
    names = {
        "frechet_inception_distance": "fid",
        "kernel_inception_distance_mean": "kid",
        "kernel_inception_distance_std": "kid_std",
        "precision": "precision",
        "recall": "recall",
    }
    out = {short: float(raw[long]) for long, short in names.items() if long in raw}
    return {**out, "n_generated": n, "n_reference": len(ref)}


def real_floor(ref: Reference, n: int, seed: int = 0, metrics=IMAGE_METRICS) -> dict:
    """The metrics of ``n`` real training images against the reference: the best a model can do.

    FID and precision / recall depend on the sample size, so a model's numbers should be read
    against the floor at the same ``n``.
    """
    train = data.load_images(ref.net.settings.dataset, "train")
    n = check_int("n", n, minimum=2, maximum=len(train))
    index = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:n]
    return image_metrics(train.x[index], ref, metrics=metrics)


def _drop_cache(cache_name: str, error: Exception) -> None:
    folder = paths.FEATURES / "fidelity-cache"
    stale = list(folder.glob(f"{cache_name}-*"))
    if not stale:
        raise error
    warnings.warn(
        f"dropping unreadable cached reference features {cache_name} ({error})", stacklevel=3
    )
    for path in stale:
        path.unlink()


def class_shares(x: torch.Tensor, net: features.FeatureNet) -> np.ndarray:
    """Share of each class in a sample set, as the feature network's classifier head reads it."""
    predicted = net.predict(x.float())
    return np.bincount(predicted.numpy(), minlength=net.num_classes) / len(x)


# --------------------------------------------------------------------------------------------
# Point clouds (2-D toys, or any flattened data)
# --------------------------------------------------------------------------------------------


def as_points(x) -> np.ndarray:
    """Items as float64 rows (N, features): tensors or arrays, any shape after the first axis."""
    x = x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)
    return x.reshape(len(x), -1).astype(np.float64)


def point_precision_recall(generated, real, k: int = 5) -> dict:
    """Precision and recall (Kynkaanniemi et al. 2019) directly on the coordinates, via torch-fidelity."""
    k = check_int("k", k, minimum=1)
    gen, ref = (torch.as_tensor(as_points(a), dtype=torch.float32) for a in (generated, real))
    for name, a in (("generated", gen), ("real", ref)):
        check_int(f"number of {name} points", len(a), minimum=k + 1)
    precision, recall = calculate_precision_recall_full(gen, ref, neighborhood=k)
    return {
        "precision": precision,
        "recall": recall,
        "n_generated": len(gen),
        "n_reference": len(ref),
    }


def empirical_w2(x, y) -> dict:
    """Exact W2 between two empirical distributions with uniform weights (POT's network simplex)."""
    a, b = as_points(x), as_points(y)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"x and y must have the same dimension, got {a.shape[1]} and {b.shape[1]}")
    cost = ot.dist(a, b, metric="sqeuclidean")
    w2_squared = ot.emd2(ot.unif(len(a)), ot.unif(len(b)), cost, numItermax=10_000_000)
    return {"w2": float(np.sqrt(max(w2_squared, 0.0))), "n_x": len(a), "n_y": len(b)}


def gaussian_w2(x, y) -> dict:
    """W2 between the Gaussian fits (mean, unbiased covariance) of two point clouds (closed form)."""
    a, b = as_points(x), as_points(y)
    moments = [(p.mean(axis=0), np.atleast_2d(np.cov(p, rowvar=False))) for p in (a, b)]
    w2_squared = float(gaussian_w2_squared(*moments[0], *moments[1]))
    return {"w2": float(np.sqrt(max(w2_squared, 0.0))), "n_x": len(a), "n_y": len(b)}


def log_det_cov(x) -> dict:
    """log det of the unbiased sample covariance: falls without bound as a distribution collapses."""
    a = as_points(x)
    check_int("number of points", len(a), minimum=a.shape[1] + 1)
    sign, value = np.linalg.slogdet(np.atleast_2d(np.cov(a, rowvar=False)))
    return {"log_det": float(value) if sign > 0 else -np.inf, "n": len(a)}
