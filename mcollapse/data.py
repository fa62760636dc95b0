"""Real data for the self-consuming loops: small image sets and 2-D toy distributions.

Two kinds of source feed a loop's "real data":

* a ``Pool`` is a finite data set (``digits``, ``mnist``, ``cifar10``); the loops draw from it
  without replacement, as the papers do when they mix a fixed real set into every generation;
* a ``Toy`` is a 2-D distribution with an exact sampler, so a loop can draw as much fresh real
  data as it wants and every figure can be checked against the true density.

Images are float32 NCHW in [-1, 1] (the range of a tanh generator) with int64 labels.
``digits`` ships with scikit-learn and works offline; ``mnist`` and ``cifar10`` come through
torchvision into ``paths.DOWNLOADS``. When they are missing and cannot be downloaded,
``load_images`` raises ``FileNotFoundError`` saying where to put the files.

Every random draw takes an explicit ``torch.Generator`` (or a seed); none touches a global RNG.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import paths
from ._checks import check_bias, check_choice, check_int
from .seeds import stream

IMAGE_SETS = ("digits", "mnist", "cifar10")
TOYS = ("gmm25", "moons", "rosenbrock")
SPLITS = ("train", "test")

NUM_CLASSES = {"digits": 10, "mnist": 10, "cifar10": 10}
DIGITS_TEST_SIZE = 500  # fixed held-out share of scikit-learn's 1,797 digits

_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_CIFAR10_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta")


# --------------------------------------------------------------------------------------------
# Image sets
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Images:
    """One split of an image set: ``x`` float32 (N, C, H, W) in [-1, 1], ``y`` int64 (N,)."""

    name: str
    split: str
    x: torch.Tensor
    y: torch.Tensor
    num_classes: int

    def __len__(self) -> int:
        return len(self.x)


def load_images(
    name: str,
    split: str = "train",
    *,
    root=None,
    download: bool = True,
    pad: int = 0,
    rare_class: int | None = None,
    rare_fraction: float = 1.0,
    seed: int = 0,
) -> Images:
    """Load ``split`` of image set ``name`` as float32 NCHW in [-1, 1].

    ``root`` (default ``paths.DOWNLOADS``) and ``download`` apply to ``mnist`` and ``cifar10``;
    ``digits`` is bundled with scikit-learn and has a fixed stratified 1,297 / 500 split.
    ``pad`` adds that many pixels of background (-1) on every side (MNIST at 32 px: ``pad=2``).

    ``rare_class`` with ``rare_fraction`` makes one class rare in the train split, so that its
    vanishing over generations becomes visible: a seeded random ``round(rare_fraction * count)``
    (at least 1) of its items are kept, all other classes stay intact, order is preserved. The
    test split cannot be thinned: it is the balanced yardstick.

    Raises ``FileNotFoundError`` (chained to torchvision's error) when ``mnist``/``cifar10`` are
    absent and cannot be downloaded; its message names the folder and files to put there.
    """
    name = check_choice("name", name, IMAGE_SETS)
    split = check_choice("split", split, SPLITS)
    pad = check_int("pad", pad, minimum=0)
    num_classes = NUM_CLASSES[name]
    rare_fraction = check_bias("rare_fraction", rare_fraction)
    if rare_class is not None:
        rare_class = check_int("rare_class", rare_class, minimum=0, maximum=num_classes - 1)
        if split != "train":
            raise ValueError(
                f"rare_class must be None for split 'test' (the held-out set stays balanced),"
                f" got {rare_class}"
            )
    elif rare_fraction != 1.0:
        raise ValueError(
            f"rare_fraction must be 1.0 when rare_class is None (it thins rare_class only),"
            f" got {rare_fraction}"
        )
    seed = check_int("seed", seed, minimum=0)

    if name == "digits":
        x, y = _load_digits(split)
    else:
        x, y = _load_torchvision(
            name, split, Path(root) if root is not None else paths.DOWNLOADS, download
        )

    if rare_class is not None:
        keep = _thin_class(
            y, rare_class, rare_fraction, stream(seed, "rare", name, str(rare_class))
        )
        x, y = x[keep], y[keep]
    if pad:
        x = torch.nn.functional.pad(x, (pad, pad, pad, pad), value=-1.0)
    return Images(name=name, split=split, x=x.contiguous(), y=y, num_classes=num_classes)


def _load_digits(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 8x8 digits with a fixed split, independent of any seed (values 0..16)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    index = np.arange(len(bunch.target))
    train, test = train_test_split(
        index, test_size=DIGITS_TEST_SIZE, stratify=bunch.target, random_state=0
    )
    chosen = np.sort(train if split == "train" else test)  # original order, not sklearn's shuffle
    images = bunch.images[chosen].astype(np.float32)
    x = torch.from_numpy(images / 16.0 * 2.0 - 1.0).unsqueeze(1)
    y = torch.from_numpy(bunch.target[chosen].astype(np.int64))
    return x, y


def _load_torchvision(
    name: str, split: str, root: Path, download: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST / CIFAR-10 through torchvision, converted from its arrays (no per-item PIL)."""
    from torchvision import datasets

    cls = datasets.MNIST if name == "mnist" else datasets.CIFAR10
    try:
        ds = cls(root=str(root), train=split == "train", download=download)
    except Exception as error:  # RuntimeError, URLError, OSError, ... all mean "not here"
        raise FileNotFoundError(_missing_message(name, root, download, error)) from error

    data = torch.as_tensor(np.asarray(ds.data))
    if name == "mnist":
        data = data.unsqueeze(1)  # (N, 28, 28) -> (N, 1, 28, 28)
    else:
        data = data.permute(0, 3, 1, 2)  # torchvision keeps CIFAR as (N, H, W, C)
    x = data.to(torch.float32).div_(127.5).sub_(1.0)  # 0 -> -1, 255 -> 1 exactly
    y = torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)
    return x, y


