"""Timings of the text models of notebook 06 on the pydoc corpus: what one generation costs.

For the transformer at the notebook's cpu sizes and the trigram reference: one training epoch
(or one refit), continuing every real prompt, and scoring the test split; also the cost of
beam search against sampling on a few prompts. Prints a table; asserts nothing.
"""

from __future__ import annotations

import time

import torch

from mcollapse import text
from mcollapse.models.ngram import NGramLM
from mcollapse.models.transformer import TextTransformer
from mcollapse.profiles import resolve


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    P = resolve("06", "cpu")
    data = text.prepare(text.load_corpus("pydoc"), P["context"], P["length"])
    V, N = len(data.tokenizer), len(data.train[0])
    g = torch.Generator().manual_seed(0)
    print(f"pydoc: vocabulary {V}, {N} training windows, {len(data.test[0])} test windows;"
          f" torch {torch.__version__}, {torch.get_num_threads()} threads")  # fmt: skip
    lm = TextTransformer(
        V, P["context"] + P["length"], prompts=data.prompts, d_model=P["d_model"],
        layers=P["layers"], heads=P["heads"], batch_size=P["batch_size"], lr=P["lr"],
        epochs_initial=1,
    )  # fmt: skip
    _, fit = timed(lambda: lm.fit(*data.train, g))
    params = sum(p.numel() for p in lm.net.parameters())
    _, sample = timed(lambda: lm.sample(N, 1.0, g))
    _, score = timed(lambda: text.perplexity(lm, *data.test))
    lm.decoding = "top_p"
    _, nucleus = timed(lambda: lm.sample(N, 0.9, g))
    lm.decoding = "beam"
    _, beam = timed(lambda: lm.sample(64, 1.0, g))
    lm.decoding = "sample"
    _, drawn = timed(lambda: lm.sample(64, 1.0, g))
    print(
        f"\ntransformer ({params / 1e6:.2f}M parameters, d_model {P['d_model']}, {P['layers']} layers)"
    )
    print(f"  one training epoch      {fit:7.1f} s")
    print(f"  continue {N} prompts  {sample:7.1f} s  (64 tokens each, sampling, KV cache)")
    print(f"  the same, top-p 0.9     {nucleus:7.1f} s  (the notebook's cpu setting)")
    print(f"  test perplexity         {score:7.1f} s")
    print(f"  64 prompts: beam (5)    {beam:7.2f} s  vs sampling {drawn:.2f} s")
    ngram = NGramLM(V, order=P["ngram_order"], prompts=data.prompts, length=P["length"])
    _, fit = timed(lambda: ngram.fit(*data.train, g))
    _, sample = timed(lambda: ngram.sample(N, 1.0, g))
    _, score = timed(lambda: text.perplexity(ngram, *data.test))
    print(
        f"\ntrigram: refit {fit:.1f} s, continue {N} prompts {sample:.1f} s, test perplexity {score:.1f} s"
    )


if __name__ == "__main__":
    main()
