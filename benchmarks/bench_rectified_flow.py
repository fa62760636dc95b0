"""Timings of rectified flow and the three reflow schemes (notebook 05).

Prints, per model (MLP on 2-D points, U-Net on 8x8 digits): ms per Adam step, ms per 1,000 pairs
made by the forward ODE and by inversion, and the seconds of one reflow round of each scheme at a
fixed small size (OCAR pays for two ODE solves per mini-batch). Asserts nothing.
"""

from __future__ import annotations

import tempfile
import time

import torch

from mcollapse import data, engine
from mcollapse.models.rectified_flow import RectifiedFlow
from mcollapse.reflow import ReflowSpec

STEPS, PAIR_STEPS = 100, 16


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    train = data.load_images("digits", "train")
    cases = {
        "mlp, moons": (lambda: RectifiedFlow((2,), hidden=64, layers=3, steps=STEPS,
                                             batch_size=256, sample_steps=PAIR_STEPS,
                                             progress=False),
                       data.toy("moons"), 1000),
        "unet, digits": (lambda: RectifiedFlow((1, 8, 8), net="unet", width=32, mults=(1, 2),
                                               blocks=1, steps=STEPS, batch_size=64,
                                               ema_decay=0.995, sample_steps=PAIR_STEPS,
                                               progress=False),
                         data.Pool(train.x, train.y, train.num_classes, name="digits"), 1297),
    }  # fmt: skip
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {PAIR_STEPS} Euler steps")
    print(f"{'model':14s} {'ms/step':>8s} {'pairs/1k s':>10s} {'invert/1k s':>11s}"
          f" {'reflow s':>9s} {'RCA s':>7s} {'OCAR s':>7s}  (round of {STEPS} steps)")  # fmt: skip
    for name, (make, source, n_real) in cases.items():
        g = torch.Generator().manual_seed(0)
        x, y = source.sample(n_real, g)
        make().fit(x, y, g)  # warm-up: the first steps pay for allocations and kernel choices
        model = make()
        fit = _time(lambda model=model, x=x, y=y, g=g: model.fit(x, y, g))
        pairs = _time(lambda model=model, g=g: model.generate_pairs(1000, g))
        invert = _time(lambda model=model, x=x: model.invert(x[:1000]))
        common = dict(
            generations=2, n_real=n_real, train_steps=STEPS, pair_steps=PAIR_STEPS, n_eval=10
        )
        specs = {
            "reflow": ReflowSpec("reflow", n_pairs=1000, **common),
            "rca": ReflowSpec("rca", n_pairs=1000, real_ratio=0.5, **common),
            "ocar": ReflowSpec("ocar", real_ratio=0.5, **common),
        }
        with tempfile.TemporaryDirectory() as run_dir:
            res = engine.sweep(specs, [0], make, source, lambda x, y, m, t: {}, run_dir, n_jobs=1,
                               progress=False)  # fmt: skip
        rounds = {n: sum(rs[0].generations[1].seconds.values()) for n, rs in res.items()}
        print(
            f"{name:14s} {1000 * fit / STEPS:8.1f} {pairs:10.2f} {invert:11.2f}"
            f" {rounds['reflow']:9.1f} {rounds['rca']:7.1f} {rounds['ocar']:7.1f}"
        )


if __name__ == "__main__":
    main()
