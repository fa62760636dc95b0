"""Data sources: the digits split, the imbalance option, Pool sampling, the torchvision loaders on
tiny files in their on-disk formats (never downloading), the missing-data message, and the toys."""

import hashlib
import pickle
import struct
from collections import Counter
from urllib.error import URLError

import numpy as np
import pytest
import torch
from torchvision import datasets

from mcollapse import data


@pytest.fixture(scope="module")
def digits():
    return data.load_images("digits", "train"), data.load_images("digits", "test")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------------------------
# digits
# --------------------------------------------------------------------------------------------


def test_digits_shapes_range_dtype_and_labels(digits):
    train, test = digits
    assert train.x.shape == (1297, 1, 8, 8) and test.x.shape == (500, 1, 8, 8)
    assert len(train) == 1297 and len(test) == 500
    for part in digits:
        assert part.x.dtype == torch.float32 and part.y.dtype == torch.int64
        assert part.x.min().item() == -1.0 and part.x.max().item() == 1.0
        assert set(part.y.tolist()) == set(range(10))
        assert part.num_classes == 10 and part.name == "digits"
    assert (train.split, test.split) == ("train", "test")


def test_digits_split_is_fixed_disjoint_and_stratified(digits):
    train, test = digits
    again = data.load_images("digits", "train", seed=123)  # the split ignores seed
    assert torch.equal(again.x, train.x) and torch.equal(again.y, train.y)
    train_rows = {row.numpy().tobytes() for row in train.x.flatten(1)}
    test_rows = {row.numpy().tobytes() for row in test.x.flatten(1)}
    assert not train_rows & test_rows
    counts = torch.bincount(test.y, minlength=10)
    assert counts.min() >= 45 and counts.max() <= 55
    assert len(train) + len(test) == 1797


def test_pad_adds_background_border(digits):
    padded = data.load_images("digits", "test", pad=2)
    assert padded.x.shape == (500, 1, 12, 12)
    assert torch.equal(padded.x[:, :, 2:-2, 2:-2], digits[1].x)
    border = torch.ones(12, 12, dtype=torch.bool)
    border[2:-2, 2:-2] = False
    assert padded.x[:, :, border].eq(-1.0).all()


# --------------------------------------------------------------------------------------------
# imbalance
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.001])  # 0.3 * 132 = 39.6 -> 40
def test_rare_class_is_thinned_others_intact(digits, fraction):
    train = digits[0]
    rare = data.load_images("digits", rare_class=3, rare_fraction=fraction, seed=1)
    before = torch.bincount(train.y, minlength=10)
    after = torch.bincount(rare.y, minlength=10)
    assert after[3].item() == max(1, round(fraction * before[3].item()))
    others = torch.arange(10) != 3
    assert torch.equal(after[others], before[others])
    # the kept items are real items of class 3, and the other classes' items are untouched
    assert torch.equal(rare.x[rare.y != 3], train.x[train.y != 3])
    kept = {row.numpy().tobytes() for row in rare.x[rare.y == 3].flatten(1)}
    original = {row.numpy().tobytes() for row in train.x[train.y == 3].flatten(1)}
    assert kept <= original


def test_rare_class_subset_depends_on_seed(digits):
    a = data.load_images("digits", rare_class=0, rare_fraction=0.2, seed=1)
    b = data.load_images("digits", rare_class=0, rare_fraction=0.2, seed=1)
    c = data.load_images("digits", rare_class=0, rare_fraction=0.2, seed=2)
    assert torch.equal(a.x, b.x)
    assert not torch.equal(a.x, c.x)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rare_class": 10}, r"rare_class must be an integer in \[0, 9\], got 10"),
        ({"rare_class": -1}, "rare_class must be an integer in"),
        ({"rare_class": 1.5}, "rare_class must be an integer"),
        ({"rare_class": 2, "rare_fraction": 0.0}, r"rare_fraction must be a number in \(0, 1\]"),
        ({"rare_class": 2, "rare_fraction": 1.5}, "rare_fraction must be a number in"),
        ({"rare_fraction": 0.5}, "rare_fraction must be 1.0 when rare_class is None"),
        ({"rare_class": 2, "split": "test"}, "rare_class must be None for split 'test'"),
    ],
)
def test_rare_class_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        data.load_images("digits", **kwargs)


# --------------------------------------------------------------------------------------------
# Pool
# --------------------------------------------------------------------------------------------


