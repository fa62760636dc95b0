"""Rectified flow: the interpolation and its target, the ODE solvers against exact solutions,
inversion then generation returning the input for a trained 2-D flow, straightness, persistence."""

import io
import math

import pytest
import torch
from torch import nn

from mcollapse import data
from mcollapse.models.rectified_flow import RectifiedFlow, interpolate


class _Field(nn.Module):
    """A known velocity field in place of the network: v(x, t) = fn(x, t)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x, t, y=None):
        return self.fn(x, t)


def _with_field(fn, **kw):
    model = RectifiedFlow((2,), progress=False, device="cpu", **kw)
    model.ema = _Field(fn)
    return model


@pytest.fixture(scope="module")
def moons_flow():
    g = torch.Generator().manual_seed(0)
    x, y = data.toy("moons").sample(2000, g)
    model = RectifiedFlow((2,), hidden=64, layers=3, steps=1500, batch_size=256, lr=3e-3,
                          progress=False, device="cpu")  # fmt: skip
    model.fit(x, y, g)
    return model, x


def test_interpolation_and_target_velocity():
    g = torch.Generator().manual_seed(1)
    x0, x1 = torch.randn(5, 2, generator=g), torch.randn(5, 2, generator=g)
    t = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0])
    xt, target = interpolate(x0, x1, t)
    assert torch.allclose(xt[0], x0[0]) and torch.allclose(xt[-1], x1[-1])
    assert torch.allclose(xt[2], (x0[2] + x1[2]) / 2)
    assert torch.allclose(target, x1 - x0)
    h = 1e-3  # the target is the time derivative of the path
    ahead, _ = interpolate(x0, x1, t.clamp(max=1 - h) + h)
    back, _ = interpolate(x0, x1, t.clamp(max=1 - h))
    assert torch.allclose((ahead - back) / h, target, atol=1e-3)
    images = torch.randn(3, 1, 4, 4, generator=g)
    xt, _ = interpolate(images, 2 * images, torch.tensor([0.0, 0.5, 1.0]))
    assert torch.allclose(xt[1], 1.5 * images[1])


def test_loss_is_zero_for_the_true_velocity_of_a_deterministic_pair():
    shift = torch.tensor([1.0, -2.0])
    model = RectifiedFlow((2,), progress=False, device="cpu")
    model.net = _Field(lambda x, t: shift.expand_as(x))
    x0 = torch.randn(8, 2, generator=torch.Generator().manual_seed(2))
    assert model.loss(x0, x0 + shift, torch.rand(8)).item() == pytest.approx(0.0, abs=1e-10)
    assert model.loss(x0, x0 - shift, torch.rand(8)).item() == pytest.approx(20.0, rel=1e-5)


def test_euler_is_exact_on_straight_paths_and_heun_beats_euler_on_curved_ones():
    shift = torch.tensor([0.5, 3.0])
    straight = _with_field(lambda x, t: shift.expand_as(x))
    z = torch.randn(10, 2, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(straight.generate(z, steps=1), z + shift, atol=1e-6)
    assert torch.allclose(straight.invert(z + shift, steps=1), z, atol=1e-6)
    growth = _with_field(lambda x, t: x)  # dx/dt = x: x(1) = e x(0)
    exact = math.e * z
    euler = (growth.generate(z, 8, "euler") - exact).abs().max()
    heun = (growth.generate(z, 8, "heun") - exact).abs().max()
    assert heun < euler / 10
    assert torch.allclose(growth.generate(z, 400, "heun"), exact, atol=1e-4)
    path = growth.trajectories(z, steps=4)
    assert path.shape == (5, 10, 2) and torch.allclose(path[0], z)


def test_stochastic_inversion_adds_small_noise_and_needs_a_generator():
    field = _with_field(lambda x, t: -x)
    x = torch.randn(500, 2, generator=torch.Generator().manual_seed(4))
    plain = field.invert(x, 20)
    noisy = field.invert(x, 20, stochastic=True, generator=torch.Generator().manual_seed(0))
    again = field.invert(x, 20, stochastic=True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(noisy, again)
    assert 0 < (noisy - plain).abs().max() < 0.05  # 1e-3 sqrt(dt) noise, +-10% steps
    with pytest.raises(ValueError, match="generator"):
        field.ode(x, 1.0, 0.0, 4, noise=1e-3)
    with pytest.raises(ValueError, match="jitter"):
        field.ode(x, 1.0, 0.0, 4, jitter=1.5, generator=torch.Generator())


def test_inversion_then_generation_returns_the_input(moons_flow):
    model, x = moons_flow
    real = x[:300]
    z = model.invert(real, steps=100)
    assert z.std() > 0.5  # really mapped back to noise, not left in place
    back = model.generate(z, steps=100)
    assert (back - real).norm(dim=1).mean() < 0.05
    z_noisy = model.invert(real, 100, stochastic=True, generator=torch.Generator().manual_seed(1))
    assert (model.generate(z_noisy, steps=100) - real).norm(dim=1).mean() < 0.1


def test_trained_flow_samples_the_data_and_reflow_straightens_it(moons_flow):
    model, x = moons_flow
    g = torch.Generator().manual_seed(5)
    samples, labels = model.sample(1000, 1.0, g)
    assert samples.shape == (1000, 2) and (labels == 0).all()
    assert (samples.mean(0) - x.mean(0)).abs().max() < 0.15
    z = torch.randn(400, 2, generator=g)
    before = model.straightness(z)
    pairs = model.generate_pairs(2000, g, steps=50)
    reflowed = RectifiedFlow((2,), hidden=64, layers=3, lr=3e-3, progress=False, device="cpu")
    reflowed.load_state_dict(model.state_dict())
    reflowed.train_pairs(*pairs, steps=600, generator=g)
    assert reflowed.straightness(z) < before / 3
    target = model.generate(z, 100)
    one_step = [(m.generate(z, 1) - target).norm(dim=1).mean() for m in (model, reflowed)]
    assert one_step[1] < one_step[0] / 2  # few-step sampling: reflow's reason to exist


def test_determinism_and_state_dict_round_trip():
    g = torch.Generator().manual_seed(6)
    x, y = data.toy("moons").sample(200, g)

    def trained(seed):
        m = RectifiedFlow((2,), hidden=16, layers=2, steps=20, progress=False, device="cpu")
        m.fit(x, y, torch.Generator().manual_seed(seed))
        return m

    a, b = trained(0), trained(0)
    sa = a.sample(50, 1.0, torch.Generator().manual_seed(9))[0]
    assert torch.equal(sa, b.sample(50, 1.0, torch.Generator().manual_seed(9))[0])
    assert not torch.equal(sa, trained(1).sample(50, 1.0, torch.Generator().manual_seed(9))[0])
    buffer = io.BytesIO()
    torch.save(a.state_dict(), buffer)
    buffer.seek(0)
    c = RectifiedFlow((2,), hidden=16, layers=2, progress=False, device="cpu", init_seed=3)
    c.load_state_dict(torch.load(buffer, weights_only=True))
    assert torch.equal(sa, c.sample(50, 1.0, torch.Generator().manual_seed(9))[0])
    with pytest.raises(ValueError, match="keys"):
        c.load_state_dict({"net": {}})


def test_unet_flow_on_images_trains_and_samples():
    g = torch.Generator().manual_seed(7)
    x = torch.rand(16, 1, 8, 8, generator=g) * 2 - 1
    model = RectifiedFlow((1, 8, 8), net="unet", width=8, mults=(1, 2), blocks=1, steps=3,
                          batch_size=4, sample_steps=2, ema_decay=0.9, progress=False,
                          device="cpu")  # fmt: skip
    model.fit(x, torch.zeros(16, dtype=torch.int64), g)
    assert len(model.losses) == 3
    samples, _ = model.sample(5, 1.0, g)
    assert samples.shape == (5, 1, 8, 8) and torch.isfinite(samples).all()
    assert model.invert(samples, 2).shape == (5, 1, 8, 8)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"net": "resnet"}, "net"),
        ({"shape": (1, 8, 8)}, "shape"),
        ({"net": "unet", "shape": (2,)}, "shape"),
        ({"steps": 0}, "steps"),
        ({"ema_decay": 1.0}, "ema_decay"),
        ({"sampler": "rk45"}, "sampler"),
        ({"lr": -1.0}, "lr"),
    ],
)
def test_bad_parameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RectifiedFlow(**{"progress": False, **kwargs})


def test_bad_calls_raise():
    model = RectifiedFlow((2,), progress=False, device="cpu")
    with pytest.raises(ValueError, match="bias"):
        model.sample(4, 0.5, torch.Generator())
    with pytest.raises(ValueError, match="x0 and x1"):
        model.train_pairs(torch.zeros(3, 2), torch.zeros(4, 2), 1, torch.Generator())
    with pytest.raises(ValueError, match="shape"):
        model.generate(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="method"):
        model.generate(torch.zeros(3, 2), 2, "rk4")


def test_on_step_sees_every_step_and_can_stop_training_early():
    seen = []
    model = RectifiedFlow((2,), hidden=8, layers=1, steps=20, batch_size=8, progress=False,
                          device="cpu")  # fmt: skip
    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(0))
    model.fit(x, None, torch.Generator().manual_seed(1), on_step=lambda s: seen.append(s) or s == 5)
    assert seen == [1, 2, 3, 4, 5] and len(model.losses) == 5
