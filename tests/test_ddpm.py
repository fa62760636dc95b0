"""The DDPM: its forward process is the closed form, its sampler recovers a known Gaussian from the
exact noise predictor, guidance with w = 0 is the conditional model, and training really learns."""

import math

import pytest
import torch

from mcollapse.models.ddpm import (
    DDPM,
    NoiseSchedule,
    guidance_weight,
    guided_eps,
    sample_loop,
)
from mcollapse.models.unet import UNet


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_schedule_is_a_product_of_one_minus_beta_and_runs_from_signal_to_noise(kind):
    s = NoiseSchedule(500, kind)
    assert torch.allclose(s.abar, torch.cumprod(1 - s.betas, 0))
    assert s.abar[0] > 0.99 and s.abar[-1] < 1e-3
    assert (s.abar[1:] < s.abar[:-1]).all()


@pytest.mark.parametrize("t", [0, 50, 250, 499])
def test_forward_noising_has_the_closed_form_mean_and_variance(t):
    s = NoiseSchedule(500, "cosine")
    g = torch.Generator().manual_seed(t)
    x0 = torch.tensor([[-0.8, 0.1, 0.9]])
    n = 200_000
    eps = torch.randn(n, 3, generator=g)
    xt = s.noise(x0.expand(n, 3), torch.full((n,), t), eps)
    abar = s.abar[t].item()
    mean, var = math.sqrt(abar) * x0[0], 1 - abar
    se = math.sqrt(var / n)
    assert torch.allclose(xt.mean(0), mean, atol=5 * se)
    assert torch.allclose(xt.var(0), torch.full((3,), var), rtol=0.02)


def exact_eps(schedule, mu, sigma):
    """E[eps | x_t] when x_0 ~ N(mu, diag sigma^2): the perfect noise predictor."""

    def eps(x, t):
        a = schedule.abar[t].float().view(-1, 1)
        return (1 - a).sqrt() * (x - a.sqrt() * mu) / (a * sigma**2 + 1 - a)

    return eps


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_sampler_with_the_perfect_noise_predictor_recovers_the_gaussian(eta):
    s = NoiseSchedule(500, "cosine")
    mu, sigma = torch.tensor([0.5, -0.3]), torch.tensor([0.3, 0.8])
    spread = {}
    for steps in (20, 100, 500):
        g = torch.Generator().manual_seed(0)
        x = sample_loop(exact_eps(s, mu, sigma), (50_000, 2), s, steps, eta, g, clip=False)
        assert torch.allclose(x.mean(0), mu, atol=0.01)
        spread[steps] = (x.std(0) / sigma).min().item()
    # with every training step the sampler is exact; respacing to fewer steps under-disperses
    assert spread[500] == pytest.approx(1.0, abs=0.02)
    assert spread[20] < spread[100] < spread[500]


def test_sampler_with_a_wrong_predictor_does_not_recover_the_gaussian():
    """The check above can fail: a predictor for another spread gives another spread."""
    s = NoiseSchedule(500, "linear")
    mu, sigma = torch.tensor([0.5, -0.3]), torch.tensor([0.3, 0.8])
    g = torch.Generator().manual_seed(0)
    x = sample_loop(exact_eps(s, mu, 0.5 * sigma), (20_000, 2), s, 100, 0.0, g, clip=False)
    assert (x.std(0) < 0.6 * sigma).all()


