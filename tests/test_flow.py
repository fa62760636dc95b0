"""The normalizing flow: invertible, its log det is the brute-force Jacobian's, it beats a Gaussian
fit on 2-D toys (and nears the true Rosenbrock likelihood), its temperature is the latent variance,
and its bits per dim fall on digits."""

import math

import pytest
import torch

from mcollapse import data
from mcollapse.models.flow import NormalizingFlow, squeeze, unsqueeze


def scrambled(shape, seed=0, **kw):
    """A flow with every weight perturbed, so no layer is the identity it starts as."""
    model = NormalizingFlow(shape, progress=False, device="cpu", **kw)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.net.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return model


CASES = [((1, 8, 8), {}), ((1, 28, 28), dict(depth=1, hidden=8)), ((2,), dict(depth=8, hidden=64))]


@pytest.mark.parametrize(("shape", "kw"), CASES)
def test_x_to_z_to_x_returns_the_input(shape, kw):
    model = scrambled(shape, **kw)
    x = torch.rand(6, *shape, generator=torch.Generator().manual_seed(1)) * 2 - 1
    z, logdet = model.forward(x)
    assert z.shape == (6, math.prod(shape)) and logdet.shape == (6,)
    assert (z - x.flatten(1)).abs().max() > 0.1  # really transformed
    assert (model.inverse(z) - x).abs().max() < 1e-4


def test_squeeze_moves_each_2x2_block_into_channels_and_back():
    x = torch.arange(2 * 3 * 4 * 6.0).view(2, 3, 4, 6)
    s = squeeze(x)
    assert s.shape == (2, 12, 2, 3)
    assert s[0, :4, 0, 0].tolist() == [x[0, 0, 0, 0], x[0, 0, 0, 1], x[0, 0, 1, 0], x[0, 0, 1, 1]]
    assert torch.equal(unsqueeze(s), x)


@pytest.mark.parametrize(("shape", "kw"), [((1, 4, 4), {}), ((2, 4, 4), dict(scales=1)),
                                           ((2,), dict(depth=8, hidden=64)), ((3,), {})])  # fmt: skip
def test_log_det_is_the_brute_force_jacobian(shape, kw):
    model = scrambled(shape, seed=2, **kw)
    x = torch.rand(3, *shape, generator=torch.Generator().manual_seed(3)) * 1.8 - 0.9
    _, logdet = model.forward(x)
    for i in range(3):
        jac = torch.autograd.functional.jacobian(
            lambda v: model.forward(v.view(1, *shape))[0][0], x[i].flatten()
        )
        assert logdet[i].item() == pytest.approx(torch.linalg.slogdet(jac)[1].item(), abs=1e-3)


def test_log_prob_is_a_normalised_density_on_points():
    """Integrated over a grid, exp(log p) of a scrambled 2-D flow is 1."""
    model = scrambled((2,), seed=4, depth=2, hidden=16)
    axis = torch.linspace(-8, 8, 401)
    grid = torch.cartesian_prod(axis, axis)
    with torch.no_grad():
        mass = model.log_prob(grid).exp().sum() * (axis[1] - axis[0]) ** 2
    assert mass.item() == pytest.approx(1.0, abs=0.02)


@pytest.fixture(scope="module")
def moons_flow():
    """MAD's 2-D setting: 8 coupling layers with hidden width 64."""
    g = torch.Generator().manual_seed(0)
    x, y = data.toy("moons").sample(2000, g)
    model = NormalizingFlow((2,), depth=8, hidden=64, steps=150, batch_size=256, lr=5e-3,
                            warmup=20, progress=False, device="cpu")  # fmt: skip
    model.fit(x, y, g)
    return model, x


def test_trained_flow_beats_a_gaussian_fit_on_held_out_moons(moons_flow):
    model, x = moons_flow
    held_out, _ = data.toy("moons").sample(2000, torch.Generator().manual_seed(9))
    gauss = torch.distributions.MultivariateNormal(x.mean(0), torch.cov(x.T))
    with torch.no_grad():
        flow_ll = model.log_prob(held_out).mean().item()
    gauss_ll = gauss.log_prob(held_out).mean().item()
    assert flow_ll > gauss_ll + 0.4, (flow_ll, gauss_ll)


