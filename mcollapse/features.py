"""The feature network behind the image metrics.

FID, KID, precision and recall compare images in the feature space of a network. Inception
weights cannot be downloaded here, and Inception features say little about 8x8 digits anyway, so
each data set gets a small CNN classifier trained on its own training split. Its penultimate layer
is the feature space; its classifier head reads the class of a generated image, which shows which
classes vanish first. It is trained once, deterministically, cached under ``data/features/`` keyed
by the data set and a hash of its settings, and registered with torch-fidelity as the feature
extractor ``mcollapse-classifier``.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor
from tqdm.auto import tqdm

from . import data, paths
from ._atomic import atomic_path
from ._checks import check_choice, check_int, check_positive

EXTRACTOR_NAME = "mcollapse-classifier"
# about the same number of optimiser steps for each: 1,297 digits, 60k MNIST, 50k CIFAR-10 images
DEFAULT_EPOCHS = {"digits": 20, "mnist": 3, "cifar10": 15}
FEATURE_LAYERS = ("features", "logits")


@dataclass(frozen=True)
class FeatureSettings:
    """Everything that determines the trained network; its hash names the cache file."""

    dataset: str = "digits"
    width: int = 32
    feature_dim: int = 128
    epochs: int | None = None  # None: DEFAULT_EPOCHS of the data set
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    shift: int = 1
    seed: int = 0
    version: int = 1  # bump when the architecture or training code changes

    def __post_init__(self):
        check_choice("dataset", self.dataset, data.IMAGE_SETS)
        if self.epochs is None:
            object.__setattr__(self, "epochs", DEFAULT_EPOCHS[self.dataset])
        for name in ("width", "feature_dim", "epochs", "batch_size"):
            check_int(name, getattr(self, name), minimum=1)
        check_int("shift", self.shift, minimum=0)
        check_int("seed", self.seed, minimum=0)
        check_positive("lr", self.lr)
        check_positive("weight_decay", self.weight_decay, allow_zero=True)

    def digest(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


class Classifier(nn.Module):
    """Three 3x3 conv blocks, global average pooling, a linear head; works at 8, 28 and 32 px."""

    def __init__(self, channels: int, num_classes: int, width: int = 32, feature_dim: int = 128):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * width, feature_dim, 3, padding=1),
            nn.BatchNorm2d(feature_dim),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images in [-1, 1] -> (features, logits)."""
        features = self.body(x)
        return features, self.head(features)


