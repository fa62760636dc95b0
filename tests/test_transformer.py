"""The small causal transformer: it learns, decodes consistently, and keeps the protocol."""

import pytest
import torch

from mcollapse import text
from mcollapse.models import GenerativeModel
from mcollapse.models.transformer import TextTransformer


def _tiny(**kw):
    args = dict(vocab_size=12, context=16, d_model=32, layers=2, heads=2, batch_size=8, lr=3e-3)
    return TextTransformer(**{**args, **kw})


def _data(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(2, 12, (n, 16), generator=g), torch.full((n,), 4)


def test_tiny_overfit_drives_the_loss_down_by_a_large_factor():
    x, y = _data()
    model = _tiny(epochs_initial=150)
    assert isinstance(model, GenerativeModel)
    model.fit(x, y, torch.Generator().manual_seed(0))
    assert model.losses[0] > 2.0  # about log 10 at the start
    assert model.losses[-1] < model.losses[0] / 20
    assert text.perplexity(model, x, y) < 1.2
    logp = model.token_log_probs(x)  # the prompt (first 4 tokens) is context, never trained on
    assert logp[:, :3].exp().mean() < 0.5 < 0.9 < logp[:, 3:].exp().mean()


def test_cached_decoding_matches_the_full_forward():
    x, y = _data()
    model = _tiny(epochs_initial=5, prompts=x[:, :4])
    model.fit(x, y, torch.Generator().manual_seed(0))
    prompt = x[:3, :4]
    logits, caches = model.net(prompt)
    nxt = x[:3, 4:5]
    step, _ = model._step(nxt, caches, 4)
    full, _ = model.net(torch.cat([prompt, nxt], 1))
    assert torch.allclose(step[:, -1], full[:, -1], atol=1e-5)


@pytest.mark.parametrize("decoding", ["sample", "top_p", "beam"])
def test_sampling_shapes_determinism_and_prompts(decoding):
    x, y = _data()
    model = _tiny(epochs_initial=3, prompts=x[:5, :4], decoding=decoding, beams=3)
    model.fit(x, y, torch.Generator().manual_seed(0))
    a = model.sample(7, 0.9, torch.Generator().manual_seed(1))
    b = model.sample(7, 0.9, torch.Generator().manual_seed(1))
    assert a[0].shape == (7, 16) and (a[1] == 4).all() and a[0].dtype == torch.int64
    assert torch.equal(a[0], b[0])
    assert torch.equal(a[0][:, :4], x[torch.arange(7) % 5, :4])


def test_beam_search_finds_likelier_continuations_than_sampling():
    x, y = _data()
    model = _tiny(epochs_initial=20, prompts=x[:, :4], decoding="beam", beams=4)
    model.fit(x, y, torch.Generator().manual_seed(0))
    beam = model.sample(16, 1.0, torch.Generator().manual_seed(0))
    model.decoding = "sample"
    drawn = model.sample(16, 1.0, torch.Generator().manual_seed(0))
    assert text.perplexity(model, *beam) < text.perplexity(model, *drawn)


def test_finetune_continues_from_loaded_weights_with_its_own_epochs():
    x, y = _data()
    model = _tiny(epochs_initial=30, epochs=2)
    model.fit(x, y, torch.Generator().manual_seed(0))
    again = _tiny(epochs_initial=30, epochs=2)
    again.load_state_dict(model.state_dict())
    assert torch.allclose(again.token_log_probs(x), model.token_log_probs(x))
    again.fit(x, y, torch.Generator().manual_seed(1))
    assert len(again.losses) == 2 and again.losses[0] < 0.85 * model.losses[0]


def test_same_seed_same_weights_and_global_rng_untouched():
    x, y = _data()
    state = torch.random.get_rng_state()
    a, b = _tiny(epochs_initial=2), _tiny(epochs_initial=2)
    a.fit(x, y, torch.Generator().manual_seed(3))
    b.fit(x, y, torch.Generator().manual_seed(3))
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert torch.equal(torch.random.get_rng_state(), state)


def test_dropout_is_reproducible_leaves_global_rng_alone_and_is_off_when_scoring():
    x, y = _data()
    state = torch.random.get_rng_state()
    a, b = _tiny(epochs_initial=2, dropout=0.3), _tiny(epochs_initial=2, dropout=0.3)
    a.fit(x, y, torch.Generator().manual_seed(3))
    b.fit(x, y, torch.Generator().manual_seed(3))
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a.token_log_probs(x), a.token_log_probs(x))  # no dropout when scoring
    plain = _tiny(epochs_initial=2)
    plain.fit(x, y, torch.Generator().manual_seed(3))
    assert not torch.equal(plain.state_dict()["tok.weight"], a.state_dict()["tok.weight"])
    a.net.train()  # in training mode the same input gives different outputs
    assert not torch.equal(a.net(x)[0], a.net(x)[0])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"d_model": 30, "heads": 4}, "divisible"),
        ({"decoding": "greedy"}, "decoding must be one of"),
        ({"prompts": torch.zeros(3, 16, dtype=torch.int64)}, "prompts"),
        ({"lr": 0}, "lr"),
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": -0.1}, "dropout"),
    ],
)
def test_bad_parameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _tiny(**kwargs)


def test_bad_data_and_missing_weights_raise():
    model = _tiny()
    with pytest.raises(ValueError, match="call fit"):
        model.sample(2, 1.0, torch.Generator())
    with pytest.raises(ValueError, match="token ids"):
        model.fit(torch.full((2, 8), 12), torch.zeros(2), torch.Generator())
    with pytest.raises(ValueError, match="context"):
        model.fit(torch.zeros(2, 17, dtype=torch.int64), torch.zeros(2), torch.Generator())


def test_nucleus_draws_from_the_smallest_head_with_mass_p():
    from mcollapse.models.transformer import _nucleus_draw

    probs = torch.tensor([[0.5, 0.05, 0.3, 0.15], [0.1, 0.2, 0.3, 0.4]]).repeat(5_000, 1)
    ids = _nucleus_draw(probs, 0.75, torch.Generator().manual_seed(0), k=2)  # row 2 needs 3
    share = [torch.bincount(ids[i::2, 0], minlength=4).double() / 5_000 for i in (0, 1)]
    assert torch.allclose(share[0], torch.tensor([5 / 8, 0, 3 / 8, 0]).double(), atol=0.03)
    assert torch.allclose(share[1], torch.tensor([0, 2 / 9, 3 / 9, 4 / 9]).double(), atol=0.03)


def test_categorical_draws_in_proportion_to_the_weights():
    from mcollapse.models.transformer import _categorical

    weights = torch.tensor([[0.0, 1.0, 3.0, 0.0]]).repeat(20_000, 1)
    draws = _categorical(weights, torch.Generator().manual_seed(0))[:, 0]
    assert set(draws.tolist()) == {1, 2}
    assert abs((draws == 2).double().mean().item() - 0.75) < 0.015
