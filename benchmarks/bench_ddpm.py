"""Benchmark of the DDPM at notebook 03's ``cpu`` settings: what one generation of a loop costs.

Prints the time of an Adam step, of training one generation, of sampling (with and without
guidance, which doubles the network evaluations) and of scoring, plus the FID of the trained model
against the real-vs-real floor. Asserts nothing.
"""

from __future__ import annotations

import time

import torch

from mcollapse import data, metrics
from mcollapse.models.ddpm import DDPM
from mcollapse.profiles import resolve


def main() -> None:
    P = resolve("03", "cpu")
    settings = {**P["ddpm"], "mults": tuple(P["ddpm"]["mults"])}
    train = data.load_images(P["dataset"], "train")
    ref = metrics.reference(P["dataset"])
    model = DDPM(tuple(train.x.shape[1:]), train.num_classes, **settings, progress=False)
    n_params = sum(p.numel() for p in model.net.parameters())
    print(f"DDPM at notebook 03 cpu settings: {n_params:,} parameters, {torch.get_num_threads()}"
          f" threads, device {model.device}")  # fmt: skip

    start = time.perf_counter()
    model.fit(train.x, train.y, torch.Generator().manual_seed(0))
    train_s = time.perf_counter() - start
    print(f"train {settings['steps']} steps of {settings['batch_size']}: {train_s:.1f} s"
          f" ({1000 * train_s / settings['steps']:.1f} ms per step)")  # fmt: skip

    n = P["n_synthetic"]
    for bias in (1.0, 0.5):
        start = time.perf_counter()
        x, _ = model.sample(n, bias, torch.Generator().manual_seed(1))
        sample_s = time.perf_counter() - start
        start = time.perf_counter()
        found = metrics.LoopEvaluator(ref, n=P["n_metric"])(x, None, model, 1)
        score_s = time.perf_counter() - start
        print(f"sample {n} images, {settings['sample_steps']} DDIM steps, lambda = {bias:g}:"
              f" {sample_s:.1f} s; score {P['n_metric']}: {score_s:.2f} s; FID {found['fid']:.2f},"
              f" precision {found['precision']:.3f}, recall {found['recall']:.3f}")  # fmt: skip
    floor = metrics.real_floor(ref, P["n_metric"], metrics=("fid", "prc"))
    print(f"real-vs-real floor at n = {P['n_metric']}: FID {floor['fid']:.2f}")


if __name__ == "__main__":
    main()
