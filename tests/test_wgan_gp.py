"""WGAN-GP: the gradient penalty vanishes exactly for a critic with unit-norm gradients, the latent
truncation is bias * z, and a short run on the digits brings the samples far closer to real ones."""

import pytest
import torch
from torch import nn

from mcollapse import data, metrics
from mcollapse.models.wgan_gp import WGANGP, gradient_penalty


def _linear_critic(norm: float) -> nn.Module:
    """f(x) = w . x + b on flattened 1x8x8 images, with ||w|| = norm: gradient w everywhere."""
    critic = nn.Sequential(nn.Flatten(), nn.Linear(64, 1))
    w = torch.randn(1, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        critic[1].weight.copy_(norm * w / w.norm())
    return critic


def _pair(seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(32, 1, 8, 8, generator=g) * 2 - 1, torch.randn(32, 1, 8, 8, generator=g)


def test_gradient_penalty_is_zero_for_unit_norm_gradients_and_positive_otherwise():
    real, fake = _pair()
    g = torch.Generator().manual_seed(2)
    assert gradient_penalty(_linear_critic(1.0), real, fake, g).item() == pytest.approx(
        0, abs=1e-10
    )
    # ||grad|| = 2 or 0.5 everywhere: the penalty is (2 - 1)^2 = 1 and (0.5 - 1)^2 = 0.25
    assert gradient_penalty(_linear_critic(2.0), real, fake, g).item() == pytest.approx(
        1.0, rel=1e-5
    )
    assert gradient_penalty(_linear_critic(0.5), real, fake, g).item() == pytest.approx(
        0.25, rel=1e-5
    )
    # a non-linear critic, f = sum x^2 / 2 (gradient x): positive, and it trains the critic
    square = lambda x: 0.5 * x.pow(2).flatten(1).sum(1)  # noqa: E731
    assert gradient_penalty(square, real, fake, g).item() > 0.1
    critic = _linear_critic(3.0)
    gradient_penalty(critic, real, fake, g).backward()
    assert critic[1].weight.grad.norm() > 0  # differentiable: the critic learns from it


def test_gradient_penalty_is_taken_between_real_and_fake_items():
    """With f(x) = ||x||^2 / 2 the gradient at x_hat is x_hat itself: its norm reveals x_hat."""
    real = torch.full((500, 1, 8, 8), 1.0 / 8)  # ||real|| = 1
    fake = torch.full((500, 1, 8, 8), 3.0 / 8)  # ||fake|| = 3
    square = lambda x: 0.5 * x.pow(2).flatten(1).sum(1)  # noqa: E731
    gp = gradient_penalty(square, real, fake, torch.Generator().manual_seed(3)).item()
    # ||x_hat|| = 1 + 2 (1 - e), e ~ U(0, 1): E (2 (1 - e))^2 = 4/3
    assert gp == pytest.approx(4 / 3, rel=0.1)


def tiny(**kw):
    settings = dict(z_dim=16, width=16, steps=60, batch_size=32, lr=5e-4, ema_decay=0.9,
                    progress=False, device="cpu")  # fmt: skip
    return WGANGP(**{"image_shape": (1, 8, 8), **settings, **kw})


def test_sampling_truncates_the_latent_by_bias():
    model = tiny()
    x, labels = model.sample(8, 0.5, torch.Generator().manual_seed(4))
    z = torch.randn(8, 16, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert torch.allclose(x, model.ema.eval()(0.5 * z), atol=1e-6)
    assert (labels == 0).all() and x.min() >= -1 and x.max() <= 1
    with pytest.raises(ValueError, match=r"bias must be a number in \(0, 1\]"):
        model.sample(8, 1.5, torch.Generator())


def test_a_short_run_on_the_digits_brings_the_samples_near_the_real_ones():
    train, ref = data.load_images("digits", "train"), metrics.reference("digits")
    model = tiny()

    def fid():
        x, _ = model.sample(300, 1.0, torch.Generator().manual_seed(5))
        return metrics.image_metrics(x, ref, metrics=("fid",))["fid"]

    before = fid()
    model.fit(train.x, train.y, torch.Generator().manual_seed(0))
    after = fid()
    assert after < before / 4, (before, after)
    assert len(model.losses) == 60 and model.losses[-1]["w"] > 0  # the critic tells them apart


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"image_shape": (1, 10, 10)}, "divisible by 4"),
        ({"betas": (0.0, 1.0)}, r"betas must be two numbers in \[0, 1\)"),
        ({"n_critic": 0}, r"n_critic must be an integer in \[1, inf\], got 0"),
        ({"lambda_gp": -1.0}, "lambda_gp must be a finite number >= 0"),
        ({"ema_decay": 1.0}, r"ema_decay must be in \[0, 1\)"),
    ],
)
def test_bad_settings_are_refused_naming_the_parameter(kw, message):
    with pytest.raises(ValueError, match=message):
        tiny(**kw)


def test_fit_refuses_images_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"x must be a tensor of shape \(N >= 1, 1, 8, 8\)"):
        tiny().fit(torch.zeros(2, 1, 28, 28), torch.zeros(2, dtype=torch.long), torch.Generator())


def test_mnist_sized_images_train_and_sample():
    x = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(6)) * 2 - 1
    model = tiny(image_shape=(1, 28, 28), width=4, z_dim=4, steps=1, batch_size=4, n_critic=1)
    model.fit(x, torch.zeros(8, dtype=torch.long), torch.Generator().manual_seed(0))
    assert model.sample(3, 0.7, torch.Generator().manual_seed(1))[0].shape == (3, 1, 28, 28)
