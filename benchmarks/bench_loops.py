"""Benchmark and demonstration of the loop engine with the reference model on real digits.

The class-conditional Gaussian mixture retrains each generation in milliseconds, so this shows the
engine's own overhead (composition, persistence, verification) next to the cost of the image
metrics, and prints the collapse it measures: fully synthetic against fresh real data.
Prints tables; asserts nothing.
"""

from __future__ import annotations

import tempfile
import time

from mcollapse import data, engine, features, metrics
from mcollapse.loops import LoopSpec
from mcollapse.models import ClassGaussianMixture


def main() -> None:
    net = features.feature_net("digits", progress=False)
    ref = metrics.reference("digits", net=net)

    def evaluate(x, y, model, generation):
        found = metrics.image_metrics(x, ref)
        shares = metrics.class_shares(x, net)
        return {"fid": found["fid"], "recall": found["recall"], "smallest_class": shares.min()}

    specs = {
        "fully synthetic": LoopSpec(
            "fully_synthetic", generations=10, n_initial=1000, n_synthetic=500
        ),
        "fresh data": LoopSpec(
            "fresh_data", generations=10, n_initial=1000, n_real=500, n_synthetic=500
        ),
    }
    for name, spec in specs.items():
        with tempfile.TemporaryDirectory() as run_dir:
            start = time.perf_counter()
            result = engine.run(
                spec,
                lambda: ClassGaussianMixture(10, reg=1e-3, clip=(-1, 1)),
                data.source("digits"),
                evaluate,
                run_dir,
                progress=False,
            )
            first = time.perf_counter() - start
            start = time.perf_counter()
            engine.run(
                spec, result.make_model, data.source("digits"), evaluate, run_dir, progress=False
            )
            resumed = time.perf_counter() - start
        per_stage = {
            stage: sum(g.seconds[stage] for g in result.generations) / spec.generations
            for stage in ("train", "sample", "evaluate")
        }
        print(
            f"\n{name}: {spec.generations} generations in {first:.2f} s; re-run from disk {resumed:.2f} s"
        )
        print(
            "  per generation: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in per_stage.items())
        )
        print(f"  {'gen':>3} {'FID':>7} {'recall':>7} {'smallest class share':>21}")
        for g in result.generations:
            m = g.metrics
            print(
                f"  {g.generation:>3} {m['fid']:>7.2f} {m['recall']:>7.3f} {m['smallest_class']:>21.3f}"
            )


if __name__ == "__main__":
    main()
