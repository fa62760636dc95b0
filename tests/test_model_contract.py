"""One contract for every generative model: seeded, saved and loaded exactly, its settings cover
every constructor argument, and it fine-tunes exactly when it says so (``finetunes``)."""

import inspect

import pytest
import torch

from mcollapse.models import ClassGaussianMixture, GenerativeModel
from mcollapse.models import stylegan2 as S
from mcollapse.models.ddpm import DDPM
from mcollapse.models.flow import NormalizingFlow
from mcollapse.models.ngram import NGramLM
from mcollapse.models.protocol import NOT_SETTINGS
from mcollapse.models.rectified_flow import RectifiedFlow
from mcollapse.models.transformer import TextTransformer
from mcollapse.models.vae import VAE
from mcollapse.models.wgan_gp import WGANGP

g = torch.Generator().manual_seed(0)
IMAGES = (torch.rand(16, 1, 8, 8, generator=g) * 2 - 1, torch.arange(16) % 2)
POINTS = (torch.randn(64, 2, generator=g), torch.zeros(64, dtype=torch.int64))
TOKENS = (torch.randint(0, 12, (16, 8), generator=g), torch.full((16,), 3))
PROMPTS = TOKENS[0][:, :3]

# (constructor, tiny keyword arguments, data, alternative values of the non-numeric arguments)
MODELS = {
    "ddpm": (DDPM, dict(image_shape=(1, 8, 8), num_classes=2, timesteps=10, width=8, steps=3,
                        batch_size=8, sample_steps=2), IMAGES,
             dict(image_shape=(1, 4, 4), schedule="linear", mults=(1,), sampler="ddpm")),
    "rectified_flow": (RectifiedFlow, dict(shape=(2,), hidden=8, layers=2, steps=3,
                                           batch_size=16, sample_steps=2), POINTS,
                       dict(shape=(3,), net="unet", mults=(1,), attention=False, sampler="heun")),
    "stylegan2": (S.StyleGAN2, dict(config=S.Config(resolution=8, z_dim=8, w_dim=8, channels=8),
                                    training=S.Training(steps=2, batch=4)), IMAGES,
                  dict(config=S.Config(channels=4), training=S.Training(steps=3))),
    "transformer": (TextTransformer, dict(vocab_size=12, context=8, prompts=PROMPTS, d_model=8,
                                          layers=1, heads=2, epochs_initial=1, epochs=1,
                                          batch_size=8), TOKENS,
                    dict(prompts=PROMPTS[:, :2], decoding="greedy")),
    "ngram": (NGramLM, dict(vocab_size=12, order=2, prompts=PROMPTS, length=5), TOKENS,
              dict(prompts=PROMPTS[:, :2])),
    "gaussian_mixture": (ClassGaussianMixture, dict(num_classes=2), IMAGES,
                         dict(clip=(-1.0, 1.0))),
    "wgan_gp": (WGANGP, dict(image_shape=(1, 8, 8), z_dim=4, width=4, steps=2, batch_size=4,
                             n_critic=2), IMAGES,
                dict(image_shape=(1, 4, 4), betas=(0.5, 0.99))),
    "flow": (NormalizingFlow, dict(shape=(1, 8, 8), depth=1, hidden=8, steps=3, batch_size=8),
             IMAGES, dict(shape=(1, 4, 4), scales=1)),
    "flow_points": (NormalizingFlow, dict(shape=(2,), depth=2, hidden=8, steps=3, batch_size=16),
                    POINTS, dict(shape=(3,))),
    "vae": (VAE, dict(image_shape=(1, 8, 8), latent=2, width=4, hidden=8, steps=3, batch_size=8,
                      weight_decay=0.01, dropout=0.1),
            IMAGES, dict(image_shape=(1, 4, 4))),
}  # fmt: skip
for cls, *_ in MODELS.values():
    cls.device_arg = "device" in inspect.signature(cls.__init__).parameters


def make(name, **change):
    cls, kwargs, _, _ = MODELS[name]
    kwargs = {**kwargs, **change}
    if cls.device_arg:
        kwargs["device"] = "cpu"
    return cls(**kwargs)


def fitted(name, seed=1, start=None):
    model = make(name)
    if start is not None:
        model.load_state_dict(start)
    model.fit(*MODELS[name][2], generator=torch.Generator().manual_seed(seed))
    return model


def draw(model, seed=2):
    return model.sample(6, 1.0, generator=torch.Generator().manual_seed(seed))


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("name", list(MODELS))
def test_same_seed_same_samples_and_an_exact_round_trip(name):
    model = fitted(name)
    assert isinstance(model, GenerativeModel)
    assert same(draw(model), draw(fitted(name)))  # the same seeds: the same model and samples
    loaded = make(name)
    loaded.load_state_dict(model.state_dict())
    assert same(draw(model), draw(loaded))
    assert not same(draw(model, 2), draw(model, 3))


@pytest.mark.parametrize("name", list(MODELS))
def test_settings_cover_every_constructor_argument(name):
    cls, kwargs, _, alternatives = MODELS[name]
    base = make(name).settings()
    params = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    assert base["model"] == cls.__name__
    assert set(base) - {"model"} == set(params) - set(NOT_SETTINGS)
    for p in set(params) - set(NOT_SETTINGS):
        value = alternatives.get(
            p, kwargs.get(p, inspect.signature(cls.__init__).parameters[p].default)
        )
        if p not in alternatives:
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue  # None-valued options: covered by the key check above
            value = value + 1 if isinstance(value, int) else (value * 0.5 or 0.5)
        try:
            other = make(name, **{p: value}).settings()
        except ValueError:
            continue  # an alternative this model refuses; the key check above still holds
        assert other != base, f"changing {p} does not change {name}'s settings()"


@pytest.mark.parametrize("name", list(MODELS))
def test_finetune_is_what_the_model_says(name):
    start = fitted(name, seed=5).state_dict()
    fresh, continued = fitted(name, seed=1), fitted(name, seed=1, start=start)
    starts_matter = not same(draw(fresh), draw(continued))
    assert starts_matter == make(name).finetunes