def test_guidance_weight_zero_is_the_conditional_model_and_lambda_maps_to_w():
    net = UNet(1, 3, width=16).eval()
    for p in net.parameters():  # non-zero outputs everywhere (the last layers start at zero)
        torch.nn.init.normal_(p, std=0.05, generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(4, 1, 8, 8, generator=g), torch.tensor([3, 30, 300, 400])
    y = torch.tensor([0, 1, 2, 1])
    with torch.no_grad():
        cond, uncond = net(x, t, y), net(x, t, torch.full_like(y, 3))
        assert torch.equal(guided_eps(net, x, t, y, 0.0), cond)
        assert not torch.allclose(cond, uncond)
        # the batched conditional + unconditional path agrees with the two separate passes
        assert torch.allclose(guided_eps(net, x, t, y, 1.0), 2 * cond - uncond, atol=1e-5)
    assert guidance_weight(1.0) == 0.0 and guidance_weight(0.5) == 1.0
    assert guidance_weight(0.8) == pytest.approx(0.25)
    with pytest.raises(ValueError, match=r"bias must be a number in \(0, 1\], got 0"):
        guidance_weight(0)


@pytest.mark.parametrize(("size", "mults"), [(8, (1, 2)), (16, (1, 2, 2)), (28, (1, 2, 2))])
def test_unet_keeps_the_image_shape(size, mults):
    net = UNet(3, 10, width=16, mults=mults)
    x = torch.zeros(2, 3, size, size)
    assert net(x, torch.tensor([0.0, 10.0]), torch.tensor([1, 10])).shape == x.shape


def test_unet_refuses_a_size_its_levels_cannot_halve():
    with pytest.raises(ValueError, match="divisible by 4"):
        UNet(1, 10, width=16, mults=(1, 2, 2))(torch.zeros(1, 1, 10, 10), torch.zeros(1))


def tiny(**kw):
    settings = dict(width=16, steps=300, batch_size=16, lr=3e-3, warmup=10, timesteps=100,
                    sample_steps=10, progress=False, device="cpu")  # fmt: skip
    return DDPM((1, 8, 8), 3, **{**settings, **kw})


def few_images():
    g = torch.Generator().manual_seed(0)
    return torch.rand(6, 1, 8, 8, generator=g) * 2 - 1, torch.tensor([0, 0, 1, 1, 2, 2])


def fixed_loss(model, x, y):
    """The loss on a fixed grid of times and noises, so before and after are comparable."""
    g = torch.Generator().manual_seed(7)
    xs, ys = x.repeat(40, 1, 1, 1), y.repeat(40)
    t = torch.randint(100, (len(xs),), generator=g)
    eps = torch.randn(xs.shape, generator=g)
    with torch.no_grad():
        return model.loss(xs, ys, t, eps, torch.zeros(len(xs), dtype=torch.bool)).item()


def test_a_tiny_overfit_run_lowers_the_loss_by_a_large_factor():
    x, y = few_images()
    model = tiny()
    before = fixed_loss(model, x, y)
    model.fit(x, y, torch.Generator().manual_seed(0))
    after = fixed_loss(model, x, y)
    assert after < before / 5, (before, after)


def test_training_and_sampling_are_deterministic_and_state_round_trips():
    x, y = few_images()
    a, b = tiny(steps=20), tiny(steps=20)
    a.fit(x, y, torch.Generator().manual_seed(1))
    b.fit(x, y, torch.Generator().manual_seed(1))
    xa, ya = a.sample(5, 0.8, torch.Generator().manual_seed(2))
    xb, yb = b.sample(5, 0.8, torch.Generator().manual_seed(2))
    assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert xa.shape == (5, 1, 8, 8) and xa.min() >= -1 and xa.max() <= 1
    c = tiny(steps=20)
    c.load_state_dict(a.state_dict())
    assert torch.equal(c.sample(5, 0.8, torch.Generator().manual_seed(2))[0], xa)
    c.load_state_dict(torch.load(_saved(a.state_dict()), weights_only=True))


def _saved(state):
    import io

    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return buf


def test_samples_carry_labels_from_the_training_classes_only():
    x, y = few_images()
    model = tiny(steps=2)
    model.fit(x[:4], y[:4], torch.Generator().manual_seed(0))  # classes 0 and 1 only
    _, labels = model.sample(200, 1.0, torch.Generator().manual_seed(0))
    assert set(labels.tolist()) == {0, 1}
    assert 70 < (labels == 0).sum() < 130


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"sampler": "euler"}, "sampler must be one of 'ddim', 'ddpm'; got 'euler'"),
        ({"schedule": "sqrt"}, "schedule must be one of 'linear', 'cosine'; got 'sqrt'"),
        ({"sample_steps": 101}, r"sample_steps must be an integer in \[1, 100\], got 101"),
        ({"ema_decay": 1.0}, r"ema_decay must be in \[0, 1\), got 1.0"),
        ({"steps": 0}, r"steps must be an integer in \[1, inf\], got 0"),
    ],
)
def test_bad_settings_are_refused_naming_the_parameter(kw, message):
    with pytest.raises(ValueError, match=message):
        tiny(**kw)


def test_fit_refuses_images_of_the_wrong_shape_or_labels():
    model = tiny()
    with pytest.raises(ValueError, match=r"x must be a tensor of shape \(N, 1, 8, 8\)"):
        model.fit(torch.zeros(2, 1, 16, 16), torch.zeros(2, dtype=torch.long), torch.Generator())
    with pytest.raises(ValueError, match=r"y must hold labels in \[0, 2\]"):
        model.fit(torch.zeros(2, 1, 8, 8), torch.tensor([0, 3]), torch.Generator())


def test_on_step_sees_every_step_and_can_stop_training_early():
    x, y = few_images()
    seen = []
    model = tiny(steps=20)
    model.fit(x, y, torch.Generator().manual_seed(1), on_step=lambda s: seen.append(s) or s == 7)
    assert seen == list(range(1, 8)) and len(model.losses) == 7
