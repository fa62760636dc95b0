"""Text for the language-model loops: corpora, a word-level tokeniser, windows, perplexity.

The corpus that needs no download is the documentation that ships with every CPython
(``pydoc_data.topics``: 79 topics, about 65k words of English prose and code); ``wikitext2`` (the
corpus of Shumailov et al.) is read from its standard ``wiki.{train,test}.tokens`` files.

A training item is a window of ``context + length`` token ids with a label ``y`` = ``context``:
the first ``context`` tokens are a prompt, given to the model but never scored or trained on. Real
windows overlap by ``context`` tokens, so every real token is scored exactly once; a synthetic item
is a real prompt followed by the model's own continuation (Shumailov et al. continue each 64-token
block of wikitext2). Models used here add ``token_log_probs(x) -> (N, L-1)``, the log probability
of each next token, to the protocol of ``mcollapse.models``.
"""

from __future__ import annotations

import hashlib
import re
import urllib.request
import warnings
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import paths, seeds, store
from ._checks import check_choice, check_int, check_positive
from .data import Pool

CORPORA = ("pydoc", "wikitext2")
UNK, EOS = "<unk>", "<eos>"
_TOKEN = re.compile(r"<unk>|[a-z]+|[0-9]+|([^\sa-z0-9])\1{2,}|[^\sa-z0-9]")
WIKITEXT2_URL = "https://wikitext.smerity.com/wikitext-2-v1.zip"
WIKITEXT2_FILES = ("wiki.train.tokens", "wiki.test.tokens")


@dataclass(frozen=True)
class Corpus:
    """Documents as (title, text) pairs, split by document so no test text is seen in training."""

    name: str
    train: tuple[tuple[str, str], ...]
    test: tuple[tuple[str, str], ...]


def load_corpus(name: str = "pydoc", root=None, test_fraction: float = 0.1, download=True):
    """``pydoc`` (bundled with Python) or ``wikitext2`` (files in ``root``, downloaded if allowed).

    The pydoc split is fixed: topics are ordered by a CRC32 of their title and each goes to test
    while it fits in ``test_fraction`` of all words, so every machine gets the same split. The
    topics are those of the running Python, so the text (and every number) can move a little
    between Python versions.
    """
    check_choice("name", name, CORPORA)
    test_fraction = check_positive("test_fraction", test_fraction)
    if test_fraction >= 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if name == "wikitext2":
        return _load_wikitext2(Path(root) if root else paths.DOWNLOADS / "wikitext-2", download)
    from pydoc_data.topics import topics

    docs = sorted(topics.items(), key=lambda kv: (zlib.crc32(kv[0].encode()), kv[0]))
    budget, test = test_fraction * sum(len(text.split()) for _, text in docs), set()
    for title, text in docs:  # greedy: no single long topic can dominate the test split
        if len(text.split()) <= budget:
            test.add(title)
            budget -= len(text.split())
    return Corpus(
        "pydoc",
        tuple(d for d in docs if d[0] not in test),
        tuple(d for d in docs if d[0] in test),
    )


def _load_wikitext2(root: Path, download: bool) -> Corpus:
    """wikitext2's own split; its articles (top-level ' = Title = ' headings) are the documents."""
    missing = [f for f in WIKITEXT2_FILES if not (root / f).is_file()]
    if missing and download:
        try:
            root.mkdir(parents=True, exist_ok=True)
            archive = root / "wikitext-2-v1.zip"
            urllib.request.urlretrieve(WIKITEXT2_URL, archive)
            with zipfile.ZipFile(archive) as z:
                for f in WIKITEXT2_FILES:
                    (root / f).write_bytes(z.read(f"wikitext-2/{f}"))
            missing = []
        except Exception as error:  # no network, a moved URL, a bad archive: all mean "not here"
            reason = f"the download from {WIKITEXT2_URL} failed ({type(error).__name__}: {error})"
    elif missing:
        reason = "download=False"
    if missing:
        raise FileNotFoundError(
            f"wikitext2 is not available ({reason}): put {', '.join(WIKITEXT2_FILES)} (from"
            f" wikitext-2-v1.zip) into {root}/ ; the 'pydoc' corpus ships with Python and works"
            " offline."
        )
    split = {f: _articles((root / f).read_text(encoding="utf-8")) for f in WIKITEXT2_FILES}
    return Corpus("wikitext2", split[WIKITEXT2_FILES[0]], split[WIKITEXT2_FILES[1]])


