"""The run engine, for both kinds of step (composed items and reflow pairs): resume and recompute
what is damaged, never run one (spec, seed) twice at once, and give the same numbers serially, on
local processes and on a Dask cluster."""

import functools
import json
import subprocess
import sys
import textwrap
import types
import warnings

import pytest
import torch

from mcollapse import data, engine, seeds
from mcollapse.evaluation import PointEvaluator
from mcollapse.loops import LoopSpec
from mcollapse.models.rectified_flow import RectifiedFlow
from mcollapse.reflow import ReflowSpec

SOURCE = data.toy("moons")
make_flow = functools.partial(RectifiedFlow, (2,), hidden=16, layers=2, steps=40, batch_size=50,
                              sample_steps=4, device="cpu", progress=False)  # fmt: skip
EVALUATE = PointEvaluator(SOURCE.sample(300, seeds.torch_generator(0, "test"))[0], metrics=("w2",))

STEPS = {
    "loop": LoopSpec("fully_synthetic", 200, n_synthetic=200, generations=4),
    "reflow": ReflowSpec("reflow", 200, n_pairs=200, train_steps=20, pair_steps=4, n_eval=200,
                         generations=4),
}  # fmt: skip


def run(spec, run_dir, evaluate=EVALUATE, **kw):
    return engine.run(spec, make_flow, SOURCE, evaluate, run_dir, progress=False, **kw)


class FailAt:
    def __init__(self, generation):
        self.generation = generation

    def __call__(self, x, y, model, t):
        if t == self.generation:
            raise RuntimeError("interrupted")
        return EVALUATE(x, y, model, t)


@pytest.mark.parametrize("step", list(STEPS))
def test_resume_and_recompute_for_every_step_kind(step, tmp_path):
    spec = STEPS[step]
    whole = run(spec, tmp_path / "whole")
    assert [g.generation for g in whole.generations] == [1, 2, 3, 4]
    with pytest.raises(RuntimeError, match="interrupted"):
        run(spec, tmp_path / "cut", evaluate=FailAt(3))
    with pytest.warns(engine.RunWarning, match="gen_03.manifest.json: missing"):
        resumed = run(spec, tmp_path / "cut")
    assert [g.resumed for g in resumed.generations] == [True, True, False, False]
    assert resumed.records() == whole.records()
    samples = resumed.root / "gen_02" / "samples.pt"
    samples.write_bytes(samples.read_bytes()[:100])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = run(spec, tmp_path / "cut")
    said = [str(w.message) for w in caught if issubclass(w.category, engine.RunWarning)]
    assert "gen_02/samples.pt" in said[0] and len(said) == 3  # and generations 3, 4 after it
    assert again.records() == whole.records()
    for x, y in zip(
        again.model(4).state_dict().values(), whole.model(4).state_dict().values(), strict=True
    ):
        assert not torch.is_tensor(x) or torch.equal(x, y)


def test_the_numbers_do_not_depend_on_the_callers_threads(tmp_path):
    torch.set_num_threads(2)
    a = run(STEPS["loop"], tmp_path / "a").records()
    torch.set_num_threads(1)
    b = run(STEPS["loop"], tmp_path / "b").records()
    assert a == b and torch.get_num_threads() == 1


SWEEP = {
    "fully synthetic": LoopSpec("fully_synthetic", 200, n_synthetic=200, generations=3),
    "fresh": LoopSpec("fresh_data", 200, n_real=100, n_synthetic=100, generations=3),
    "reflow": ReflowSpec("reflow", 200, n_pairs=200, train_steps=20, pair_steps=4, n_eval=200,
                         generations=2),
}  # fmt: skip


def sweep(run_dir, **kw):
    return engine.sweep(SWEEP, [0, 1], make_flow, SOURCE, EVALUATE, run_dir, progress=False, **kw)


def test_a_sweep_gives_the_same_records_serially_on_processes_and_on_dask(tmp_path):
    from distributed import Client, LocalCluster

    serial = sweep(tmp_path / "serial", n_jobs=1)
    assert list(serial) == list(SWEEP) and all(len(rs) == 2 for rs in serial.values())
    assert [r.spec.seed for r in serial["fresh"]] == [0, 1]
    rows = engine.tidy(serial)
    assert rows[0].keys() >= {"run", "seed", "generation", "metric", "value"}
    assert len({(r["run"], r["seed"]) for r in rows}) == 6
    # generation 1 (1-rectified flow on the same 200 real points) is trained once per seed and
    # shared by the loops and the reflow run
    assert len(list((tmp_path / "serial" / "first").glob("*/model.pt"))) == 2
    processes = sweep(tmp_path / "processes", n_jobs=2)
    assert engine.tidy(processes) == rows
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                     dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):  # fmt: skip
        on_dask = sweep(tmp_path / "dask", scheduler=client)
    assert engine.tidy(on_dask) == rows
    assert (
        processes["reflow"][1].model(2).state_dict().keys()
        == on_dask["reflow"][1].model(2).state_dict().keys()
    )
    again = sweep(tmp_path / "serial", n_jobs=2)  # everything on disk: loaded, not recomputed
    assert all(g.resumed for rs in again.values() for r in rs for g in r.generations)


