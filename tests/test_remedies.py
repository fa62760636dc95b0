"""Remedies: self-correction moves items toward their centres by the stated fraction, the ensemble
samples from every member, augmentation keeps shapes and changes pixels, the corrected loop runs."""

import pytest
import torch

from mcollapse import data, engine
from mcollapse.remedies import (
    Augmented,
    CorrectedLoopSpec,
    Ensemble,
    SelfCorrector,
    kmeans,
    shift_images,
)

TINY = dict(image_shape=(1, 8, 8), latent=2, width=4, hidden=8, steps=3, batch_size=8)
X = torch.rand(24, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
Y = torch.arange(24) % 3


def test_kmeans_finds_well_separated_clusters():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = torch.cat([c + 0.1 * torch.randn(50, 2, generator=g) for c in centres])
    found = kmeans(x, 3, torch.Generator().manual_seed(1))
    assert torch.cdist(found, centres).min(0).values.max() < 0.1


def test_self_correction_moves_items_toward_their_centre_by_the_stated_fraction():
    corrector = SelfCorrector(X, Y, k=2, seed=0)
    x = torch.rand(9, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    y = torch.arange(9) % 3
    centre = corrector.nearest(x, y)
    for strength in (0.25, 0.5, 1.0):
        moved = corrector.correct(x, y, strength)
        before = (x - centre).flatten(1).norm(dim=1)
        after = (moved - centre).flatten(1).norm(dim=1)
        assert torch.allclose(after, (1 - strength) * before, atol=1e-5)
        assert moved.shape == x.shape
    # the centre is of the item's own class
    for c in range(3):
        assert any(torch.allclose(centre[0 + c].ravel(), k) for k in corrector.centres[c])
    with pytest.raises(ValueError, match=r"strength must be a number in \(0, 1\]"):
        corrector.correct(x, y, 1.5)
    with pytest.raises(ValueError, match="class 7 has no centres"):
        corrector.correct(x[:1], torch.tensor([7]), 0.5)


def test_the_ensemble_samples_from_every_member_and_round_trips():
    model = Ensemble("VAE", TINY, members=3)
    model.fit(X, Y, torch.Generator().manual_seed(0))
    x, y = model.sample(60, 1.0, torch.Generator().manual_seed(1))
    assert x.shape == (60, 1, 8, 8) and y.shape == (60,)
    assert set(model.last_choice.tolist()) == {0, 1, 2}
    # each item is the sample of the member that was chosen for it: members differ
    one = [model.members[i].sample(4, 1.0, torch.Generator().manual_seed(2))[0] for i in range(3)]
    assert not torch.allclose(one[0], one[1])
    copy = Ensemble("VAE", TINY, members=3)
    copy.load_state_dict(model.state_dict())
    assert torch.equal(copy.sample(10, 1.0, torch.Generator().manual_seed(3))[0],
                       model.sample(10, 1.0, torch.Generator().manual_seed(3))[0])  # fmt: skip
    assert model.settings()["members"] == 3
    with pytest.raises(ValueError, match="family must be one of"):
        Ensemble("GPT", TINY)
    with pytest.raises(ValueError, match="members must be an integer in"):
        Ensemble("VAE", TINY, members=0)


def test_augmentation_preserves_shapes_and_changes_pixels():
    g = torch.Generator().manual_seed(0)
    shifted = shift_images(X, 1, g)
    assert shifted.shape == X.shape and not torch.equal(shifted, X)
    assert shifted.min() >= -1 and shifted.max() <= 1
    model = Augmented("VAE", TINY, shift=1, copies=2)
    ax, ay = model.augment(X, Y, g)
    assert ax.shape == (72, 1, 8, 8) and torch.equal(ax[:24], X) and torch.equal(ay, Y.repeat(3))
    model.fit(X, Y, torch.Generator().manual_seed(0))
    assert model.sample(5, 1.0, torch.Generator())[0].shape == (5, 1, 8, 8)
    with pytest.raises(ValueError, match="shift must be an integer in"):
        Augmented("VAE", TINY, shift=0)


def test_the_corrected_loop_runs_and_moves_the_training_items(tmp_path, digits_net):
    with pytest.raises(ValueError, match=r"strength must be a number in \(0, 1\]"):
        CorrectedLoopSpec(
            "fully_synthetic", generations=2, n_initial=50, n_synthetic=20, strength=0
        )
    from mcollapse.models.vae import VAE

    train = data.load_images("digits", "train")
    source = data.Pool(train.x, train.y, 10, name="digits")
    seen = []

    class Spy(VAE):
        def fit(self, x, y, generator):
            seen.append(x.clone())
            super().fit(x, y, generator)

    def make():
        return Spy(**TINY, device="cpu", progress=False)

    spec = CorrectedLoopSpec("fully_synthetic", generations=2, n_initial=100, n_synthetic=30,
                             strength=1.0, centres=2)  # fmt: skip
    run = engine.run(spec, make, source, lambda x, y, m, t: {"m": float(x.mean())}, tmp_path,
                     progress=False, share_first=False)  # fmt: skip
    assert run.generations[1].counts == {"real": 0, "synthetic": 30, "by_provenance": {"1": 30}}
    # strength 1: every training item of generation 2 is a k-means centre of the real digits
    assert len(torch.unique(seen[-1].flatten(1), dim=0)) <= 20