def _articles(text: str) -> tuple[tuple[str, str], ...]:
    heading = re.compile(r"^ = ([^=].*?) = $", re.MULTILINE)
    starts = [(m.start(), m.group(1)) for m in heading.finditer(text)] or [(0, "text")]
    ends = [s for s, _ in starts[1:]] + [len(text)]
    return tuple((title, text[s:e]) for (s, title), e in zip(starts, ends, strict=True))


def words(text: str) -> list[str]:
    """Lower-cased words, numbers and punctuation marks; a run of 3+ equal marks is one token."""
    return [
        m.group(0) if m.group(1) is None else m.group(1) * 3 for m in _TOKEN.finditer(text.lower())
    ]


class Tokenizer:
    """Word-level vocabulary: tokens seen ``min_count`` times in training, plus <unk> and <eos>."""

    def __init__(self, texts, min_count: int = 2):
        check_int("min_count", min_count, minimum=1)
        counts = Counter(w for text in texts for w in words(text))
        counts.pop(UNK, None)
        kept = sorted(
            (w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w)
        )
        self.vocab = [UNK, EOS, *kept]
        self.index = {w: i for i, w in enumerate(self.vocab)}

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> torch.Tensor:
        return torch.tensor([self.index.get(w, 0) for w in words(text)], dtype=torch.int64)

    def decode(self, ids) -> str:
        return " ".join(self.vocab[int(i)] for i in ids)

    def stream(self, docs) -> torch.Tensor:
        """All documents' ids in order, each followed by <eos>."""
        eos = torch.tensor([1])
        return torch.cat([t for _, text in docs for t in (self.encode(text), eos)])


def windows(ids: torch.Tensor, context: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y): windows of ``context + length`` ids with stride ``length``, and y = ``context``.

    Window i scores ids[context + i*length : context + (i+1)*length] given the ``context`` ids
    before them; the first ``context`` ids of the stream are only ever context, a partial last
    window is dropped.
    """
    context = check_int("context", context, minimum=1)
    length = check_int("length", length, minimum=1)
    n = (len(ids) - context) // length
    if n < 1:
        raise ValueError(f"ids must hold at least context + length = {context + length} tokens")
    starts = torch.arange(n) * length
    x = ids[starts[:, None] + torch.arange(context + length)]
    return x, torch.full((n,), context, dtype=torch.int64)


@dataclass
class TextData:
    """Everything the notebook needs from one corpus, made once: tokeniser and windows."""

    corpus: Corpus
    tokenizer: Tokenizer
    train: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]

    @property
    def prompts(self) -> torch.Tensor:
        """The real prompts, one per training window, in corpus order."""
        x, y = self.train
        return x[:, : int(y[0])]

    def source(self) -> Pool:
        """The real training windows as a loop source (draws without replacement)."""
        return Pool(*self.train, num_classes=1, name=f"{self.corpus.name} windows")


def prepare(
    corpus: Corpus, context: int, length: int, min_count: int = 2, max_windows: int | None = None
) -> TextData:
    """Tokeniser from the training documents; train and test windows (the first ``max_windows``
    training windows only, when given: a smaller corpus for quick runs)."""
    tok = Tokenizer((text for _, text in corpus.train), min_count=min_count)
    train = windows(tok.stream(corpus.train), context, length)
    if max_windows is not None:
        keep = check_int("max_windows", max_windows, minimum=1)
        train = (train[0][:keep], train[1][:keep])
    test = windows(tok.stream(corpus.test), context, length)
    return TextData(corpus, tok, train, test)


# --------------------------------------------------------------------------------------------
# Perplexity and what a sample set keeps of the language
# --------------------------------------------------------------------------------------------


def scored_mask(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N, L-1) booleans: next-token position j (predicting x[:, j+1]) is scored iff j+1 >= y."""
    j = torch.arange(1, x.shape[1])
    return j[None, :] >= y[:, None].clamp(min=1)


