"""A small causal transformer language model, trained from scratch in minutes on a CPU.

Shumailov et al. (Nature 631, 2024; arXiv 2305.17493) fine-tune OPT-125m on wikitext2 and let it
continue each 64-token block with 5-way beam search. This is the same kind of model, shrunk: a
decoder-only transformer (learned positions, pre-norm blocks of causal self-attention and an MLP,
tied input/output embeddings). Items are token windows whose first ``y`` tokens are a prompt that
is context only (see ``mcollapse.text``); ``sample`` continues real prompts handed over at
construction. ``bias`` is the sampling temperature (``decoding="sample"``) or the nucleus
threshold (``"top_p"``); ``"beam"`` is beam search as in the paper, where ``bias`` is unused.

``dropout`` (on the embeddings, the attention weights and each block's output) is off by
default: on a corpus of ~100k tokens the model memorises the training windows once trained long
enough (training perplexity keeps falling while test perplexity stops improving), and with
dropout it learns so much more slowly that, within the few minutes of a CPU profile, it ends
further from the held-out text than without.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .._checks import check_bias, check_choice, check_int, check_positive
from .protocol import Recorded

DECODINGS = ("sample", "top_p", "beam")


def _nucleus_draw(probs: torch.Tensor, p: float, generator, k: int = 512) -> torch.Tensor:
    """One token per row from its nucleus: the most probable tokens until their mass reaches p.

    Works on each row's top ``k`` tokens (a partial sort); only rows whose top k hold less than p
    are sorted whole and drawn again.
    """

    def draw(top, order):
        return order.gather(1, _categorical(top * ((top.cumsum(-1) - top) < p), generator))

    top, order = probs.topk(min(k, probs.shape[-1]), -1)
    ids = draw(top, order)
    wide = top.sum(-1) < p
    if bool(wide.any()):
        ids[wide] = draw(*probs[wide].sort(-1, descending=True))
    return ids


def _categorical(weights: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One index per row, drawn in proportion to the non-negative ``weights`` (inverse CDF)."""
    cdf = weights.cumsum(-1)
    u = torch.rand(len(weights), 1, generator=generator, device=weights.device, dtype=cdf.dtype)
    return torch.searchsorted(cdf, u * cdf[:, -1:]).clamp(max=weights.shape[-1] - 1)


