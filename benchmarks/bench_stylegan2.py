"""Benchmark of the StyleGAN-2: seconds per training step and per 1,000 samples at 8, 16 and 32 px,
and the two ways of computing a modulated convolution (grouped weights as the paper writes it,
or scaled activations as ``mcollapse.models.stylegan2`` does by default).

Prints tables; asserts nothing. The 8 px line with the ``cpu`` profile's sizes gives the time one
generation of notebook 02 takes to train (steps x seconds per step).
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
    print(
        f"\n{'resolution':>10} {'channels':>8} {'batch':>5} {'ms / step':>9} {'s / 1k samples':>14}"
    )
    for resolution, channels in ((8, P["channels"]), (16, P["channels"]), (32, P["channels"])):
        cfg = Config(resolution=resolution, channels=channels, z_dim=P["z_dim"], w_dim=P["z_dim"])
        steps = 20
        x = torch.rand(256, 1, resolution, resolution, generator=torch.Generator().manual_seed(0))
        y = torch.zeros(256, dtype=torch.int64)
        model = StyleGAN2(cfg, Training(steps=steps, batch=P["batch"], gamma=P["gamma"]))
        start = time.perf_counter()
        model.fit(x * 2 - 1, y, torch.Generator().manual_seed(1))
        step = (time.perf_counter() - start) / steps
        sample = per_call(lambda m=model: m.sample(1000, 0.7, torch.Generator().manual_seed(2)), 2)
        print(f"{resolution:>10} {channels:>8} {P['batch']:>5} {step * 1e3:>9.1f} {sample:>14.2f}")
    print(
        f"\nnotebook 02 at cpu: {P['steps']} steps per generation -> about"
        " (ms / step at 8 px) x steps of training per generation"
    )

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
