"""StyleGAN-2: shapes, the demodulation identity, truncation, R1, a real learning signal, persistence."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression

from mcollapse.models import GenerativeModel
from mcollapse.models import stylegan2 as S


def gen(seed):
    return torch.Generator().manual_seed(seed)


def small(resolution=8, **training):
    cfg = S.Config(resolution=resolution, z_dim=16, w_dim=16, channels=16)
    return S.StyleGAN2(cfg, S.Training(**{"steps": 2, "batch": 8, **training}))


@pytest.mark.parametrize("resolution", S.RESOLUTIONS)
def test_shapes_at_every_resolution(resolution):
    model = small(resolution)
    z = torch.randn(5, 16, generator=gen(0))
    img = model.G(z, generator=gen(1))
    assert img.shape == (5, 1, resolution, resolution)
    assert model.D(img).shape == (5,)
    x = torch.rand(10, 1, resolution, resolution, generator=gen(2)) * 2 - 1
    model.fit(x, torch.zeros(10, dtype=torch.int64), gen(3))
    sx, sy = model.sample(7, 0.7, gen(4))
    assert sx.shape == (7, 1, resolution, resolution) and sx.abs().max() <= 1
    assert sy.dtype == torch.int64 and (sy == S.UNLABELLED).all()
    assert isinstance(model, GenerativeModel)
    # colour images too
    rgb = S.StyleGAN2(S.Config(resolution=resolution, image_channels=3, channels=8))
    assert rgb.G(torch.randn(2, 64, generator=gen(5)), generator=gen(6)).shape == (
        2, 3, resolution, resolution)  # fmt: skip


def test_demodulation_keeps_unit_scale_whatever_the_style():
    x = torch.randn(8, 64, 32, 32, generator=gen(0))
    weight = torch.randn(48, 64, 3, 3, generator=gen(1)) / 24
    styles = torch.exp(torch.randn(8, 64, generator=gen(2)))  # styles spanning a factor ~ 50
    inner = (slice(None), slice(None), slice(1, -1), slice(1, -1))  # away from the zero padding
    out = S.modulated_conv2d(x, weight, styles)[inner]
    per_sample = out.std(dim=(1, 2, 3))
    torch.testing.assert_close(per_sample, torch.ones(8), atol=0.05, rtol=0)
    # without demodulation the scale follows the style: 10x the style, 10x the output
    raw = S.modulated_conv2d(x, weight, styles, demodulate=False)[inner]
    raw10 = S.modulated_conv2d(x, weight, 10 * styles, demodulate=False)[inner]
    torch.testing.assert_close(raw10.std() / raw.std(), torch.tensor(10.0), rtol=1e-4, atol=0)
    assert not torch.allclose(raw.std(dim=(1, 2, 3)), torch.ones(8), atol=0.2)
    # the fast path (scale activations) is the paper's grouped convolution (scale weights)
    for demodulate in (True, False):
        fused = S.modulated_conv2d(x, weight, styles, demodulate=demodulate, fused=True)
        fast = S.modulated_conv2d(x, weight, styles, demodulate=demodulate)
        torch.testing.assert_close(fast, fused, rtol=1e-4, atol=1e-4)


def test_psi_zero_gives_one_image_for_every_z():
    model = small()
    with torch.no_grad():  # a model whose mean w is not zero and whose noise matters
        model.G_ema.w_avg.normal_(generator=gen(0))
        for conv in model.G_ema.convs:
            conv.noise_strength.fill_(0.5)
    z = torch.randn(6, 16, generator=gen(1))
    same = model.G_ema(z, generator=gen(2), psi=0.0, noise="const")
    assert torch.allclose(same, same[:1].expand_as(same), atol=1e-6)
    differ = model.G_ema(z, generator=gen(2), psi=1.0, noise="const")
    assert (differ - differ[:1]).abs().amax(dim=(1, 2, 3))[1:].min() > 1e-3
    # psi = 0 with random noise: one w, so the images differ only by the noise
    noisy = model.G_ema(z, generator=gen(2), psi=0.0)
    assert 0 < (noisy - noisy[:1]).abs().max() < (differ - differ[:1]).abs().max() * 10
    # truncation moves w linearly toward w_avg
    w = model.G_ema.mapping(z)
    psi = 0.7
    torch.testing.assert_close(
        model.G_ema.w_avg.lerp(w, psi), model.G_ema.w_avg + psi * (w - model.G_ema.w_avg)
    )


class IgnoresInput(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c = torch.nn.Parameter(torch.tensor(0.3))

    def forward(self, x):
        return self.c.expand(len(x))


class Linear(torch.nn.Module):
    def __init__(self, a):
        super().__init__()
        self.a = a

    def forward(self, x):
        return (x * self.a).sum(dim=(1, 2, 3))


def test_r1_penalty():
    real = torch.randn(6, 1, 8, 8, generator=gen(0))
    assert S.r1_penalty(IgnoresInput(), real, gamma=10.0).item() == 0.0
    # a linear discriminator <a, x> has gradient a everywhere: penalty gamma / 2 * ||a||^2
    a = torch.randn(1, 1, 8, 8, generator=gen(1))
    expected = 0.5 * 10.0 * a.square().sum()
    torch.testing.assert_close(S.r1_penalty(Linear(a), real, gamma=10.0), expected)
    # and it is differentiable with respect to the discriminator's weights
    D = small().D
    S.r1_penalty(D, real, gamma=1.0).backward()
    assert D.from_rgb.weight.grad.abs().sum() > 0


def test_losses_are_the_non_saturating_logistic_ones():
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    expected_d = np.mean(np.log1p(np.exp([0.5, -3.0]))) + np.mean(np.log1p(np.exp([-2.0, 1.0])))
    assert S.d_logistic_loss(real, fake).item() == pytest.approx(expected_d, rel=1e-6)
    assert S.g_nonsaturating_loss(fake).item() == pytest.approx(
        np.mean(np.log1p(np.exp([-0.5, 3.0]))), rel=1e-6
    )


def test_minibatch_stddev():
    x = torch.randn(8, 3, 4, 4, generator=gen(0))
    out = S.minibatch_stddev(x, 4)
    assert out.shape == (8, 4, 4, 4)
    torch.testing.assert_close(out[:, :3], x)
    same = S.minibatch_stddev(x[:1].expand(8, -1, -1, -1), 4)
    assert same[:, 3].abs().max() < 1e-3  # no variety, no signal
    # group i mod (n / g): samples 0, 2, 4, 6 form one group
    expected = x[0::2].std(dim=0, unbiased=False).mean()
    torch.testing.assert_close(out[0, 3, 0, 0], expected, rtol=1e-4, atol=1e-6)


def test_resampling_is_the_fir_filter():
    x = torch.randn(2, 3, 6, 6, generator=gen(0))
    k = torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1]))
    k = (k / k.sum() * 4)[None, None].repeat(3, 1, 1, 1)
    reference = F.conv_transpose2d(x, k, stride=2, padding=1, groups=3)
    torch.testing.assert_close(S.upsample(x)[..., 1:-1, 1:-1], reference[..., 1:-1, 1:-1])
    assert S.downsample(torch.ones(1, 2, 8, 8))[..., 1:-1, 1:-1].allclose(torch.ones(1))
    assert S.downsample(x).shape == (2, 3, 3, 3)


def probe_accuracy(real, fake, seed=0):
    """Held-out accuracy of a fresh discriminator, an L2-regularised logistic regression on the
    pixels, telling real from fake: 0.5 when it cannot, 1 when it always can."""
    x = torch.cat([real, fake]).flatten(1).numpy()
    y = np.r_[np.ones(len(real)), np.zeros(len(fake))]
    order = np.random.default_rng(seed).permutation(len(x))
    train, test = order[: len(x) // 2], order[len(x) // 2 :]
    probe = LogisticRegression(C=0.01, max_iter=3000).fit(x[train], y[train])
    return probe.score(x[test], y[test])


def blobs(n, generator):
    """Toy 8x8 images: one bright Gaussian blob at a random position on a dark background."""
    centre = torch.rand(n, 2, 1, 1, generator=generator) * 4 + 2
    grid = torch.arange(8.0)
    d2 = (grid[None, :, None] - centre[:, 0]) ** 2 + (grid[None, None, :] - centre[:, 1]) ** 2
    return (2 * torch.exp(-d2 / 2.0) - 1)[:, None]


def test_training_reduces_the_ability_to_tell_real_from_fake():
    real = blobs(512, gen(0))
    fresh = blobs(400, gen(1))
    assert probe_accuracy(fresh, blobs(400, gen(5))) < 0.6  # real vs real: chance
    untrained, _ = small(steps=400, batch=32, lr=0.005, gamma=1.0).sample(400, 1.0, gen(2))
    before = probe_accuracy(fresh, untrained)
    after = []
    for seed in (3, 4, 5):  # a GAN's outcome varies with its seed: judge the mean of three
        model = small(steps=400, batch=32, lr=0.005, gamma=1.0)
        model.fit(real, torch.zeros(len(real), dtype=torch.int64), gen(seed))
        after.append(probe_accuracy(fresh, model.sample(400, 1.0, gen(2))[0]))
    assert before > 0.95
    assert np.mean(after) < 0.8, (before, after)  # measured 0.99 -> 0.85, 0.68, 0.59


def test_state_dict_round_trip_and_determinism():
    x = torch.rand(16, 1, 8, 8, generator=gen(0)) * 2 - 1
    y = torch.zeros(16, dtype=torch.int64)
    a, b = small(steps=5), small(steps=5)
    a.fit(x, y, gen(1))
    b.fit(x, y, gen(1))
    sa, _ = a.sample(9, 0.7, gen(2))
    torch.testing.assert_close(b.sample(9, 0.7, gen(2))[0], sa, rtol=0, atol=0)
    state = torch.load(_save(a.state_dict()), weights_only=True)
    c = small(steps=5)
    c.load_state_dict(state)
    torch.testing.assert_close(c.sample(9, 0.7, gen(2))[0], sa, rtol=0, atol=0)
    with pytest.raises(ValueError, match="config"):
        S.StyleGAN2(S.Config(channels=8)).load_state_dict(state)


def _save(obj):
    import io

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return buffer


def test_bad_parameters_name_themselves():
    with pytest.raises(ValueError, match="resolution"):
        S.Config(resolution=12)
    with pytest.raises(ValueError, match="steps"):
        S.Training(steps=0)
    with pytest.raises(ValueError, match="betas"):
        S.Training(betas=(0.0, 1.5))
    model = small()
    with pytest.raises(ValueError, match="bias"):
        model.sample(4, 0.0, gen(0))
    with pytest.raises(ValueError, match="x must be images"):
        model.fit(torch.zeros(4, 1, 16, 16), torch.zeros(4, dtype=torch.int64), gen(0))
    with pytest.raises(ValueError, match="noise"):
        model.G(torch.zeros(2, 16), generator=gen(0), noise="none")


def test_augmentation_is_differentiable_and_alike_for_equal_generators():
    x = torch.rand(6, 1, 8, 8, generator=gen(0)) * 2 - 1
    kinds = S.parse_augment("translation,color,cutout")
    a = S.diff_augment(x, kinds, gen(1))
    assert a.shape == x.shape
    torch.testing.assert_close(S.diff_augment(x, kinds, gen(1)), a, rtol=0, atol=0)
    assert not torch.equal(S.diff_augment(x, kinds, gen(2)), a)
    # translation moves a one-hot pixel by at most 1 px at 8 px, every way, filling with -1
    one_hot = torch.full((64, 1, 8, 8), -1.0)
    one_hot[:, 0, 3, 4] = 1.0
    moved = S.diff_augment(one_hot, ("translation",), gen(3))
    assert moved.min() == -1 and moved.max() == 1  # range kept, background filled with -1
    assert ((moved == 1).sum(dim=(1, 2, 3)) == 1).all()
    pos = (moved[:, 0] == 1).nonzero()[:, 1:]
    shift = pos - torch.tensor([3, 4])
    assert shift.abs().max() == 1 and len({tuple(s) for s in shift.tolist()}) == 9  # all 3 x 3
    # gradients flow to the input through every transform
    x.requires_grad_(True)
    S.diff_augment(x, kinds, gen(4)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # cutout zeroes a res/2 square (16 pixels when it lies inside the image)
    cut = S.diff_augment(torch.ones(200, 1, 8, 8), ("cutout",), gen(5))
    holes = (cut == 0).sum(dim=(1, 2, 3))
    assert holes.max() == 16 and holes.min() >= 4


def test_augmentation_option():
    assert S.parse_augment("none") == ()
    assert S.parse_augment("translation, color") == ("translation", "color")
    for bad in ("flip", "translation,translation", "", None):
        with pytest.raises(ValueError, match="augment"):
            S.Training(augment=bad)
    x = torch.rand(16, 1, 8, 8, generator=gen(0)) * 2 - 1
    y = torch.zeros(16, dtype=torch.int64)
    plain, augmented = small(steps=3), small(steps=3, augment="translation,color")
    plain.fit(x, y, gen(1))
    augmented.fit(x, y, gen(1))
    assert not torch.equal(plain.sample(4, 1.0, gen(2))[0], augmented.sample(4, 1.0, gen(2))[0])
    assert plain.settings()["training"]["augment"] == "none"


def test_mapping_lr_mul_changes_the_learning_rate_not_the_initial_function():
    z = torch.randn(5, 16, generator=gen(0))
    out = {}
    for mul in (0.01, 0.1):
        cfg = S.Config(z_dim=16, w_dim=16, channels=16, mapping_lr_mul=mul)
        G = S.init_weights(S.Generator(cfg), gen(1))
        assert all(layer.lr_mul == mul for layer in G.mapping.layers)
        out[mul] = G.mapping(z)
    torch.testing.assert_close(out[0.01], out[0.1], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="mapping_lr_mul"):
        S.Config(mapping_lr_mul=0)
