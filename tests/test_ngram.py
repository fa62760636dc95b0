"""The smoothed n-gram reference model: proper distributions, scoring, sampling, persistence."""

import numpy as np
import pytest
import torch

from mcollapse import text
from mcollapse.models.ngram import NGramLM


def _data(n=30, length=12, vocab=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(2, vocab, (n, length), generator=g), torch.full((n,), 3)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_conditional_probabilities_sum_to_one(order):
    x, y = _data()
    model = NGramLM(20, order=order)
    model.fit(x, y, torch.Generator())
    histories = [[], [5], x[0, :5].tolist(), [0, 1, 1], x[3, 2:9].tolist()]
    for h in histories:
        p = model.distribution(h)
        assert p.shape == (20,) and np.all(p > 0)
        assert p.sum() == pytest.approx(1.0, abs=1e-12)


def test_scores_are_the_log_of_the_distribution_and_beat_uniform_on_training_data():
    x, y = _data()
    model = NGramLM(20, order=3)
    model.fit(x, y, torch.Generator())
    logp = model.token_log_probs(x[:2])
    assert logp.shape == (2, 11)
    assert logp[1, 6].item() == pytest.approx(
        np.log(model.distribution(x[1, 5:7].tolist())[x[1, 7]])
    )
    assert text.perplexity(model, x, y) < 20 / 2


def test_repetitive_text_is_learned_and_generated():
    x = torch.tensor([[2, 3, 4, 5] * 5] * 8)
    y = torch.full((8,), 2)
    model = NGramLM(10, order=2, discount=0.1, prompts=x[:, :2], length=8)
    model.fit(x, y, torch.Generator())
    assert text.perplexity(model, x, y) < 1.2
    s, sy = model.sample(5, 0.5, torch.Generator().manual_seed(0))
    assert s.shape == (5, 10) and (sy == 2).all()
    assert (s[:, 2:6] == torch.tensor([4, 5, 2, 3])).float().mean() > 0.9


def test_sampling_is_deterministic_and_state_round_trips():
    x, y = _data()
    model = NGramLM(20, order=3, prompts=x[:, :3], length=6)
    model.fit(x, y, torch.Generator())
    a = model.sample(7, 1.0, torch.Generator().manual_seed(4))
    b = model.sample(7, 1.0, torch.Generator().manual_seed(4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[0][:, :3], x[:7, :3])
    other = NGramLM(20, order=3)
    other.load_state_dict(model.state_dict())
    assert torch.allclose(other.token_log_probs(x), model.token_log_probs(x))


def test_bad_parameters_and_missing_state_raise():
    with pytest.raises(ValueError, match="discount"):
        NGramLM(10, discount=1.0)
    with pytest.raises(ValueError, match="order"):
        NGramLM(10, order=0)
    model = NGramLM(10)
    with pytest.raises(ValueError, match="call fit"):
        model.distribution([1])
    with pytest.raises(ValueError, match="token ids"):
        model.fit(torch.full((2, 4), 10), torch.zeros(2), torch.Generator())
    model.fit(torch.ones(2, 4, dtype=torch.int64), torch.zeros(2), torch.Generator())
    with pytest.raises(ValueError, match="prompts"):
        model.sample(3, 1.0, torch.Generator())
    with pytest.raises(ValueError, match="bias"):
        model.sample(3, 0.0, torch.Generator())