def _missing_message(name: str, root: Path, download: bool, error: Exception) -> str:
    """Say what is missing, why, where the files go, and that ``digits`` needs none of this."""
    if name == "mnist":
        title, folder, files = "MNIST", root / "MNIST" / "raw", _MNIST_FILES
        note = "unzipped IDX files; all four are needed, even for one split"
    else:
        title, folder, files = "CIFAR-10", root / "cifar-10-batches-py", _CIFAR10_FILES
        note = (
            "the python pickle version, unpacked from cifar-10-python.tar.gz; all seven are needed"
        )
    why = (
        f"the download failed ({type(error).__name__}: {error})"
        if download
        else f"it was not found and download=False ({type(error).__name__}: {error})"
    )
    return (
        f"{title} (name={name!r}) is not available: {why}. To use it offline, put the files"
        f" {', '.join(files)} ({note}) into {folder}/ ; or retry with network access."
        f" The 'digits' image set is bundled with scikit-learn and works offline."
    )


def _thin_class(
    y: torch.Tensor, rare_class: int, fraction: float, rng: np.random.Generator
) -> torch.Tensor:
    """Indices (in original order) keeping a random ``fraction`` of ``rare_class``, rest intact."""
    labels = y.numpy()
    members = np.flatnonzero(labels == rare_class)
    if len(members) == 0:
        raise ValueError(f"rare_class must be a class present in the train split, got {rare_class}")
    kept = rng.choice(members, size=max(1, round(fraction * len(members))), replace=False)
    mask = labels != rare_class
    mask[kept] = True
    return torch.from_numpy(np.flatnonzero(mask))


# --------------------------------------------------------------------------------------------
# Sources of real data
# --------------------------------------------------------------------------------------------


