"""Benchmark: training the digits feature network, and the image metrics at 500 and 2,000 samples.

The feature network is trained into a temporary cache (so the timing is a real training run);
metrics are timed with the reference features already cached, as the notebooks use them.
Prints a table; asserts nothing.
"""

from __future__ import annotations

import tempfile
import time

import torch

from mcollapse import data, features, metrics


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as cache:
        net, seconds = timed(lambda: features.feature_net("digits", cache, progress=False))
    print(
        f"feature network (digits): trained in {seconds:.1f} s, held-out accuracy {net.test_accuracy:.3f}"
    )

    net = features.feature_net("digits", progress=False)
    ref = metrics.reference("digits", net=net)
    metrics.image_metrics(data.load_images("digits", "train").x[:100], ref)  # fills the cache
    train = data.load_images("digits", "train").x
    g = torch.Generator().manual_seed(0)
    print(f"{'samples':>8} {'reference':>9} {'FID+KID+P/R s':>14} {'FID':>8} {'recall':>7}")
    for n in (500, 2000):
        x = train[torch.randint(len(train), (n,), generator=g)]
        x = x + 0.05 * torch.randn(x.shape, generator=g)
        out, seconds = timed(lambda x=x: metrics.image_metrics(x, ref))
        print(f"{n:>8} {len(ref):>9} {seconds:>14.2f} {out['fid']:>8.2f} {out['recall']:>7.3f}")


if __name__ == "__main__":
    main()