def test_trained_flow_nears_the_true_likelihood_on_held_out_rosenbrock():
    """MAD's 2-D density: the flow's held-out log-likelihood beats a Gaussian fit's and comes within
    0.15 nats of the true density's, -1 - log(sqrt(2 pi) sqrt(pi)) = -2.49 in expectation."""
    g = torch.Generator().manual_seed(0)
    x, y = data.toy("rosenbrock").sample(2000, g)
    model = NormalizingFlow((2,), depth=8, hidden=64, steps=150, batch_size=256, lr=5e-3,
                            warmup=20, progress=False, device="cpu")  # fmt: skip
    model.fit(x, y, g)
    held_out, _ = data.toy("rosenbrock").sample(4000, torch.Generator().manual_seed(9))
    x1, x2 = held_out.T
    true_ll = (-(x1**2) / 2 - (x2 - x1**2) ** 2).mean().item() - 0.5 * math.log(2 * math.pi**2)
    gauss = torch.distributions.MultivariateNormal(x.mean(0), torch.cov(x.T))
    with torch.no_grad():
        flow_ll = model.log_prob(held_out).mean().item()
    gauss_ll = gauss.log_prob(held_out).mean().item()
    assert flow_ll > gauss_ll + 0.5 and flow_ll > true_ll - 0.15, (flow_ll, gauss_ll, true_ll)


def test_temperature_is_the_latent_variance_and_shrinks_the_spread(moons_flow):
    model, _ = moons_flow
    x, labels = model.sample(1000, 0.5, torch.Generator().manual_seed(5))
    z = torch.randn(1000, 2, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        assert torch.allclose(x, model.inverse(math.sqrt(0.5) * z), atol=1e-5)
    full, _ = model.sample(1000, 1.0, torch.Generator().manual_seed(5))
    assert (labels == 0).all()
    assert (x - x.mean(0)).norm(dim=1).mean() < 0.9 * (full - full.mean(0)).norm(dim=1).mean()


def test_bits_per_dim_fall_on_held_out_digits_and_samples_sit_on_the_pixel_grid():
    train, test = data.load_images("digits", "train"), data.load_images("digits", "test")
    model = NormalizingFlow((1, 8, 8), depth=2, hidden=32, steps=150, batch_size=64,
                            progress=False, device="cpu")  # fmt: skip
    before = model.bits_per_dim(test.x)
    model.fit(train.x, train.y, torch.Generator().manual_seed(0))
    after = model.bits_per_dim(test.x)
    assert after < before - 1.5, (before, after)
    assert model.bits_per_dim(test.x) == after  # seed 0 by default: the same dequantisation
    x, _ = model.sample(50, 0.75, torch.Generator().manual_seed(6))
    assert x.min() >= -1 and x.max() <= 1
    levels = (x + 1) / model.bin_width
    assert torch.allclose(levels, levels.round(), atol=1e-4)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"shape": (1, 12, 12), "scales": 3}, "not divisible by 2"),
        ({"shape": (1,)}, "shape must be"),
        ({"shape": (2,), "scales": 2}, r"scales must be an integer in \[1, 1\]"),
        ({"bins": 1}, r"bins must be an integer in \[2, inf\]"),
        ({"alpha": 0.5}, r"alpha must be in \(0, 0.5\)"),
        ({"depth": 0}, r"depth must be an integer in \[1, inf\], got 0"),
    ],
)
def test_bad_settings_are_refused_naming_the_parameter(kw, message):
    with pytest.raises(ValueError, match=message):
        NormalizingFlow(**{"progress": False, "device": "cpu", **kw})


def test_bad_calls_raise():
    points = NormalizingFlow((2,), progress=False, device="cpu")
    with pytest.raises(ValueError, match="bits_per_dim is for images"):
        points.bits_per_dim(torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"bias must be a number in \(0, 1\]"):
        points.sample(3, 0.0, torch.Generator())
    with pytest.raises(ValueError, match=r"x must be a tensor of shape \(N >= 1, 2\)"):
        points.fit(torch.zeros(3, 3), torch.zeros(3, dtype=torch.long), torch.Generator())


def test_a_latent_whose_inverse_overflows_is_drawn_again():
    flow = NormalizingFlow((1, 8, 8), depth=1, hidden=8, steps=1, device="cpu", progress=False)
    calls = []
    inverse = flow.inverse

    def overflowing_once(z):
        x = inverse(z)
        if not calls:
            x[0] = float("nan")
        calls.append(len(z))
        return x

    flow.inverse = overflowing_once
    x, _ = flow.sample(50, 1.0, torch.Generator().manual_seed(0))
    assert torch.isfinite(x).all() and calls == [50, 1]
