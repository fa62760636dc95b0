"""The reference model fits what it is given, samples with the bias it is asked for, and round-trips."""

import pytest
import torch

from mcollapse.models import ClassGaussianMixture, GenerativeModel

MEAN = torch.tensor([1.0, -2.0])
COV = torch.tensor([[2.0, 0.6], [0.6, 1.0]])


def gen(seed):
    return torch.Generator().manual_seed(seed)


def gaussian(n, seed, mean=MEAN, cov=COV):
    z = torch.randn(n, len(mean), generator=gen(seed))
    return mean + z @ torch.linalg.cholesky(cov).T


def fitted_cov(model, c=0, j=0):
    chol = model.state_dict()["chol"][c, j].double()
    return chol @ chol.T


def test_is_a_generative_model():
    assert isinstance(ClassGaussianMixture(2), GenerativeModel)


def test_fit_recovers_mean_and_unbiased_covariance():
    x = gaussian(20_000, 0)
    model = ClassGaussianMixture(1, reg=1e-4)
    model.fit(x, torch.zeros(len(x), dtype=torch.int64), gen(1))
    state = model.state_dict()
    torch.testing.assert_close(state["means"][0, 0], x.mean(0), rtol=0, atol=1e-5)
    # components=1: exactly the unbiased sample covariance plus reg on the diagonal
    expected = torch.cov(x.T.double()) + 1e-4 * torch.eye(2, dtype=torch.float64)
    torch.testing.assert_close(fitted_cov(model), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(state["means"][0, 0], MEAN, rtol=0, atol=0.05)
    torch.testing.assert_close(fitted_cov(model).float(), COV, rtol=0, atol=0.06)


def test_em_recovers_two_components():
    a = gaussian(3000, 0, mean=torch.tensor([-5.0, 0.0]))
    b = gaussian(1000, 1, mean=torch.tensor([5.0, 0.0]))
    x = torch.cat([a, b])
    model = ClassGaussianMixture(1, components=2)
    model.fit(x, torch.zeros(len(x), dtype=torch.int64), gen(2))
    state = model.state_dict()
    order = state["means"][0, :, 0].argsort()
    torch.testing.assert_close(
        state["weights"][0, order].float(), torch.tensor([0.75, 0.25]), atol=0.01, rtol=0
    )
    torch.testing.assert_close(
        state["means"][0, order, 0], torch.tensor([-5.0, 5.0]), atol=0.1, rtol=0
    )
    # the same generator seed gives the same EM fit
    again = ClassGaussianMixture(1, components=2)
    again.fit(x, torch.zeros(len(x), dtype=torch.int64), gen(2))
    torch.testing.assert_close(again.state_dict()["means"], state["means"], rtol=0, atol=0)


def test_bias_scales_the_covariance_by_lambda():
    x = gaussian(5000, 0)
    model = ClassGaussianMixture(1)
    model.fit(x, torch.zeros(len(x), dtype=torch.int64), gen(0))
    mean = model.state_dict()["means"][0, 0]
    full, _ = model.sample(100_000, 1.0, gen(3))
    quarter, _ = model.sample(100_000, 0.25, gen(3))
    # same randomness: the deviations from the mean shrink by exactly sqrt(lambda)
    torch.testing.assert_close(quarter - mean, 0.5 * (full - mean), rtol=1e-5, atol=1e-5)
    ratio = torch.cov(quarter.T.double()) / fitted_cov(model)
    torch.testing.assert_close(
        ratio, torch.full((2, 2), 0.25, dtype=torch.float64), rtol=0.03, atol=0
    )


def test_state_dict_round_trips_through_torch_save(tmp_path):
    x = gaussian(600, 0).repeat(1, 8).reshape(600, 1, 4, 4) + 0.1 * torch.randn(
        600, 1, 4, 4, generator=gen(5)
    )
    y = torch.randint(0, 3, (600,), generator=gen(4))
    model = ClassGaussianMixture(3, components=2)
    model.fit(x, y, gen(6))
    torch.save(model.state_dict(), tmp_path / "model.pt")
    other = ClassGaussianMixture(3, components=2)
    other.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))
    xa, ya = model.sample(500, 0.7, gen(7))
    xb, yb = other.sample(500, 0.7, gen(7))
    assert xa.shape == (500, 1, 4, 4) and xa.dtype == torch.float32 and ya.dtype == torch.int64
    assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(xa, model.sample(500, 0.7, gen(8))[0])
    with pytest.raises(ValueError, match="state must be for num_classes=4"):
        ClassGaussianMixture(4, components=2).load_state_dict(model.state_dict())