def test_pool_sample_is_without_replacement_and_reproducible():
    pool = data.source("digits")
    assert isinstance(pool, data.Pool) and len(pool) == 1297 and pool.num_classes == 10
    x, y = pool.sample(len(pool), _gen(0))

    def items(xs, ys):
        return Counter(
            row.numpy().tobytes() + bytes([label])
            for row, label in zip(xs.flatten(1), ys.tolist(), strict=True)
        )

    drawn = items(x, y)
    assert drawn == items(pool.x, pool.y)  # every item exactly as often as in the pool
    assert len(drawn) == len(pool)  # digits has no duplicate items, so: no repeats at all
    x1, y1 = pool.sample(50, _gen(7))
    x2, y2 = pool.sample(50, _gen(7))
    x3, _ = pool.sample(50, _gen(8))
    assert x1.shape == (50, 1, 8, 8) and y1.shape == (50,)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(x1, x3)


def test_pool_sample_uses_each_index_once():
    pool = data.Pool(torch.arange(20.0)[:, None], torch.zeros(20, dtype=torch.int64), 1)
    x, _ = pool.sample(20, _gen(3))
    assert sorted(x[:, 0].tolist()) == list(range(20))
    assert x[:, 0].tolist() != list(range(20))  # shuffled, not a prefix


def test_pool_rejects_bad_n_and_bad_data():
    pool = data.Pool(torch.zeros(5, 2), torch.zeros(5, dtype=torch.int64), 1, name="p")
    with pytest.raises(ValueError, match=r"n must be an integer in \[1, 5\], got 6"):
        pool.sample(6, _gen(0))
    with pytest.raises(ValueError, match="n must be an integer in"):
        pool.sample(0, _gen(0))
    with pytest.raises(ValueError, match="y must be 1-D"):
        data.Pool(torch.zeros(5, 2), torch.zeros(4, dtype=torch.int64), 1)


# --------------------------------------------------------------------------------------------
# MNIST and CIFAR-10 from tiny files in torchvision's on-disk formats
# --------------------------------------------------------------------------------------------


def _write_idx(path, array: np.ndarray) -> None:
    """IDX as torchvision reads it: big-endian magic (0x08 = uint8, then ndim), sizes, bytes."""
    magic = 0x0800 + array.ndim  # 2051 for images (3-D), 2049 for labels (1-D)
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _write_mnist(root, n_train=6, n_test=4):
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = np.zeros((n, 28, 28), dtype=np.uint8)
        x[:, 10:18, 10:18] = 255  # a white square on black
        x[0, 0, 0] = 255
        x[:, 27, 27] = np.arange(n)  # tells the items apart
        y = np.arange(n) % 10
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", x)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", y)
        images[prefix] = (x, y)
    return images


def test_mnist_loader_on_idx_files(tmp_path):
    written = _write_mnist(tmp_path)
    train = data.load_images("mnist", "train", root=tmp_path, download=False)
    test = data.load_images("mnist", "test", root=tmp_path, download=False)
    assert train.x.shape == (6, 1, 28, 28) and test.x.shape == (4, 1, 28, 28)
    assert train.x.dtype == torch.float32 and train.y.dtype == torch.int64
    assert train.num_classes == 10
    assert train.y.tolist() == [0, 1, 2, 3, 4, 5] and test.y.tolist() == [0, 1, 2, 3]
    x, _ = written["train"]
    expected = torch.from_numpy(x.astype(np.float32) / 127.5 - 1.0).unsqueeze(1)
    torch.testing.assert_close(train.x, expected)
    assert train.x[0, 0, 0, 0].item() == 1.0  # 255 -> 1
    assert train.x[0, 0, 0, 1].item() == -1.0  # 0 -> -1
    assert train.x[:, 0, 10:18, 10:18].eq(1.0).all()


def test_mnist_pad_to_32_and_rare_class(tmp_path):
    _write_mnist(tmp_path, n_train=20)
    plain = data.load_images("mnist", root=tmp_path, download=False)
    padded = data.load_images("mnist", root=tmp_path, download=False, pad=2)
    assert padded.x.shape == (20, 1, 32, 32)
    assert torch.equal(padded.x[:, :, 2:30, 2:30], plain.x)
    for border in (padded.x[:, :, :2], padded.x[:, :, 30:], padded.x[..., :2], padded.x[..., 30:]):
        assert border.eq(-1.0).all()
    rare = data.load_images("mnist", root=tmp_path, download=False, rare_class=1, rare_fraction=0.5)
    assert (rare.y == 1).sum().item() == 1 and len(rare) == 19  # class 1 had 2 items


