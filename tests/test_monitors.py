"""Monitors: the k-NN entropy against a Gaussian's exact entropy, the detector's AUC at its two
ends, the collapse rule, alarms and lead times on hand-made series."""

import math

import numpy as np
import pytest
import torch

from mcollapse.monitors import (
    CollapseRule,
    Monitor,
    detector_auc,
    knn_entropy,
    lead_time,
    summarise,
    warning_table,
)


@pytest.mark.parametrize(("d", "scale"), [(1, 1.0), (2, 0.5), (4, 2.0)])
def test_knn_entropy_matches_a_gaussians_exact_entropy(d, scale):
    x = scale * torch.randn(3000, d, generator=torch.Generator().manual_seed(d))
    exact = 0.5 * d * math.log(2 * math.pi * math.e * scale**2)
    assert knn_entropy(x, k=3) == pytest.approx(exact, abs=0.06 * d)


def test_knn_entropy_falls_when_the_set_shrinks_and_refuses_too_few_points():
    x = torch.randn(500, 3, generator=torch.Generator().manual_seed(0))
    # scaling by s shifts the entropy by d log s exactly (the estimator is equivariant)
    assert knn_entropy(0.5 * x) == pytest.approx(knn_entropy(x) + 3 * math.log(0.5), abs=1e-9)
    with pytest.raises(ValueError, match="number of points must be an integer in"):
        knn_entropy(x[:3], k=3)
    with pytest.raises(ValueError, match="k must be an integer in"):
        knn_entropy(x, k=0)


def test_detector_auc_is_half_on_one_distribution_and_near_one_on_separated_ones():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(400, 5, generator=g), torch.randn(400, 5, generator=g)
    assert abs(detector_auc(a, b) - 0.5) < 0.08
    assert detector_auc(a, b + 3.0) > 0.99
    with pytest.raises(ValueError, match="same dimension"):
        detector_auc(a, b[:, :2])


def test_the_collapse_rule_fires_at_the_first_generation_it_holds():
    rule = CollapseRule(fid_factor=2.0, recall_factor=0.8)
    assert rule.first([5, 6, 9, 11, 30], [0.5, 0.5, 0.45, 0.44, 0.1]) == 4  # FID 11 > 10
    assert rule.first([5, 6, 7], [0.5, 0.45, 0.39]) == 3  # recall 0.39 < 0.4
    assert rule.first([5, 5, 5], [0.5, 0.5, 0.5]) is None
    fid_only = CollapseRule(fid_factor=3.0, recall_factor=None)
    assert fid_only.first([5, 9, 16], [0.5, 0.01, 0.01]) == 3 and "recall" not in str(fid_only)
    with pytest.raises(ValueError, match="cannot both be None"):
        CollapseRule(fid_factor=None, recall_factor=None)
    with pytest.raises(ValueError, match="fid_factor must be > 1"):
        CollapseRule(fid_factor=0.5)
    with pytest.raises(ValueError, match=r"recall_factor must be in \(0, 1\)"):
        CollapseRule(recall_factor=1.2)


def test_monitor_alarms_and_lead_times_on_hand_made_series():
    entropy = Monitor("entropy", "below", -0.5)
    auc = Monitor("detector_auc", "above", 1.2, mode="ratio")
    assert entropy.first([3.0, 2.8, 2.4, 1.0]) == 3
    assert entropy.first([3.0, 2.9, 2.9]) is None
    assert entropy.first([3.0]) is None  # generation 1 never alarms
    assert auc.first([0.6, 0.7, 0.8]) == 3  # 0.8 / 0.6 > 1.2
    assert lead_time(3, 5) == 2 and lead_time(5, 3) == -2 and lead_time(None, 4) is None
    with pytest.raises(ValueError, match="direction must be one of"):
        Monitor("entropy", "down", 1.0)


def test_warning_table_counts_lead_times_and_false_alarms():
    rule = CollapseRule()
    series = {
        ("synthetic", 0): {"fid": [5, 6, 8, 12], "recall": [0.5] * 4, "entropy": [3, 2.4, 2, 1]},
        ("fresh", 0): {"fid": [5, 5, 5, 5], "recall": [0.5] * 4, "entropy": [3, 3, 2.4, 3]},
        ("fresh", 1): {"fid": [5, 5, 5, 5], "recall": [0.5] * 4, "entropy": [3, 3, 3, 3]},
    }
    rows = warning_table(series, [Monitor("entropy", "below", -0.5)], rule)
    by = {(r["loop"], r["seed"]): r for r in rows}
    assert by["synthetic", 0]["collapse"] == 4 and by["synthetic", 0]["alarm"] == 2
    assert by["synthetic", 0]["lead_time"] == 2 and not by["synthetic", 0]["false_alarm"]
    assert by["fresh", 0]["false_alarm"] and not by["fresh", 1]["false_alarm"]
    (summary,) = summarise(rows)
    assert summary["collapsing_runs"] == 1 and summary["warned_ahead"] == 1
    assert summary["mean_lead"] == 2 and summary["calm_runs"] == 2 and summary["false_alarms"] == 1
    assert np.isnan(summarise(warning_table({("f", 0): series["fresh", 1]},
                                            [Monitor("entropy", "below", -0.5)], rule))[0]["mean_lead"])  # fmt: skip


def test_the_monitor_evaluator_adds_entropy_auc_and_class_shares(digits_reference):
    from mcollapse import data
    from mcollapse.monitors import MonitorEvaluator

    train = data.load_images("digits", "train")
    evaluate = MonitorEvaluator(digits_reference, n=200, folds=3)
    real = evaluate(train.x[:200], train.y[:200], None, 1)
    blurred = torch.nn.functional.avg_pool2d(train.x[:200], 3, 1, 1)
    fake = evaluate(blurred, train.y[:200], None, 2)
    assert {"fid", "precision", "recall", "entropy", "detector_auc", "share_9"} <= set(real)
    assert sum(real[f"share_{c}"] for c in range(10)) == pytest.approx(1.0)
    assert real["detector_auc"] < 0.7 < fake["detector_auc"]
    assert evaluate.identity()["type"] == "MonitorEvaluator"
