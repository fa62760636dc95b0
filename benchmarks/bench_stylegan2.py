"""Benchmark of the StyleGAN-2: seconds per training step and per 1,000 samples at 8, 16 and 32 px,
and the two ways of computing a modulated convolution (grouped weights as the paper writes it,
or scaled activations as ``mcollapse.models.stylegan2`` does by default).

Prints tables; asserts nothing. "s / generation" is the training time of one generation at the
``cpu`` profile's steps, batch and width; its 8 px line is what notebook 02 runs.
"""

from __future__ import annotations

import time

import torch

from mcollapse.models.stylegan2 import Config, StyleGAN2, Training, device, modulated_conv2d
from mcollapse.profiles import resolve


def per_call(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    P = resolve("02", "cpu")
    print(f"device {device()}, {torch.get_num_threads()} thread(s)")
    head = ("resolution", "channels", "batch", "ms / step", "s / 1k samples", "s / generation")
    print("\n" + " ".join(f"{h:>14}" for h in head))
    for resolution in (8, 16, 32):
        cfg = Config(
            resolution=resolution,
            channels=P["channels"],
            z_dim=P["z_dim"],
            w_dim=P["z_dim"],
            mapping_lr_mul=P.get("mapping_lr_mul", 0.01),
        )
        x = torch.rand(256, 1, resolution, resolution, generator=torch.Generator().manual_seed(0))
        x, y = x * 2 - 1, torch.zeros(256, dtype=torch.int64)
        warm = StyleGAN2(cfg, Training(steps=3, batch=P["batch"]))
        warm.fit(x, y, torch.Generator().manual_seed(0))
        steps = 40
        training = Training(
            steps=steps,
            batch=P["batch"],
            lr=P["lr"],
            gamma=P["gamma"],
            augment=P.get("augment", "none"),  # the discriminator's augmentation costs time too
        )
        model = StyleGAN2(cfg, training)
        start = time.perf_counter()
        model.fit(x, y, torch.Generator().manual_seed(1))
        step = (time.perf_counter() - start) / steps
        sample = per_call(lambda m=model: m.sample(1000, 0.7, torch.Generator().manual_seed(2)), 2)
        row = (resolution, P["channels"], P["batch"], f"{step * 1e3:.1f}", f"{sample:.2f}",
               f"{step * P['steps']:.0f}")  # fmt: skip
        print(" ".join(f"{v:>14}" for v in row))

    g = torch.Generator().manual_seed(3)
    x = torch.randn(P["batch"], P["channels"], 8, 8, generator=g)
    w = torch.randn(P["channels"], P["channels"], 3, 3, generator=g)
    s = torch.randn(P["batch"], P["channels"], generator=g).exp()
    fused = per_call(lambda: modulated_conv2d(x, w, s, fused=True), 50)
    fast = per_call(lambda: modulated_conv2d(x, w, s), 50)
    print(
        f"\nmodulated 3x3 conv, batch {P['batch']}, {P['channels']} channels, 8x8:"
        f" grouped weights {fused * 1e3:.2f} ms, scaled activations {fast * 1e3:.2f} ms"
    )


if __name__ == "__main__":
    main()
