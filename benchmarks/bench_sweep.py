"""Wall time of one notebook's independent loops on this machine: serially with two torch threads,
on two local processes with one thread each, and on a two-worker Dask LocalCluster.

The loops are notebook 04's rectified flows on two-moons at the ``cpu`` profile (three loops, 26
generations in all). Prints a table and whether the records agree; asserts nothing.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

from mcollapse import data, engine, seeds
from mcollapse.evaluation import PointEvaluator
from mcollapse.loops import LoopSpec
from mcollapse.models.rectified_flow import RectifiedFlow
from mcollapse.profiles import resolve


def main(generations: int | None = None) -> None:
    toy = resolve("04", "cpu")["toy"]
    gens = generations or toy["generations"]
    source = data.toy(toy["name"])
    test = source.sample(toy["n_test"], seeds.torch_generator(0, "toy", "test"))[0]
    evaluate = PointEvaluator(test, n=toy["n_test"], metrics=("w2",))

    def make_flow():
        return RectifiedFlow((2,), net="mlp", **toy["flow"], device="cpu", progress=False)

    sizes = dict(n_synthetic=toy["n_synthetic"], n_eval=toy["n_test"])
    specs = {
        f"fresh, n_ini={n0}": LoopSpec("fresh_data", n0, n_real=toy["n_real"], generations=gens,
                                       **sizes)
        for n0 in toy["n_initial"]
    }  # fmt: skip
    specs["fully synthetic"] = LoopSpec("fully_synthetic", max(toy["n_initial"]),
                                        generations=max(2, gens * 6 // 10), **sizes)  # fmt: skip
    n_gen = sum(s.generations for s in specs.values())
    print(f"notebook 04's toy loops at cpu: {len(specs)} loops, {n_gen} generations,"
          f" {toy['flow']['steps']} steps each; {os.cpu_count()} cores")  # fmt: skip

    def timed(label, **kw):
        with tempfile.TemporaryDirectory() as run_dir:
            start = time.perf_counter()
            out = engine.sweep(
                specs, [0], make_flow, source, evaluate, run_dir, progress=False, **kw
            )
            seconds = time.perf_counter() - start
        print(f"  {label:45s} {seconds:7.1f} s")
        return seconds, engine.tidy(out)

    serial2, rows2 = timed("serial, 2 torch threads", n_jobs=1, n_threads=2)
    serial1, rows1 = timed("serial, 1 torch thread", n_jobs=1)
    procs, rows_p = timed("2 local processes, 1 thread each", n_jobs=2)
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                     dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):  # fmt: skip
        dask_s, rows_d = timed("2-worker Dask LocalCluster, 1 thread each", scheduler=client)
    print(f"  speed-up of 2 processes over serial with 2 threads: {serial2 / procs:.2f}x;"
          f" Dask: {serial2 / dask_s:.2f}x")  # fmt: skip
    print(f"  records identical: 1-thread serial = processes = Dask: {rows1 == rows_p == rows_d};"
          f" 2-thread serial the same numbers: {rows2 == rows1}")  # fmt: skip


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else None)