class Pool:
    """A finite real data set, the source of real data for a loop: draws without replacement."""

    def __init__(self, x, y, num_classes: int, name: str = "pool") -> None:
        x, y = torch.as_tensor(x), torch.as_tensor(y)
        if x.ndim < 1 or len(x) < 1:
            raise ValueError(f"x must hold at least one item, got shape {tuple(x.shape)}")
        if y.shape != (len(x),):
            raise ValueError(
                f"y must be 1-D with one label per item of x ({len(x)}), got shape {tuple(y.shape)}"
            )
        self.x = x
        self.y = y.to(torch.int64)
        self.num_classes = check_int("num_classes", num_classes, minimum=1)
        self.name = name
        self._digest = None

    def __len__(self) -> int:
        return len(self.x)

    def __repr__(self) -> str:
        return f"Pool(name={self.name!r}, n={len(self)}, num_classes={self.num_classes})"

    def identity(self) -> dict:
        """What a run's hash needs to know of this source: its items, by sha256."""
        if self._digest is None:
            h = hashlib.sha256()
            for t in (self.x, self.y):
                h.update(t.contiguous().numpy().tobytes())
            self._digest = h.hexdigest()
        return {"type": "Pool", "name": self.name, "n": len(self), "sha256": self._digest}

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` distinct items drawn uniformly (a prefix of a random permutation)."""
        n = check_int("n", n, minimum=1, maximum=len(self))
        index = torch.randperm(len(self), generator=generator, device=generator.device)[:n]
        return self.x[index.to(self.x.device)], self.y[index.to(self.y.device)]


class Toy:
    """A 2-D distribution with an exact sampler: unlimited fresh real data, known density."""

    def __init__(self, name: str, num_classes: int, sampler) -> None:
        self.name = name
        self.num_classes = num_classes
        self._sampler = sampler
        self.__doc__ = sampler.__doc__  # the density, e.g. ``toy("moons").__doc__``

    def __repr__(self) -> str:
        return f"Toy(name={self.name!r}, num_classes={self.num_classes})"

    def identity(self) -> dict:
        return {"type": "Toy", "name": self.name}

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` independent points: x float32 (n, 2), y int64 (n,), using only ``generator``."""
        n = check_int("n", n, minimum=1)
        x, y = self._sampler(n, generator)
        return x.to(torch.float32), y.to(torch.int64)


def _normal(n: int, g: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(n, *shape, generator=g, device=g.device, dtype=torch.float32)


def _sample_gmm25(n: int, g: torch.Generator):
    """gmm25: p(x) = 1/25 sum_m N(x; m, 0.05^2 I), the 25 means m on the grid {-2,-1,0,1,2}^2.

    Label = component index 5 * i + j for the mean (i - 2, j - 2).
    """
    component = torch.randint(0, 25, (n,), generator=g, device=g.device)
    mean = torch.stack([component // 5, component % 5], dim=1).to(torch.float32) - 2.0
    return mean + 0.05 * _normal(n, g, 2), component


def _sample_moons(n: int, g: torch.Generator):
    """moons: two interleaving half circles (as sklearn.make_moons) plus N(0, 0.1^2 I) noise.

    t ~ U[0, pi] and the moon ~ Bernoulli(1/2); moon 0 = (cos t, sin t), moon 1 =
    (1 - cos t, 0.5 - sin t). Label = moon.
    """
    label = torch.randint(0, 2, (n,), generator=g, device=g.device)
    t = math.pi * torch.rand(n, generator=g, device=g.device, dtype=torch.float32)
    upper = torch.stack([torch.cos(t), torch.sin(t)], dim=1)
    lower = torch.stack([1.0 - torch.cos(t), 0.5 - torch.sin(t)], dim=1)
    x = torch.where(label[:, None] == 0, upper, lower)
    return x + 0.1 * _normal(n, g, 2), label


def _sample_rosenbrock(n: int, g: torch.Generator):
    """rosenbrock: p(x) proportional to exp(-x1^2 / 2 - (x2 - x1^2)^2), a curved banana.

    Exact: x1 ~ N(0, 1), then x2 | x1 ~ N(x1^2, 1/2). Label 0.
    """
    x1 = _normal(n, g)
    x2 = x1**2 + math.sqrt(0.5) * _normal(n, g)
    return torch.stack([x1, x2], dim=1), torch.zeros(n, dtype=torch.int64, device=g.device)


_TOY_SPECS = {
    "gmm25": (25, _sample_gmm25),
    "moons": (2, _sample_moons),
    "rosenbrock": (1, _sample_rosenbrock),
}


def toy(name: str) -> Toy:
    """The 2-D toy distribution ``name`` (one of ``TOYS``); its ``__doc__`` states the density.

    gmm25: 1/25 sum_m N(m, 0.05^2 I), m in {-2,...,2}^2. moons: sklearn's two half circles plus
    N(0, 0.1^2 I). rosenbrock: p(x) proportional to exp(-x1^2/2 - (x2 - x1^2)^2).
    """
    name = check_choice("name", name, TOYS)
    num_classes, sampler = _TOY_SPECS[name]
    return Toy(name, num_classes, sampler)


def source(name: str, **kwargs) -> Pool | Toy:
    """A loop's real data: a ``Pool`` of an image set's train split, or a ``Toy``.

    ``kwargs`` go to ``load_images`` (``root``, ``download``, ``pad``, ``rare_class``, ...);
    toys take none.
    """
    name = check_choice("name", name, IMAGE_SETS + TOYS)
    if name in TOYS:
        if kwargs:
            raise ValueError(
                f"kwargs must be empty for a toy source ({name!r}), got {sorted(kwargs)}"
            )
        return toy(name)
    images = load_images(name, "train", **kwargs)
    return Pool(images.x, images.y, images.num_classes, name=images.name)