def test_sweep_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="specs must be a non-empty mapping"):
        engine.sweep({}, [0], make_flow, SOURCE, EVALUATE, tmp_path)
    with pytest.raises(ValueError, match="seeds must be a non-empty list of distinct"):
        engine.sweep(SWEEP, [1, 1], make_flow, SOURCE, EVALUATE, tmp_path)
    with pytest.raises(ValueError, match="seed must be an integer"):
        engine.sweep(SWEEP, [0.5], make_flow, SOURCE, EVALUATE, tmp_path)
    with pytest.raises(ValueError, match="n_jobs must be an integer"):
        engine.sweep(SWEEP, [0], make_flow, SOURCE, EVALUATE, tmp_path, n_jobs=0)


WRITER = textwrap.dedent(
    """
    import json, sys, functools
    from mcollapse import data, engine
    from mcollapse.evaluation import PointEvaluator
    from mcollapse.loops import LoopSpec
    from mcollapse.models.rectified_flow import RectifiedFlow

    source = data.toy("moons")
    make = functools.partial(RectifiedFlow, (2,), hidden=16, layers=2, steps=150, batch_size=50,
                             sample_steps=4, device="cpu", progress=False)
    spec = LoopSpec("fully_synthetic", 200, n_synthetic=200, generations=3)
    test = source.sample(100, engine.Context(spec, source, make, None, [], 1).generator("x"))[0]
    r = engine.run(spec, make, source, PointEvaluator(test, metrics=("w2",)), sys.argv[1],
                   progress=False)
    print(json.dumps({"resumed": [g.resumed for g in r.generations], "records": r.records()}))
    """
)


def test_two_writers_of_one_run_do_the_work_once(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path / "runs")],
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]  # fmt: skip
    out = [json.loads(p.communicate(timeout=300)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert out[0]["records"] == out[1]["records"]
    resumed = sorted(tuple(o["resumed"]) for o in out)
    assert resumed == [(False, False, False), (True, True, True)]  # one computed, one waited


def test_another_evaluator_rescores_stored_samples_without_retraining(tmp_path):
    spec = STEPS["loop"]
    first = run(spec, tmp_path)
    model_pt = first.root / "gen_02" / "model.pt"
    before = model_pt.stat().st_mtime_ns
    richer = PointEvaluator(EVALUATE.test, metrics=("w2", "prc"))
    again = run(spec, tmp_path, evaluate=richer)
    assert all(g.resumed for g in again.generations)  # model and samples reused
    assert model_pt.stat().st_mtime_ns == before
    assert {"w2", "precision", "recall"} <= set(again.generations[1].metrics)
    assert again.generations[1].metrics["w2"] == first.generations[1].metrics["w2"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rewritten manifests verify
        third = run(spec, tmp_path, evaluate=richer)
    assert third.records() == again.records()


def test_a_sweep_starts_the_longest_runs_first_and_returns_them_in_order(tmp_path, monkeypatch):
    common = dict(train_steps=5, generations=2)
    specs = {"short": ReflowSpec("reflow", 50, n_pairs=50, **common),
             "long": ReflowSpec("ocar", 50, real_ratio=0.5, **common)}  # fmt: skip
    assert specs["long"].cost() > specs["short"].cost()
    started = []

    def fake_parallel(calls, *args):
        started.extend((task.__name__, name, spec.seed) for task, name, spec in calls)
        return [types.SimpleNamespace(name=f"{name} {spec.seed}") for _, name, spec in calls]

    monkeypatch.setattr(engine, "_parallel", fake_parallel)
    out = engine.sweep(specs, [0, 1], make_flow, SOURCE, EVALUATE, tmp_path, n_jobs=2)
    firsts = [("_first_only", "short", 0), ("_first_only", "short", 1)]  # one per real draw
    runs = [("_run_quietly", "long", 0), ("_run_quietly", "long", 1),
            ("_run_quietly", "short", 0), ("_run_quietly", "short", 1)]  # fmt: skip
    assert started == firsts + runs
    assert {k: [r.name for r in v] for k, v in out.items()} == {
        "short": ["short 0", "short 1"],
        "long": ["long 0", "long 1"],
    }