def sequence_nll(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean negative log likelihood (nats per token) of each sequence's scored tokens, (N,)."""
    logp = model.token_log_probs(x).double().cpu()
    mask = scored_mask(x, y)
    return -(logp * mask).sum(1) / mask.sum(1).clamp(min=1)


def perplexity(model, x: torch.Tensor, y: torch.Tensor) -> float:
    """exp of the mean NLL over all scored tokens (a uniform model over V tokens gives V)."""
    logp = model.token_log_probs(x).double().cpu()
    mask = scored_mask(x, y)
    return float(torch.exp(-(logp * mask).sum() / mask.sum()))


def generated(x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """The scored part (after the prompt) of each sequence."""
    return [row[int(c) :] for row, c in zip(x, y, strict=True)]


def distinct_ngrams(x: torch.Tensor, y: torch.Tensor, n: int) -> int:
    """How many different n-grams occur in the scored parts of the sequences."""
    n = check_int("n", n, minimum=1)
    found = set()
    for row in generated(x, y):
        r = row.tolist()
        found.update(tuple(r[i : i + n]) for i in range(len(r) - n + 1))
    return len(found)


def rank_frequency(x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Token counts of the scored parts, sorted from most to least frequent (the Zipf plot)."""
    ids = torch.cat(generated(x, y))
    counts = torch.bincount(ids).numpy()
    return np.sort(counts[counts > 0])[::-1]


def text_metrics(x: torch.Tensor, y: torch.Tensor, max_n: int = 3) -> dict[str, float]:
    """Distinct 1..max_n-grams of a sample set, and the fraction of scored tokens that are <unk>."""
    out = {f"distinct_{n}": float(distinct_ngrams(x, y, n)) for n in range(1, max_n + 1)}
    ids = torch.cat(generated(x, y))
    out["unk_fraction"] = float((ids == 0).double().mean())
    return out


def pretrain(model, x: torch.Tensor, y: torch.Tensor, seed: int, cache_dir) -> tuple[dict, Path]:
    """Train a fresh ``model`` on (x, y) once and keep its state in ``cache_dir``; later calls load
    it. Returns (state, path). The file is named after the model's ``settings()``, the data and
    the seed, so any other setting retrains instead of reusing stale weights.

    Shumailov et al. start every loop from a pretrained OPT-125m; here the loops' starting point
    is this model, trained from scratch on the real training windows.
    """
    seed = check_int("seed", seed, minimum=0)
    data = [hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest() for t in (x, y)]
    name = store.digest({"settings": model.settings(), "data": data, "seed": seed})[:16]
    path = Path(cache_dir) / f"pretrained_{name}.pt"
    if path.is_file():
        try:
            state = store.load(path)
            model.load_state_dict(state)
            return state, path
        except Exception as error:  # a truncated or foreign file is retrained, never used
            warnings.warn(f"{path}: does not load ({error}); retraining", stacklevel=2)
    model.fit(x, y, generator=seeds.torch_generator(seed, "pretrain"))
    state = model.state_dict()
    store.save(path, state)
    return state, path


def regimes(
    n: int, generations: int, bias: float = 1.0, kept: float = 0.1, init: str = "finetune"
) -> dict:
    """Shumailov et al.'s two loops, each generation fine-tuned on ``n`` windows (the data size):
    only the previous generation's continuations, or ``kept`` of the real windows plus
    continuations for the rest (the real part is a fixed random subset, as in their 10% run).
    ``init="scratch"`` refits each generation from nothing (the n-gram model)."""
    from .loops import LoopSpec

    n = check_int("n", n, minimum=2)
    n_real = max(1, round(check_positive("kept", kept) * n))
    if n_real >= n:
        raise ValueError(f"kept must leave room for synthetic data (kept * n < n), got {kept}")
    return {
        "no real data": LoopSpec(
            "fully_synthetic", n, generations=generations, n_synthetic=n, bias=bias, init=init
        ),
        f"{kept:.0%} real data": LoopSpec(
            "synthetic_augmented",
            n,
            generations=generations,
            n_real=n_real,
            n_synthetic=n - n_real,
            bias=bias,
            init=init,
        ),
    }