def test_absent_class_is_never_sampled():
    x = gaussian(400, 0)
    y = torch.tensor([0, 2]).repeat(200)
    model = ClassGaussianMixture(4)
    model.fit(x, y, gen(0))
    _, labels = model.sample(20_000, 1.0, gen(1))
    assert set(labels.unique().tolist()) == {0, 2}
    assert model.state_dict()["priors"].tolist() == [0.5, 0.0, 0.5, 0.0]


def test_tiny_classes_get_a_single_regularised_component():
    x = torch.tensor([[3.0, 3.0], [0.0, 0.0], [1.0, 1.0], [2.0, 0.0], [0.0, 2.0]])
    y = torch.tensor([1, 0, 0, 0, 0])
    model = ClassGaussianMixture(2, components=4, reg=1e-4)
    model.fit(x, y, gen(0))
    state = model.state_dict()
    assert state["weights"][1].tolist() == [1.0, 0.0, 0.0, 0.0]
    torch.testing.assert_close(fitted_cov(model, c=1), 1e-4 * torch.eye(2, dtype=torch.float64))
    xs, ys = model.sample(2000, 1.0, gen(1))
    assert (xs[ys == 1] - torch.tensor([3.0, 3.0])).abs().max() < 0.1


def test_clip_is_respected():
    x = (2.0 * torch.randn(300, 1, 8, 8, generator=gen(0))).clamp(-1, 1)
    y = torch.zeros(300, dtype=torch.int64)
    clipped, plain = ClassGaussianMixture(1, clip=(-1, 1)), ClassGaussianMixture(1)
    clipped.fit(x, y, gen(1))
    plain.fit(x, y, gen(1))
    xs, _ = clipped.sample(500, 1.0, gen(2))
    assert xs.shape == (500, 1, 8, 8) and xs.min() >= -1 and xs.max() <= 1
    assert plain.sample(500, 1.0, gen(2))[0].abs().max() > 1  # so the clip did something


@pytest.mark.parametrize("bias", [0, 0.0, -0.5, 1.5, "x", None, True])
def test_bad_bias_is_rejected(bias):
    model = ClassGaussianMixture(1)
    model.fit(gaussian(10, 0), torch.zeros(10, dtype=torch.int64), gen(0))
    with pytest.raises(ValueError, match="bias must be a number in"):
        model.sample(10, bias, gen(1))


def test_bad_arguments_are_rejected():
    model = ClassGaussianMixture(2)
    with pytest.raises(RuntimeError, match="not fitted"):
        model.sample(10, 1.0, gen(0))
    with pytest.raises(ValueError, match="y must hold labels in"):
        model.fit(gaussian(10, 0), torch.full((10,), 2), gen(0))
    with pytest.raises(ValueError, match="y must be an int64 tensor"):
        model.fit(gaussian(10, 0), torch.zeros(9, dtype=torch.int64), gen(0))
    model.fit(gaussian(10, 0), torch.zeros(10, dtype=torch.int64), gen(0))
    with pytest.raises(ValueError, match="n must be an integer in"):
        model.sample(0, 1.0, gen(0))
    for name, kwargs in [
        ("num_classes", {"num_classes": 0}),
        ("components", {"num_classes": 1, "components": 0}),
        ("reg", {"num_classes": 1, "reg": 0}),
        ("clip", {"num_classes": 1, "clip": (1, -1)}),
    ]:
        with pytest.raises(ValueError, match=f"^{name} must"):
            ClassGaussianMixture(**kwargs)