class _Block(nn.Module):
    def __init__(self, d: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.heads, self.p = heads, dropout
        self.drop = nn.Dropout(dropout)
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, h, cache=None):
        """``cache``: (k, v) of earlier positions, for one new position at a time."""
        b, t, d = h.shape
        q, k, v = (
            z.view(b, t, self.heads, d // self.heads).transpose(1, 2)
            for z in self.qkv(self.ln1(h)).split(d, dim=-1)
        )
        if cache is not None:
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
        p = self.p if self.training else 0.0
        a = F.scaled_dot_product_attention(q, k, v, is_causal=cache is None, dropout_p=p)
        h = h + self.drop(self.proj(a.transpose(1, 2).reshape(b, t, d)))
        return h + self.drop(self.mlp(self.ln2(h))), (k, v)


class _Net(nn.Module):
    def __init__(
        self, vocab: int, context: int, d: int, layers: int, heads: int, dropout: float = 0.0
    ):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(context, d)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(_Block(d, heads, dropout) for _ in range(layers))
        self.ln = nn.LayerNorm(d)

    def forward(self, idx, caches=None, start: int = 0):
        """Logits (B, T, V) and the per-layer (k, v) caches; ``start`` = position of idx[:, 0]."""
        h = self.tok(idx) + self.pos(torch.arange(start, start + idx.shape[1], device=idx.device))
        h = self.drop(h)
        new = []
        for i, block in enumerate(self.blocks):
            h, c = block(h, None if caches is None else caches[i])
            new.append(c)
        return self.ln(h) @ self.tok.weight.T, new


class TextTransformer(Recorded):
    """Causal transformer LM implementing the model protocol on token windows (see module doc).

    ``epochs_initial`` epochs train a fresh model; ``epochs`` continue one whose weights were
    loaded (the loop's ``init="finetune"``), as Shumailov et al. fine-tune each generation.
    ``dropout`` applies while training only; its draws come from the ``generator`` given to
    ``fit`` (torch's global RNG is seeded from it inside a fork and left as it was).
    """

    def __init__(
        self,
        vocab_size: int,
        context: int,
        prompts: torch.Tensor | None = None,
        d_model: int = 128,
        layers: int = 2,
        heads: int = 4,
        epochs_initial: int = 10,
        epochs: int = 3,
        batch_size: int = 32,
        lr: float = 2e-3,
        weight_decay: float = 0.1,
        dropout: float = 0.0,
        decoding: str = "sample",
        beams: int = 5,
        device=None,
        progress: bool = False,
    ):
        self.vocab_size = check_int("vocab_size", vocab_size, minimum=2)
        self.context = check_int("context", context, minimum=2)
        self.d_model = check_int("d_model", d_model, minimum=1)
        self.heads = check_int("heads", heads, minimum=1)
        if self.d_model % self.heads:
            raise ValueError(f"d_model must be divisible by heads={heads}, got {d_model}")
        self.layers = check_int("layers", layers, minimum=1)
        self.epochs_initial = check_int("epochs_initial", epochs_initial, minimum=0)
        self.epochs = check_int("epochs", epochs, minimum=0)
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.lr = check_positive("lr", lr)
        self.weight_decay = check_positive("weight_decay", weight_decay, allow_zero=True)
        self.dropout = check_positive("dropout", dropout, allow_zero=True)
        if self.dropout >= 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.decoding = check_choice("decoding", decoding, DECODINGS)
        self.beams = check_int("beams", beams, minimum=1)
        if prompts is not None:
            prompts = torch.as_tensor(prompts)
            if prompts.ndim != 2 or not 1 <= prompts.shape[1] < self.context or len(prompts) < 1:
                raise ValueError(
                    f"prompts must be (N, P) token ids with 1 <= P < context={context},"
                    f" got shape {tuple(prompts.shape)}"
                )
        self.prompts = prompts
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.progress = progress
        self.net: _Net | None = None
        self._loaded = False
        self.losses: list[float] = []  # mean training loss per epoch of the last fit

    def _build(self, generator: torch.Generator | None) -> _Net:
        """GPT-2 style initialisation, every draw from ``generator``."""
        net = self._empty()
        with torch.no_grad():
            for name, p in net.named_parameters():
                if p.ndim == 2:
                    out = name.endswith(("proj.weight", "mlp.2.weight"))
                    std = 0.02 / math.sqrt(2 * self.layers) if out else 0.02
                    p.copy_(torch.randn(p.shape, generator=generator) * std)
                elif name.endswith("bias"):
                    p.zero_()
        return net.to(self.device)

    def _empty(self) -> _Net:
        """The network with placeholder weights; building it must not move torch's global RNG."""
        with torch.random.fork_rng(devices=[]):
            return _Net(
                self.vocab_size, self.context, self.d_model, self.layers, self.heads, self.dropout
            )

    # -- protocol --------------------------------------------------------------------------

    def fit(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> None:
        """Next-token cross-entropy on every token after its item's prompt (AdamW, cosine lr)."""
        x, y = self._check(x, y)
        fresh = self.net is None
        if fresh:
            self.net = self._build(generator)
        epochs = self.epochs_initial if fresh or not self._loaded else self.epochs
        net, n = self.net, len(x)
        steps = epochs * math.ceil(n / self.batch_size)
        decay = [p for p in net.parameters() if p.ndim == 2]
        rest = [p for p in net.parameters() if p.ndim < 2]
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.weight_decay}, {"params": rest}],
            lr=self.lr,
            betas=(0.9, 0.95),
        )
        warmup = max(1, min(20, steps // 10))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt,
            lambda s: (
                min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * s / max(steps, 1)))
            ),
        )
        net.train()
        self.losses = []
        bar = tqdm(total=steps, desc="train", leave=False, disable=not self.progress)
        # dropout draws from torch's global RNG: seed it from ``generator`` inside a fork, so runs
        # stay reproducible and the caller's global RNG state is left as it was
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices, enabled=self.dropout > 0):
            if self.dropout > 0:
                torch.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
            for _ in range(epochs):
                order, total = torch.randperm(n, generator=generator), 0.0
                for i in range(0, n, self.batch_size):
                    idx = order[i : i + self.batch_size]
                    xb, yb = x[idx].to(self.device), y[idx].to(self.device)
                    loss = self._loss(xb, yb)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                    opt.step()
                    sched.step()
                    total += float(loss.detach()) * len(idx)
                    bar.update()
                self.losses.append(total / n)
        bar.close()
        net.eval()

    def _loss(self, xb, yb):
        logits, _ = self.net(xb[:, :-1])
        j = torch.arange(1, xb.shape[1], device=xb.device)
        mask = j[None, :] >= yb[:, None].clamp(min=1)
        nll = F.cross_entropy(logits.transpose(1, 2), xb[:, 1:], reduction="none")
        return (nll * mask).sum() / mask.sum()

    @torch.no_grad()
    def token_log_probs(self, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """(N, L-1): log p(x[:, j+1] | x[:, :j+1]) under the model."""
        self._require_net()
        out = []
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size].to(self.device)
            logits, _ = self.net(xb[:, :-1])
            out.append(logits.log_softmax(-1).gather(2, xb[:, 1:, None])[..., 0].cpu())
        return torch.cat(out)

    @torch.no_grad()
    def sample(self, n: int, bias: float, generator: torch.Generator):
        """Continue the first ``n`` prompts (cycling) to ``context`` tokens; y = prompt length."""
        n = check_int("n", n, minimum=1)
        bias = check_bias("bias", bias)
        self._require_net()
        if self.prompts is None:
            raise ValueError("sample needs prompts: pass prompts=(N, P) token ids at construction")
        prompts = self.prompts[torch.arange(n) % len(self.prompts)]
        seed = int(torch.randint(2**62, (1,), generator=generator))
        g = torch.Generator(self.device).manual_seed(seed)
        chunk = max(1, 256 // (self.beams if self.decoding == "beam" else 1))
        parts = []
        for i in tqdm(range(0, n, chunk), desc="sample", leave=False, disable=not self.progress):
            p = prompts[i : i + chunk].to(self.device)
            parts.append(self._beam(p) if self.decoding == "beam" else self._draw(p, bias, g))
        x = torch.cat(parts).cpu()
        return x, torch.full((n,), prompts.shape[1], dtype=torch.int64)

    def state_dict(self) -> dict:
        self._require_net()
        return {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()}

    def load_state_dict(self, state: dict) -> None:
        net = self._empty()
        net.load_state_dict(state)
        self.net, self._loaded = net.to(self.device).eval(), True

    # -- decoding --------------------------------------------------------------------------

    def _draw(self, prompt, bias, g):
        """Ancestral sampling at temperature ``bias``, or from the top-p nucleus p = ``bias``."""
        logits, caches = self.net(prompt)
        seq = [prompt]
        for t in range(prompt.shape[1], self.context):
            logits = logits[:, -1].double()
            if self.decoding == "sample":
                nxt = _categorical((logits / bias).softmax(-1), g)
            else:
                nxt = _nucleus_draw(logits.softmax(-1), bias, g)
            seq.append(nxt)
            if t + 1 < self.context:
                logits, caches = self._step(nxt, caches, t)
        return torch.cat(seq, 1)

    def _beam(self, prompt):
        """Beam search with ``beams`` beams over the whole continuation; returns the best beam."""
        b, k, v = len(prompt), self.beams, self.vocab_size
        logits, caches = self.net(prompt)
        score, tok = logits[:, -1].log_softmax(-1).topk(k, -1)  # (b, k)
        caches = [(c[0].repeat_interleave(k, 0), c[1].repeat_interleave(k, 0)) for c in caches]
        seq = tok.reshape(b * k, 1)
        for t in range(prompt.shape[1], self.context - 1):
            logits, caches = self._step(seq[:, -1:], caches, t)
            total = score[:, :, None] + logits[:, -1].log_softmax(-1).view(b, k, v)
            score, flat = total.view(b, k * v).topk(k, -1)
            rows = (torch.arange(b, device=prompt.device)[:, None] * k + flat // v).reshape(-1)
            caches = [(c[0][rows], c[1][rows]) for c in caches]
            seq = torch.cat([seq[rows], (flat % v).reshape(-1, 1)], 1)
        best = seq.view(b, k, -1)[:, 0]
        return torch.cat([prompt, best], 1)

    def _step(self, nxt, caches, t):
        return self.net(nxt, caches, start=t)

    # -- checks ----------------------------------------------------------------------------

    def _require_net(self):
        if self.net is None:
            raise ValueError("the model has no weights yet: call fit or load_state_dict first")

    def _check(self, x, y):
        ok = isinstance(x, torch.Tensor) and x.dtype == torch.int64 and x.ndim == 2
        if not ok or not 2 <= x.shape[1] <= self.context or len(x) < 1:
            raise ValueError(
                f"x must be int64 token ids of shape (N, L) with 2 <= L <= context={self.context},"
                f" got {getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}"
            )
        if int(x.min()) < 0 or int(x.max()) >= self.vocab_size:
            raise ValueError(f"x must hold token ids in [0, {self.vocab_size - 1}]")
        if not isinstance(y, torch.Tensor) or y.shape != (len(x),):
            raise ValueError(f"y must be a tensor of shape ({len(x)},) of prompt lengths")
        return x, y.to(torch.int64)
