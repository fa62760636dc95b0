"""The VAE: its KL term is the closed form and never negative, its held-out ELBO improves with
training on the digits, ``encode`` gives the latent means, and bias scales the latent."""

import pytest
import torch

from mcollapse import data
from mcollapse.models.vae import VAE


def tiny(**kw):
    settings = dict(latent=4, width=16, hidden=64, steps=300, batch_size=64, lr=2e-3,
                    progress=False, device="cpu")  # fmt: skip
    return VAE(**{"image_shape": (1, 8, 8), **settings, **kw})


def images(n=40, seed=0):
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_kl_is_the_closed_form_and_never_negative():
    model = tiny()
    x = images()
    parts = model.elbo(x)
    assert (parts["kl"] >= 0).all()
    assert torch.allclose(parts["elbo"], parts["reconstruction"] - parts["kl"])
    # against torch.distributions on the same means and variances
    with torch.no_grad():
        mu, logvar = model.encoder(x)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    assert torch.allclose(parts["kl"], torch.distributions.kl_divergence(q, p).sum(1), atol=1e-5)
    # zero exactly when q(z | x) is the prior: the encoder's last layer outputs 0
    with torch.no_grad():
        model.encoder.body[-1].weight.zero_()
        model.encoder.body[-1].bias.zero_()
    assert model.elbo(x)["kl"].abs().max() == 0


def test_reconstruction_is_the_bernoulli_log_likelihood_of_pixels_in_0_1():
    model = tiny()
    x = images(5)
    with torch.no_grad():
        model.encoder.body[-1].weight.zero_()  # q = N(0, I) for every x
        model.encoder.body[-1].bias.zero_()
        z = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
        p = torch.sigmoid(model.decoder(z))
    t = (x + 1) / 2
    expected = (t * p.log() + (1 - t) * (1 - p).log()).flatten(1).sum(1)
    assert torch.allclose(model.elbo(x)["reconstruction"], expected, atol=1e-4)


def test_held_out_elbo_improves_with_training_on_the_digits():
    train, test = data.load_images("digits", "train"), data.load_images("digits", "test")
    model = tiny()
    before = model.elbo(test.x)
    model.fit(train.x, train.y, torch.Generator().manual_seed(0))
    after = model.elbo(test.x)
    assert after["elbo"].mean() > before["elbo"].mean() + 10, (before["elbo"].mean(), after)
    assert (after["kl"] >= 0).all() and after["kl"].mean() > 0.2  # the latent is in use
    assert torch.equal(model.elbo(test.x)["elbo"], after["elbo"])  # seed 0 by default
    mu = model.encode(test.x)
    assert mu.shape == (len(test.x), 4)
    assert mu.std(0).mean() > 0.1  # different digits, different latent means


def test_sampling_decodes_bias_times_a_standard_normal():
    model = tiny()
    x, labels = model.sample(6, 0.5, torch.Generator().manual_seed(3))
    z = torch.randn(6, 4, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = 2 * torch.sigmoid(model.decoder(0.5 * z)) - 1
    assert torch.allclose(x, expected, atol=1e-6)
    assert (labels == 0).all() and x.min() >= -1 and x.max() <= 1
    with pytest.raises(ValueError, match=r"bias must be a number in \(0, 1\]"):
        model.sample(6, -1.0, torch.Generator())


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"image_shape": (1, 6, 6)}, "divisible by 4"),
        ({"latent": 0}, r"latent must be an integer in \[1, inf\], got 0"),
        ({"lr": 0.0}, "lr must be a finite number > 0"),
    ],
)
def test_bad_settings_are_refused_naming_the_parameter(kw, message):
    with pytest.raises(ValueError, match=message):
        tiny(**kw)


def test_bad_calls_raise():
    model = tiny()
    with pytest.raises(ValueError, match=r"x must be a tensor of shape \(N >= 1, 1, 8, 8\)"):
        model.encode(torch.zeros(2, 1, 28, 28))
    with pytest.raises(ValueError, match="keys decoder, encoder"):
        model.load_state_dict({"encoder": {}})


def test_mnist_sized_images_train_encode_and_sample():
    x = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(6)) * 2 - 1
    model = tiny(image_shape=(1, 28, 28), latent=20, width=4, hidden=8, steps=1, batch_size=4)
    model.fit(x, torch.zeros(8, dtype=torch.long), torch.Generator().manual_seed(0))
    assert model.encode(x).shape == (8, 20)
    assert model.sample(3, 1.0, torch.Generator().manual_seed(1))[0].shape == (3, 1, 28, 28)


def test_regularisers_are_off_by_default_and_leave_the_settings_as_before():
    settings = tiny().settings()
    assert "weight_decay" not in settings and "dropout" not in settings  # old run hashes hold
    assert tiny(weight_decay=0.01).settings()["weight_decay"] == 0.01
    assert tiny(dropout=0.2).settings()["dropout"] == 0.2
    assert not any(isinstance(m, torch.nn.Dropout) for m in tiny().encoder.modules())
    with pytest.raises(ValueError, match=r"dropout must be a number in \[0, 1\)"):
        tiny(dropout=1.0)
    with pytest.raises(ValueError, match="weight_decay must be a finite number >= 0"):
        tiny(weight_decay=-1.0)


def test_weight_decay_shrinks_the_weights_and_dropout_is_seeded():
    x = images(64)

    def norm(model):
        return sum(p.pow(2).sum() for p in model._parameters()).sqrt()

    plain, decayed = tiny(steps=100), tiny(steps=100, weight_decay=5.0)
    for m in (plain, decayed):
        m.fit(x, x[:, 0, 0, 0].long(), torch.Generator().manual_seed(0))
    assert norm(decayed) < 0.9 * norm(plain)
    outs = []
    for _ in range(2):
        m = tiny(steps=20, dropout=0.3)
        torch.manual_seed(123 + len(outs))  # the global RNG must not matter
        m.fit(x, x[:, 0, 0, 0].long(), torch.Generator().manual_seed(0))
        outs.append(m.sample(4, 1.0, torch.Generator().manual_seed(1))[0])
    assert torch.equal(outs[0], outs[1])
    no_drop = tiny(steps=20)
    no_drop.fit(x, x[:, 0, 0, 0].long(), torch.Generator().manual_seed(0))
    assert not torch.equal(outs[0], no_drop.sample(4, 1.0, torch.Generator().manual_seed(1))[0])
