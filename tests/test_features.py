"""The feature network: accurate, deterministic, cached, and never used from a damaged cache."""

import pytest
import torch

from mcollapse import data, features, metrics
from mcollapse.features import FeatureSettings

QUICK = {"epochs": 1, "width": 8, "feature_dim": 16}


def test_digits_feature_net_classifies_held_out_digits(digits_net):
    assert digits_net.test_accuracy >= 0.97
    test = data.load_images("digits", "test")
    assert (digits_net.predict(test.x) == test.y).float().mean() == pytest.approx(
        digits_net.test_accuracy, abs=1e-6
    )
    assert digits_net.features(test.x[:7]).shape == (7, digits_net.settings.feature_dim)


def test_training_is_deterministic_and_depends_on_the_seed(tmp_path):
    nets = [
        features.feature_net("digits", tmp_path / d, progress=False, seed=s, **QUICK)
        for d, s in (("a", 0), ("b", 0), ("c", 1))
    ]
    states = [list(n.model.state_dict().values()) for n in nets[:2]]
    assert all(torch.equal(a, b) for a, b in zip(*states, strict=True))
    first, other = nets[0].model.head.weight, nets[2].model.head.weight
    assert not torch.equal(first, other)


def test_the_cache_is_reused_without_training(tmp_path, monkeypatch):
    net = features.feature_net("digits", tmp_path, progress=False, **QUICK)
    monkeypatch.setattr(features, "_train", lambda *a: pytest.fail("retrained a cached network"))
    again = features.feature_net("digits", tmp_path, progress=False, **QUICK)
    assert again.path == net.path and again.test_accuracy == net.test_accuracy


def test_a_truncated_cache_file_is_retrained_not_used(tmp_path):
    net = features.feature_net("digits", tmp_path, progress=False, **QUICK)
    good = net.path.read_bytes()
    net.path.write_bytes(good[: len(good) // 2])
    with pytest.warns(UserWarning, match="unusable"):
        again = features.feature_net("digits", tmp_path, progress=False, **QUICK)
    assert again.path.stat().st_size > len(good) // 2
    retrained = zip(net.model.state_dict().values(), again.model.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in retrained)  # deterministic retraining


def test_a_cache_file_with_other_settings_is_not_used(tmp_path):
    net = features.feature_net("digits", tmp_path, progress=False, **QUICK)
    target = tmp_path / f"digits-classifier-{FeatureSettings(seed=3, **QUICK).digest()}.pt"
    target.write_bytes(net.path.read_bytes())  # a file that claims seed 0 under seed 3's name
    with pytest.warns(UserWarning, match="settings differ"):
        other = features.feature_net("digits", tmp_path, progress=False, seed=3, **QUICK)
    assert other.settings.seed == 3
    assert not torch.equal(other.model.head.weight, net.model.head.weight)


def test_torch_fidelity_extractor_gives_the_network_features(digits_net):
    name = features.register()
    assert features.register() == name  # idempotent
    x = data.load_images("digits", "test").x[:16]
    extractor = features.ClassifierExtractor(
        name, ["features", "logits"], feature_extractor_weights_path=str(digits_net.path)
    )
    with torch.no_grad():
        feats, logits = extractor(metrics.to_uint8(x))
    quantised = metrics.to_uint8(x).float() / 127.5 - 1
    assert torch.allclose(feats, digits_net.features(quantised), atol=1e-5)
    assert torch.equal(logits.argmax(1), digits_net.predict(quantised))


@pytest.mark.parametrize(
    "settings, field",
    [({"dataset": "faces"}, "dataset"), ({"epochs": 0}, "epochs"), ({"lr": -1.0}, "lr")],
)
def test_bad_settings_name_the_field(settings, field):
    with pytest.raises(ValueError, match=field):
        FeatureSettings(**settings)


def test_random_shift_translates_each_image_and_fills_with_background():
    x = torch.rand(200, 1, 5, 5, generator=torch.Generator().manual_seed(0))
    shifted = features.random_shift(x, 1, torch.Generator().manual_seed(1))
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), value=-1.0)
    seen = set()
    for image, out in zip(padded, shifted, strict=True):
        offsets = [
            (i, j)
            for i in range(3)
            for j in range(3)
            if torch.equal(image[:, i : i + 5, j : j + 5], out)
        ]
        assert len(offsets) == 1
        seen.add(offsets[0])
    assert len(seen) == 9  # every offset occurs
    assert torch.equal(features.random_shift(x, 0, torch.Generator()), x)


@pytest.mark.parametrize("channels, size", [(1, 8), (1, 28), (1, 32), (3, 32)])
def test_classifier_handles_every_image_set_shape(channels, size):
    net = features.Classifier(channels, 10, width=4, feature_dim=12)
    feats, logits = net(torch.zeros(3, channels, size, size))
    assert feats.shape == (3, 12) and logits.shape == (3, 10)


def test_default_epochs_follow_the_data_set_and_enter_the_cache_key():
    assert FeatureSettings().epochs == features.DEFAULT_EPOCHS["digits"]
    assert FeatureSettings(dataset="mnist").epochs == features.DEFAULT_EPOCHS["mnist"]
    assert FeatureSettings().digest() == FeatureSettings(epochs=FeatureSettings().epochs).digest()
    assert FeatureSettings().digest() != FeatureSettings(epochs=1).digest()
