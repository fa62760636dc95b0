"""A smoothed n-gram language model: the fast reference for the text loops.

Interpolated absolute discounting (the core of Kneser-Ney without its continuation counts): the
order-k estimate subtracts a discount D from every seen count and gives the freed mass to the
order-(k-1) estimate, down to the uniform distribution over the vocabulary, so every token keeps a
probability above zero and each conditional distribution sums to one exactly. It refits in a
second, so a loop can run many generations; it has the same protocol and token windows as
``TextTransformer`` (``y`` = prompt length, context only).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch
from tqdm.auto import tqdm

from .._checks import check_bias, check_int, check_positive
from .protocol import Recorded


class NGramLM(Recorded):
    """Order-``order`` model; ``bias`` is the sampling temperature; prompts as in the transformer."""

    finetunes = False  # fit recounts from the data alone

    def __init__(self, vocab_size: int, order: int = 3, discount: float = 0.75, prompts=None,
                 length: int | None = None, progress: bool = False):  # fmt: skip
        self.vocab_size = check_int("vocab_size", vocab_size, minimum=2)
        self.order = check_int("order", order, minimum=1)
        self.discount = check_positive("discount", discount)
        if self.discount >= 1:
            raise ValueError(f"discount must be in (0, 1), got {discount}")
        self.prompts = None if prompts is None else torch.as_tensor(prompts)
        self.length = None if length is None else check_int("length", length, minimum=1)
        self.progress = progress
        self._grams: list[torch.Tensor] | None = None  # per order k: (M, k+1) ngram ids + count
        self._tables: list[dict] = []

    # -- protocol --------------------------------------------------------------------------

    def fit(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> None:
        """Count every scored token with its (up to order-1) preceding tokens; nothing random."""
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.dtype != torch.int64 or len(x) < 1:
            raise ValueError(f"x must be int64 token ids of shape (N, L), got {x!r}")
        if int(x.min()) < 0 or int(x.max()) >= self.vocab_size:
            raise ValueError(f"x must hold token ids in [0, {self.vocab_size - 1}]")
        if not isinstance(y, torch.Tensor) or y.shape != (len(x),):
            raise ValueError(f"y must be a tensor of shape ({len(x)},) of prompt lengths")
        y = y.to(torch.int64)
        grams = []
        for k in range(self.order):  # k = number of context tokens
            rows = []
            for row, start in zip(x.tolist(), y.clamp(min=0).tolist(), strict=True):
                first = max(start, k)  # the scored tokens that have k tokens of context
                rows += [row[j - k : j + 1] for j in range(first, len(row))]
            t = torch.tensor(rows, dtype=torch.int64).reshape(-1, k + 1)
            uniq, counts = torch.unique(t, dim=0, return_counts=True)
            grams.append(torch.cat([uniq, counts[:, None]], 1))
        self._grams = grams
        self._index()

    def _index(self):
        """Per order: context tuple -> (next ids, counts, total, distinct)."""
        self._tables = []
        for g in self._grams:
            table = defaultdict(list)
            for *ctx, w, c in g.tolist():
                table[tuple(ctx)].append((w, c))
            out = {}
            for ctx, pairs in table.items():
                ids = np.array([p[0] for p in pairs])
                counts = np.array([p[1] for p in pairs], dtype=float)
                out[ctx] = (ids, counts, counts.sum())
            self._tables.append(out)

    def distribution(self, history) -> np.ndarray:
        """P(next | the last order-1 tokens of ``history``), a length-V vector summing to 1."""
        self._require()
        history = [int(t) for t in history][-(self.order - 1) :] if self.order > 1 else []
        p = np.full(self.vocab_size, 1.0 / self.vocab_size)
        d = self.discount
        for k in range(min(len(history), self.order - 1) + 1):
            ctx = tuple(history[len(history) - k :]) if k else ()
            found = self._tables[k].get(ctx)
            if found is None:
                break  # a longer context containing this one is unseen too
            ids, counts, total = found
            p *= d * len(ids) / total
            p[ids] += (counts - d) / total
        return p

    @torch.no_grad()
    def token_log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """(N, L-1): log p(x[:, j+1] | the tokens before it in the same item)."""
        self._require()
        out = np.zeros((len(x), x.shape[1] - 1))
        for i, row in enumerate(
            tqdm(x.tolist(), desc="score", leave=False, disable=not self.progress)
        ):
            for j in range(1, len(row)):
                out[i, j - 1] = np.log(
                    self.distribution(row[max(0, j - self.order + 1) : j])[row[j]]
                )
        return torch.from_numpy(out)

    def sample(self, n: int, bias: float, generator: torch.Generator):
        """Continue the first ``n`` prompts (cycling) by ``length`` tokens at temperature ``bias``."""
        n = check_int("n", n, minimum=1)
        bias = check_bias("bias", bias)
        self._require()
        if self.prompts is None or self.length is None:
            raise ValueError("sample needs prompts=(N, P) token ids and length at construction")
        rng = np.random.default_rng(int(torch.randint(2**62, (1,), generator=generator)))
        prompts = self.prompts[torch.arange(n) % len(self.prompts)].tolist()
        rows = []
        for prompt in tqdm(prompts, desc="sample", leave=False, disable=not self.progress):
            row = list(prompt)
            for _ in range(self.length):
                cdf = np.cumsum(self.distribution(row) ** (1.0 / bias))
                row.append(min(int(np.searchsorted(cdf, rng.random() * cdf[-1])), len(cdf) - 1))
            rows.append(row)
        x = torch.tensor(rows, dtype=torch.int64)
        return x, torch.full((n,), self.prompts.shape[1], dtype=torch.int64)

    def state_dict(self) -> dict:
        self._require()
        return {f"grams_{k}": g.clone() for k, g in enumerate(self._grams)}

    def load_state_dict(self, state: dict) -> None:
        keys = [f"grams_{k}" for k in range(self.order)]
        if sorted(state) != sorted(keys):
            raise ValueError(f"state must hold {keys} for order={self.order}, got {sorted(state)}")
        self._grams = [torch.as_tensor(state[k]) for k in keys]
        self._index()

    def _require(self):
        if self._grams is None:
            raise ValueError("the model has no counts yet: call fit or load_state_dict first")