def _write_cifar(root):
    """Tiny batches in the cifar-10-batches-py layout; each row is R(1024) G(1024) B(1024)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    batches = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for k, name in enumerate(names):
        n = 3
        rows = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        # a known pixel: item 0 has value 200+c at (c, h=1, w=2) for channel c
        for c in range(3):
            rows[0, c * 1024 + 1 * 32 + 2] = 200 + c
        rows[0, 0] = 0
        rows[0, 3071] = 255
        labels = [(k + i) % 10 for i in range(n)]
        # torchvision unpickles with encoding="latin1" and reads str keys ("data", "labels"):
        # the original Python-2 files' str keys become str, unlike bytes keys written from py3.
        blob = pickle.dumps({"data": rows, "labels": labels, "batch_label": name})
        (folder / name).write_bytes(blob)
        batches[name] = (rows, labels, hashlib.md5(blob).hexdigest())
    meta = pickle.dumps({"label_names": [f"class{i}" for i in range(10)], "num_cases_per_batch": 3})
    (folder / "batches.meta").write_bytes(meta)
    return batches, hashlib.md5(meta).hexdigest()


@pytest.fixture
def tiny_cifar(tmp_path, monkeypatch):
    batches, meta_md5 = _write_cifar(tmp_path)
    train_names = [f"data_batch_{i}" for i in range(1, 6)]
    # our loader is under test, not torchvision's checksums of the real files
    monkeypatch.setattr(
        datasets.CIFAR10, "train_list", [[name, batches[name][2]] for name in train_names]
    )
    monkeypatch.setattr(datasets.CIFAR10, "test_list", [["test_batch", batches["test_batch"][2]]])
    monkeypatch.setattr(
        datasets.CIFAR10,
        "meta",
        {"filename": "batches.meta", "key": "label_names", "md5": meta_md5},
    )
    return tmp_path, batches


def test_cifar10_loader_layout_and_values(tiny_cifar):
    root, batches = tiny_cifar
    train = data.load_images("cifar10", "train", root=root, download=False)
    test = data.load_images("cifar10", "test", root=root, download=False)
    assert train.x.shape == (15, 3, 32, 32) and test.x.shape == (3, 3, 32, 32)
    assert train.x.dtype == torch.float32 and train.y.dtype == torch.int64
    expected_labels = [label for i in range(1, 6) for label in batches[f"data_batch_{i}"][1]]
    assert train.y.tolist() == expected_labels
    assert test.y.tolist() == batches["test_batch"][1]
    for c in range(3):
        assert train.x[0, c, 1, 2].item() == pytest.approx((200 + c) / 127.5 - 1.0)
    assert train.x[0, 0, 0, 0].item() == -1.0  # first byte: R at (0, 0)
    assert train.x[0, 2, 31, 31].item() == 1.0  # last byte: B at (31, 31)
    rows = batches["test_batch"][0]
    expected = torch.from_numpy(rows.reshape(3, 3, 32, 32).astype(np.float32) / 127.5 - 1.0)
    torch.testing.assert_close(test.x, expected)
    assert data.load_images("cifar10", "test", root=root, download=False, pad=1).x.shape == (
        3,
        3,
        34,
        34,
    )


# --------------------------------------------------------------------------------------------
# missing data
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "folder", "files"),
    [
        ("mnist", "MNIST/raw", ["train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]),
        ("cifar10", "cifar-10-batches-py", ["data_batch_1", "data_batch_5", "test_batch"]),
    ],
)
def test_missing_data_without_download_says_where_to_put_files(tmp_path, name, folder, files):
    with pytest.raises(FileNotFoundError) as info:
        data.load_images(name, root=tmp_path, download=False)
    message = str(info.value)
    assert repr(name) in message and "download=False" in message
    assert str(tmp_path / folder) in message
    for file in [*files, "batches.meta"] if name == "cifar10" else files:
        assert file in message
    assert "'digits'" in message and "offline" in message
    assert info.value.__cause__ is not None


@pytest.mark.parametrize(
    ("name", "cls", "folder"),
    [("mnist", datasets.MNIST, "MNIST/raw"), ("cifar10", datasets.CIFAR10, "cifar-10-batches-py")],
)
def test_failed_download_is_explained_and_chained(tmp_path, monkeypatch, name, cls, folder):
    def no_network(self):
        raise URLError("no network")

    monkeypatch.setattr(cls, "download", no_network)
    with pytest.raises(FileNotFoundError) as info:
        data.load_images(name, root=tmp_path, download=True)
    message = str(info.value)
    assert "download failed" in message and "no network" in message
    assert str(tmp_path / folder) in message and "'digits'" in message
    assert isinstance(info.value.__cause__, URLError)


# --------------------------------------------------------------------------------------------
# toys
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "num_classes"), [("gmm25", 25), ("moons", 2), ("rosenbrock", 1)])
def test_toy_shapes_dtypes_determinism(name, num_classes):
    t = data.toy(name)
    assert t.name == name and t.num_classes == num_classes
    assert data.source(name).name == name
    x, y = t.sample(100, _gen(5))
    assert x.shape == (100, 2) and x.dtype == torch.float32
    assert y.shape == (100,) and y.dtype == torch.int64
    assert y.min() >= 0 and y.max() < num_classes
    x2, y2 = t.sample(100, _gen(5))
    x3, _ = t.sample(100, _gen(6))
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(x, x3)
    assert "p(x)" in t.__doc__ or "half circles" in t.__doc__
    with pytest.raises(ValueError, match="n must be an integer in"):
        t.sample(0, _gen(0))


def test_toys_do_not_touch_global_rng():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    for name in data.TOYS:
        data.toy(name).sample(10, _gen(1))
    assert torch.equal(torch.rand(3), expected)


def test_gmm25_components_sit_on_the_grid():
    x, y = data.toy("gmm25").sample(5000, _gen(0))
    counts = torch.bincount(y, minlength=25)
    assert counts.min() > 120  # 200 expected each
    for k in range(25):
        points = x[y == k].double()
        grid = torch.tensor([k // 5 - 2.0, k % 5 - 2.0], dtype=torch.float64)
        assert (points.mean(0) - grid).abs().max() < 0.02
        assert (points.std(0) - 0.05).abs().max() < 0.012


def test_moons_are_two_noisy_half_circles():
    x, y = data.toy("moons").sample(4000, _gen(0))
    share = y.double().mean().item()
    assert abs(share - 0.5) < 5 * 0.5 / 4000**0.5
    centre = torch.where(y[:, None] == 0, torch.tensor([0.0, 0.0]), torch.tensor([1.0, 0.5]))
    radius = (x - centre).norm(dim=1)
    assert ((radius - 1.0).abs() < 0.4).double().mean().item() > 0.99
    # upper moon bulges up from y = 0, lower moon hangs down from y = 0.5
    assert x[y == 0, 1].mean() > 0.4 and x[y == 1, 1].mean() < 0.1


def test_rosenbrock_moments_match_the_exact_density():
    n = 20000
    x, y = data.toy("rosenbrock").sample(n, _gen(0))
    assert y.eq(0).all()
    x1, x2 = x[:, 0].double(), x[:, 1].double()
    se = 1 / n**0.5
    assert abs(x1.mean().item()) < 5 * se
    assert abs(x1.var().item() - 1.0) < 5 * 2**0.5 * se
    assert abs(x2.mean().item() - 1.0) < 5 * 2.5**0.5 * se  # Var[x2] = Var[x1^2] + 1/2
    assert abs((x2 - x1**2).var().item() - 0.5) < 5 * 0.5 * 2**0.5 * se


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: data.load_images("svhn"), "name must be one of 'digits', 'mnist', 'cifar10'"),
        (
            lambda: data.load_images("digits", "val"),
            "split must be one of 'train', 'test'; got 'val'",
        ),
        (
            lambda: data.load_images("digits", pad=-1),
            r"pad must be an integer in \[0, inf\], got -1",
        ),
        (lambda: data.load_images("digits", pad=1.0), "pad must be an integer, got 1.0"),
        (lambda: data.toy("swiss"), "name must be one of 'gmm25', 'moons', 'rosenbrock'"),
        (lambda: data.source("gaussian"), "name must be one of .*'digits'.*'gmm25'"),
        (lambda: data.source("moons", pad=2), "kwargs must be empty for a toy source"),
        (lambda: data.source("digits", split="test"), "multiple values for argument 'split'"),
    ],
)
def test_bad_arguments_name_the_parameter(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()
