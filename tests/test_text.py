"""Corpora, tokeniser, windows and perplexity helpers of mcollapse.text."""

import math

import pytest
import torch

from mcollapse import text


class Uniform:
    """A language model that knows nothing: every next token has probability 1/V."""

    def __init__(self, vocab_size):
        self.vocab_size = vocab_size

    def token_log_probs(self, x):
        return torch.full((len(x), x.shape[1] - 1), -math.log(self.vocab_size), dtype=torch.float64)


def test_uniform_model_perplexity_is_the_vocabulary_size():
    x = torch.randint(0, 50, (7, 12), generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 3, 5, 0, 2, 11])
    assert text.perplexity(Uniform(50), x, y) == pytest.approx(50, rel=1e-12)
    assert torch.allclose(
        text.sequence_nll(Uniform(50), x, y), torch.full((7,), math.log(50.0), dtype=torch.float64)
    )


def test_perplexity_only_scores_tokens_after_the_prompt():
    class Knows:  # log prob 0 on the first 3 predictions, -1 on the rest
        def token_log_probs(self, x):
            out = -torch.ones(len(x), x.shape[1] - 1)
            out[:, :3] = 0
            return out

    x = torch.zeros(2, 10, dtype=torch.int64)
    assert text.perplexity(Knows(), x, torch.tensor([4, 4])) == pytest.approx(math.e)
    assert text.perplexity(Knows(), x, torch.tensor([0, 0])) == pytest.approx(math.exp(6 / 9))


def test_pydoc_corpus_split_is_the_same_every_time_and_by_document():
    a, b = text.load_corpus("pydoc"), text.load_corpus("pydoc")
    assert a == b
    train, test = {t for t, _ in a.train}, {t for t, _ in a.test}
    assert not train & test and len(train) > 50 and len(test) >= 3
    words = [sum(len(s.split()) for _, s in part) for part in (a.train, a.test)]
    assert 40_000 < sum(words) < 100_000
    assert 0.08 < words[1] / sum(words) <= 0.1


def test_wikitext2_loader_reads_articles_from_the_standard_files(tmp_path):
    art = " = {} = \n \n {} \n \n = = Section = = \n \n more text about {} . \n"
    (tmp_path / "wiki.train.tokens").write_text(
        " \n"
        + art.format("Alpha", "alpha is a <unk> letter", "alpha")
        + art.format("Beta", "b", "b")
    )
    (tmp_path / "wiki.test.tokens").write_text(" \n" + art.format("Gamma", "gamma rays", "gamma"))
    c = text.load_corpus("wikitext2", root=tmp_path, download=False)
    assert [t for t, _ in c.train] == ["Alpha", "Beta"] and [t for t, _ in c.test] == ["Gamma"]
    assert "Section" in c.train[0][1] and "Beta" not in c.train[0][1]
    tok = text.Tokenizer([s for _, s in c.train], min_count=1)
    assert text.words(c.train[0][1])[:4] == ["=", "alpha", "=", "alpha"]
    assert tok.encode("alpha <unk> zeta").tolist() == [tok.index["alpha"], 0, 0]


def test_wikitext2_loader_says_where_the_files_go(tmp_path):
    with pytest.raises(FileNotFoundError, match="wiki.train.tokens.*pydoc"):
        text.load_corpus("wikitext2", root=tmp_path, download=False)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"name": "wiki"}, "name must be one of"), ({"test_fraction": 1.5}, "test_fraction")],
)
def test_bad_corpus_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        text.load_corpus(**kwargs)


def test_tokenizer_keeps_frequent_words_and_runs_of_marks():
    tok = text.Tokenizer(["the cat ===== the dog", "the cat"], min_count=2)
    assert tok.vocab == ["<unk>", "<eos>", "the", "cat"]
    assert text.words("A ==== b -- c") == ["a", "===", "b", "-", "-", "c"]
    assert tok.decode(tok.encode("the bird")) == "the <unk>"
    assert tok.stream([("t", "cat"), ("u", "the")]).tolist() == [3, 1, 2, 1]


def test_windows_score_every_token_once_after_the_first_context():
    ids = torch.arange(100)
    x, y = text.windows(ids, context=4, length=10)
    assert x.shape == (9, 14) and (y == 4).all()
    scored = torch.cat(text.generated(x, y))
    assert scored.tolist() == list(range(4, 94))
    assert (x[1, :4] == x[0, -4:]).all()
    with pytest.raises(ValueError, match="context"):
        text.windows(ids, context=0, length=10)
    with pytest.raises(ValueError, match="at least"):
        text.windows(ids[:5], context=4, length=10)


def test_distinct_ngrams_and_rank_frequency_count_only_the_generated_part():
    x = torch.tensor([[9, 9, 1, 2, 1, 2], [9, 9, 1, 2, 3, 3]])
    y = torch.tensor([2, 2])
    assert text.distinct_ngrams(x, y, 1) == 3
    assert text.distinct_ngrams(x, y, 2) == 4  # {12, 21} | {12, 23, 33}
    assert text.rank_frequency(x, y).tolist() == [3, 3, 2]
    m = text.text_metrics(x, y)
    assert m["distinct_1"] == 3 and m["unk_fraction"] == 0


def test_regimes_keep_the_data_size_and_ten_percent_real():
    specs = text.regimes(1000, 4, bias=0.9)
    none, kept = specs.values()
    assert (none.kind, none.n_synthetic, none.n_real, none.init) == (
        "fully_synthetic", 1000, 0, "finetune",
    )  # fmt: skip
    assert (kept.kind, kept.n_real, kept.n_synthetic, kept.bias) == (
        "synthetic_augmented", 100, 900, 0.9,
    )  # fmt: skip
    assert list(specs) == ["no real data", "10% real data"]
    with pytest.raises(ValueError, match="kept"):
        text.regimes(10, 2, kept=1.0)


class Counting:
    """A stand-in model that records how often it was fitted."""

    fits = 0

    def __init__(self, width=1):
        self.state, self.width = None, width

    def settings(self):
        return {"model": "Counting", "width": self.width}

    def fit(self, x, y, generator):
        Counting.fits += 1
        self.state = {"w": x.float().mean().reshape(1)}

    def state_dict(self):
        return self.state

    def load_state_dict(self, state):
        if set(state) != {"w"}:
            raise ValueError("foreign state")
        self.state = state


def test_pretrain_trains_once_per_setting_and_retrains_a_damaged_file(tmp_path):
    x, y = torch.ones(4, 6, dtype=torch.int64), torch.zeros(4, dtype=torch.int64)
    Counting.fits = 0
    first, path = text.pretrain(Counting(), x, y, 0, tmp_path)
    again, same = text.pretrain(Counting(), x, y, 0, tmp_path)
    assert Counting.fits == 1 and torch.equal(first["w"], again["w"]) and same == path
    _, other = text.pretrain(Counting(width=2), x, y, 0, tmp_path)  # another setting retrains
    _, other_seed = text.pretrain(Counting(), x, y, 1, tmp_path)
    assert Counting.fits == 3 and len({path, other, other_seed}) == 3
    path.write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="retraining"):
        text.pretrain(Counting(), x, y, 0, tmp_path)
    assert Counting.fits == 4
