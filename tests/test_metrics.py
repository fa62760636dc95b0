"""Metric sanity suite: each metric moves the way its definition says it must."""

import numpy as np
import pytest
import torch

from mcollapse import data, metrics
from mcollapse.evaluation import ImageEvaluator


@pytest.fixture(scope="module")
def train():
    return data.load_images("digits", "train")


def noisy(x, scale, seed=0):
    return x + scale * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))


def test_real_vs_real_is_the_floor_and_fid_rises_with_noise(train, digits_reference):
    x = train.x[:500]
    results = [
        metrics.image_metrics(noisy(x, s), digits_reference) for s in (0, 0.1, 0.2, 0.4, 0.8)
    ]
    fids = [r["fid"] for r in results]
    assert all(a < b for a, b in zip(fids, fids[1:], strict=False)), fids
    assert fids[0] < 2.0 and fids[-1] > 10 * fids[0]
    kids = [r["kid"] for r in results]
    assert abs(kids[0]) < 3 * results[0]["kid_std"] + 0.02 and kids[-1] > 0.5
    floor = results[0]
    assert floor["precision"] > 0.85 and floor["recall"] > 0.8
    assert (floor["n_generated"], floor["n_reference"]) == (500, 500)


def test_dropping_half_of_the_classes_costs_recall_not_precision(train, digits_reference):
    full = metrics.image_metrics(train.x[:500], digits_reference, metrics=("prc",))
    half = metrics.image_metrics(train.x[train.y < 5][:500], digits_reference, metrics=("prc",))
    assert half["recall"] < 0.65 * full["recall"]
    assert half["precision"] > 0.95 * full["precision"]
    assert "fid" not in half


def test_samples_off_the_data_manifold_cost_precision(train, digits_reference):
    x = train.x[:500].clone()
    x[:250] = torch.rand(x[:250].shape, generator=torch.Generator().manual_seed(1)) * 2 - 1
    full = metrics.image_metrics(train.x[:500], digits_reference, metrics=("prc",))
    spoiled = metrics.image_metrics(x, digits_reference, metrics=("prc",))
    assert spoiled["precision"] < 0.6 * full["precision"]


def test_results_do_not_change_when_the_reference_comes_from_the_cache(train, digits_reference):
    first = metrics.image_metrics(train.x[:300], digits_reference)
    assert metrics.image_metrics(train.x[:300], digits_reference) == first


def test_class_shares_show_the_classes_that_vanished(train, digits_net):
    shares = metrics.class_shares(train.x, digits_net)
    truth = np.bincount(train.y.numpy(), minlength=10) / len(train)
    assert shares.sum() == pytest.approx(1.0) and np.abs(shares - truth).max() < 0.02
    without = metrics.class_shares(train.x[train.y != 3], digits_net)
    assert without[3] < 0.01 and without.sum() == pytest.approx(1.0)


def test_image_metrics_reject_bad_input(train, digits_reference):
    with pytest.raises(ValueError, match="image shape"):
        metrics.image_metrics(torch.zeros(20, 1, 16, 16), digits_reference)
    with pytest.raises(ValueError, match="metrics"):
        metrics.image_metrics(train.x[:20], digits_reference, metrics=("is",))
    with pytest.raises(ValueError, match="number of generated images"):
        metrics.image_metrics(train.x[:5], digits_reference, k=5)


def test_empirical_w2_of_a_translation_and_in_one_dimension():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    shifted = metrics.empirical_w2(x, x + [3.0, 4.0])
    assert shifted["w2"] == pytest.approx(5.0, rel=1e-9) and shifted["n_x"] == 200
    a, b = rng.normal(size=300), rng.exponential(size=300)  # 1-D: the sorted matching is optimal
    exact = np.sqrt(np.mean((np.sort(a) - np.sort(b)) ** 2))
    assert metrics.empirical_w2(a[:, None], b[:, None])["w2"] == pytest.approx(exact, rel=1e-9)
    assert metrics.empirical_w2(x, x)["w2"] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="same dimension"):
        metrics.empirical_w2(x, x[:, :1])


