"""Provenance: the detector separates clearly different sets, curation weights are in [0, 1] and
monotone, the oracle removes exactly the synthetic items, and the curated loop runs in the engine."""

import numpy as np
import pytest
import torch

from mcollapse import data, engine
from mcollapse.models.vae import VAE
from mcollapse.provenance import (
    CuratedLoopSpec,
    SyntheticDetector,
    apply_weights,
    curation_weights,
    oracle_weights,
)


def test_the_detector_separates_clearly_different_sets_and_not_identical_ones():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(300, 6, generator=g), torch.randn(300, 6, generator=g) + 2.0
    det = SyntheticDetector().fit(real[:200], fake[:200])
    assert det.auc(real[200:], fake[200:]) > 0.98
    p = det.p_synthetic(torch.cat([real[200:], fake[200:]]))
    assert ((0 <= p) & (p <= 1)).all() and p[:100].mean() < 0.2 < 0.8 < p[100:].mean()
    same = SyntheticDetector().fit(real[:150], real[150:])
    assert (
        abs(same.auc(torch.randn(200, 6, generator=g), torch.randn(200, 6, generator=g)) - 0.5)
        < 0.1
    )
    with pytest.raises(ValueError, match="must be fitted"):
        SyntheticDetector().p_synthetic(real)


def test_curation_weights_are_in_0_1_and_non_increasing_in_p():
    p = np.linspace(0, 1, 101)
    for method, kw in (
        ("weight", {"beta": 0.5}),
        ("weight", {"beta": 3}),
        ("drop", {"threshold": 0.3}),
    ):
        w = curation_weights(p, method, **kw)
        assert ((0 <= w) & (w <= 1)).all() and (np.diff(w) <= 0).all()
    assert np.allclose(curation_weights(p, "weight", beta=2), (1 - p) ** 2)
    assert (curation_weights(p, "drop", threshold=0.3) == (p <= 0.3)).all()
    assert (curation_weights(p, "none") == 1).all()
    with pytest.raises(ValueError, match="method must be one of"):
        curation_weights(p, "oracle")
    with pytest.raises(ValueError, match="probabilities"):
        curation_weights(p + 1, "weight")


def test_oracle_curation_removes_exactly_the_synthetic_items():
    prov = torch.tensor([0, 0, 1, 2, 0, 1], dtype=torch.int16)
    x, y = torch.arange(6.0)[:, None], torch.arange(6)
    kx, ky, kp = apply_weights(x, y, prov, oracle_weights(prov), torch.Generator())
    assert kx.ravel().tolist() == [0.0, 1.0, 4.0] and (kp == 0).all() and ky.tolist() == [0, 1, 4]


def test_soft_weights_resample_in_proportion():
    prov = torch.tensor([0, 1] * 500, dtype=torch.int16)
    w = np.where(prov.numpy() == 0, 1.0, 0.25)
    _, _, kp = apply_weights(
        torch.zeros(1000, 1), torch.zeros(1000), prov, w, torch.Generator().manual_seed(0)
    )
    assert len(kp) == 1000 and abs((kp == 0).float().mean() - 0.8) < 0.04
    with pytest.raises(ValueError, match="weights must be one number in"):
        apply_weights(
            torch.zeros(3, 1), torch.zeros(3), prov[:3], [0.5, 2.0, 0.1], torch.Generator()
        )


def test_the_curated_loop_validates_and_runs_with_the_oracle_and_the_detector(tmp_path, digits_net):
    with pytest.raises(ValueError, match="curation must be one of"):
        CuratedLoopSpec("synthetic_augmented", generations=2, n_initial=50, n_real=20, n_synthetic=20,
                        curation="magic")  # fmt: skip
    with pytest.raises(ValueError, match="kind must be 'synthetic_augmented'"):
        CuratedLoopSpec("fully_synthetic", generations=2, n_initial=50, n_synthetic=20)
    train = data.load_images("digits", "train")
    source = data.Pool(train.x, train.y, 10, name="digits")

    def make():
        return VAE(
            (1, 8, 8),
            latent=2,
            width=4,
            hidden=8,
            steps=3,
            batch_size=8,
            device="cpu",
            progress=False,
        )

    def evaluate(x, y, model, t):
        return {"mean": float(x.mean())}

    out = {}
    for curation in ("oracle", "drop", "none"):
        spec = CuratedLoopSpec("synthetic_augmented", generations=2, n_initial=60, n_real=20,
                               n_synthetic=40, curation=curation, threshold=0.5)  # fmt: skip
        out[curation] = engine.run(spec, make, source, evaluate, tmp_path, progress=False)
    assert out["oracle"].generations[1].counts["synthetic"] == 0
    assert out["oracle"].generations[1].counts["real"] == 20
    assert out["none"].generations[1].counts == {"real": 20, "synthetic": 40,
                                                 "by_provenance": {"0": 20, "1": 40}}  # fmt: skip
    # an untrained VAE's samples are easy to spot: the detector drops most of them
    assert out["drop"].generations[1].counts["synthetic"] < 20