@dataclass
class FeatureNet:
    """A trained classifier with what it was trained on and how well it does."""

    settings: FeatureSettings
    model: Classifier
    path: Path
    test_accuracy: float
    train_seconds: float
    image_shape: tuple[int, int, int]
    num_classes: int

    def features(self, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """Penultimate-layer features of images in [-1, 1] (float32)."""
        return self._run(x, batch_size)[0]

    def predict(self, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """Predicted class of each image."""
        return self._run(x, batch_size)[1].argmax(dim=1)

    def _run(self, x, batch_size):
        return _outputs(self.model, x, batch_size)


def feature_net(
    dataset: str = "digits", cache_dir=None, progress: bool = True, **settings
) -> FeatureNet:
    """The feature network for ``dataset``: loaded from the cache, or trained and cached.

    A cache file that cannot be read, or whose recorded settings differ, is reported and retrained,
    never used.
    """
    settings = FeatureSettings(dataset=dataset, **settings)
    cache_dir = Path(cache_dir) if cache_dir is not None else paths.FEATURES
    path = cache_dir / f"{dataset}-classifier-{settings.digest()}.pt"
    if path.exists():
        try:
            return _load(path, settings)
        except Exception as error:  # noqa: BLE001 - any unreadable cache is retrained
            warnings.warn(
                f"feature network cache {path} is unusable ({error}); retraining", stacklevel=2
            )
            path.unlink()
    train, test = data.load_images(dataset, "train"), data.load_images(dataset, "test")
    start = time.perf_counter()
    model = _train(settings, train, progress)
    seconds = time.perf_counter() - start
    accuracy = (_outputs(model, test.x)[1].argmax(1) == test.y).float().mean().item()
    record = {
        "settings": asdict(settings),
        "state": model.state_dict(),
        "test_accuracy": accuracy,
        "train_seconds": seconds,
        "image_shape": list(train.x.shape[1:]),
        "num_classes": train.num_classes,
    }
    _atomic_save(record, path)
    return _load(path, settings)


def _load(path: Path, settings: FeatureSettings) -> FeatureNet:
    record = torch.load(path, map_location="cpu", weights_only=True)
    if record["settings"] != asdict(settings):
        raise ValueError("its recorded settings differ from the requested ones")
    shape = tuple(record["image_shape"])
    model = Classifier(shape[0], record["num_classes"], settings.width, settings.feature_dim)
    model.load_state_dict(record["state"])
    model.eval()
    return FeatureNet(
        settings,
        model,
        path,
        record["test_accuracy"],
        record["train_seconds"],
        shape,
        record["num_classes"],
    )


def _train(settings: FeatureSettings, train: data.Images, progress: bool) -> Classifier:
    """Adam with small random shifts; all randomness from one torch Generator."""
    generator = torch.Generator().manual_seed(settings.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)  # initial weights; the global state is restored on exit
        model = Classifier(
            train.x.shape[1], train.num_classes, settings.width, settings.feature_dim
        )
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    steps_per_epoch = -(-len(train) // settings.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, settings.lr, total_steps=settings.epochs * steps_per_epoch
    )
    model.train()
    bar = tqdm(
        range(settings.epochs), desc=f"feature net ({settings.dataset})", disable=not progress
    )
    for _ in bar:
        order = torch.randperm(len(train), generator=generator)
        for batch in order.split(settings.batch_size):
            x = random_shift(train.x[batch], settings.shift, generator).to(device)
            loss = F.cross_entropy(model(x)[1], train.y[batch].to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    return model.cpu()


def random_shift(x: torch.Tensor, shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by up to ``shift`` pixels, filling with the background value -1."""
    if shift == 0:
        return x
    height, width = x.shape[-2:]
    padded = F.pad(x, (shift,) * 4, value=-1.0)
    offsets = torch.randint(0, 2 * shift + 1, (len(x), 2), generator=generator)
    out = torch.empty_like(x)
    for i in range(2 * shift + 1):  # one slice per offset, not per image
        for j in range(2 * shift + 1):
            rows = (offsets[:, 0] == i) & (offsets[:, 1] == j)
            out[rows] = padded[rows, :, i : i + height, j : j + width]
    return out


def _outputs(model: Classifier, x: torch.Tensor, batch_size: int = 512):
    """(features, logits) on the CPU, computed in batches on the model's device."""
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        parts = [model(chunk.to(device)) for chunk in x.split(batch_size)]
    return tuple(torch.cat([p[i] for p in parts]).cpu() for i in range(2))


def _atomic_save(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


# --------------------------------------------------------------------------------------------
# torch-fidelity
# --------------------------------------------------------------------------------------------


class ClassifierExtractor(FeatureExtractorBase):
    """torch-fidelity's view of a cached :class:`FeatureNet`.

    Takes uint8 images (N, C, H, W) as torch-fidelity passes them; the weights come from the
    ``feature_extractor_weights_path`` argument of ``torch_fidelity.calculate_metrics``.
    """

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        if feature_extractor_weights_path is None:
            raise ValueError(
                "feature_extractor_weights_path must name a cached feature network, got None"
            )
        record = torch.load(feature_extractor_weights_path, map_location="cpu", weights_only=True)
        settings = record["settings"]
        self.net = Classifier(
            record["image_shape"][0],
            record["num_classes"],
            settings["width"],
            settings["feature_dim"],
        )
        self.net.load_state_dict(record["state"])
        self.net.eval()

    @staticmethod
    def get_provided_features_list():
        return FEATURE_LAYERS

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return "features"

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return None

    def forward(self, x):
        images = x.float() / 127.5 - 1.0 if x.dtype == torch.uint8 else x.float()
        features, logits = self.net(images)
        out = {"features": features, "logits": logits}
        return tuple(out[name] for name in self.features_list)


def register() -> str:
    """Register the extractor with torch-fidelity (idempotent); returns its name."""
    if EXTRACTOR_NAME not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(EXTRACTOR_NAME, ClassifierExtractor)
    return EXTRACTOR_NAME