def test_gaussian_w2_matches_the_closed_form_for_large_samples():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200_000, 2))
    y = rng.normal(size=(200_000, 2)) * [2.0, 0.5] + [1.0, 0.0]
    # W2^2 = |dm|^2 + sum (sqrt(a) - sqrt(b))^2 for diagonal covariances
    expected = np.sqrt(1.0 + (1 - 2) ** 2 + (1 - 0.5) ** 2)
    assert metrics.gaussian_w2(x, y)["w2"] == pytest.approx(expected, rel=0.01)


def test_log_det_tracks_a_collapse():
    x = np.random.default_rng(2).normal(size=(5000, 3))
    base = metrics.log_det_cov(x)["log_det"]
    assert base == pytest.approx(0.0, abs=0.1)
    assert metrics.log_det_cov(0.1 * x)["log_det"] == pytest.approx(base + 3 * np.log(0.01))
    with pytest.raises(ValueError, match="number of points"):
        metrics.log_det_cov(x[:3])


def test_point_precision_recall_sees_a_collapsed_cloud():
    toy, g = data.toy("gmm25"), torch.Generator().manual_seed(0)
    real, _ = toy.sample(2000, g)
    fresh, labels = toy.sample(2000, g)
    same = metrics.point_precision_recall(fresh, real)
    one_mode = metrics.point_precision_recall(fresh[labels == 12], real)
    assert same["precision"] > 0.9 and same["recall"] > 0.9
    assert one_mode["precision"] > 0.9 and one_mode["recall"] < 0.1


def test_the_real_floor_is_below_a_noisy_copy_and_records_its_size(train, digits_reference):
    floor = metrics.real_floor(digits_reference, 400, seed=1)
    assert floor["n_generated"] == 400 and floor["fid"] < 2.0
    assert metrics.real_floor(digits_reference, 400, seed=1) == floor
    assert floor["fid"] < metrics.image_metrics(noisy(train.x[:400], 0.2), digits_reference)["fid"]
    with pytest.raises(ValueError, match="n must be"):
        metrics.real_floor(digits_reference, 5000)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_damaged_cached_reference_features_are_recomputed(
    damage, train, digits_reference, tmp_path, monkeypatch
):
    from mcollapse import paths

    monkeypatch.setattr(paths, "FEATURES", tmp_path)
    first = metrics.image_metrics(train.x[:200], digits_reference)
    cached = sorted((tmp_path / "fidelity-cache").glob(f"{digits_reference.cache_name}-*"))
    assert cached, "the reference features must be cached"
    for path in cached:
        content = path.read_bytes()
        path.write_bytes(content[: len(content) // 3] if damage == "truncate" else b"not a tensor")
    with pytest.warns(UserWarning, match="dropping unreadable cached reference features"):
        again = metrics.image_metrics(train.x[:200], digits_reference)
    assert again == first


def test_image_evaluator_scores_a_fixed_count_and_reports_the_smallest_class(
    train, digits_reference
):
    evaluate = ImageEvaluator(digits_reference, n=300)
    x, y = train.x[:600], train.y[:600]
    found = evaluate(x, y, None, 1)
    assert set(found) == {"fid", "precision", "recall", "min_class_share", "n_generated",
                          "n_reference"}  # fmt: skip
    assert found["n_generated"] == 300 and found["n_reference"] == 500
    assert found["fid"] == pytest.approx(metrics.image_metrics(x[:300], digits_reference,
                                                               metrics=("fid", "prc"))["fid"])  # fmt: skip
    assert 0.07 < found["min_class_share"] < 0.1
    without_sevens = torch.cat([x[y != 7], x[y == 7][:3]])
    assert evaluate(without_sevens, None, None, 2)["min_class_share"] < 0.01
    with pytest.raises(ValueError, match="evaluation needs n=300 samples, the generation made 200"):
        evaluate(x[:200], y[:200], None, 1)
