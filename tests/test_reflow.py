"""Reflow schemes: batch composition (the requested real / synthetic ratio), where each kind of pair
comes from, spec validation, per-round persistence, resume and recomputation of damaged rounds."""

import warnings

import pytest
import torch

from mcollapse import data
from mcollapse.loops import LoopWarning
from mcollapse.models.rectified_flow import RectifiedFlow
from mcollapse.reflow import (
    PairBatches,
    PointEvaluator,
    ReflowSpec,
    compose_batch,
    run_reflow,
    run_reflows,
    steps_sweep,
    tidy,
)


def make_model():
    return RectifiedFlow((2,), hidden=16, layers=2, steps=30, batch_size=40, lr=3e-3,
                         sample_steps=4, progress=False, device="cpu")  # fmt: skip


def evaluate(x, model, k):
    return {"mean_norm": float(x.norm(dim=1).mean()), "round": k}


SOURCE = data.toy("moons")


def _teacher():
    model = make_model()
    x, y = SOURCE.sample(200, torch.Generator().manual_seed(0))
    model.fit(x, y, torch.Generator().manual_seed(1))
    return model, x


@pytest.mark.parametrize("n, ratio, expected", [(64, 0.5, (32, 32)), (10, 0.25, (2, 8)),
                                                (5, 0.01, (1, 4)), (5, 0.0, (0, 5))])  # fmt: skip
def test_compose_batch(n, ratio, expected):
    assert compose_batch(n, ratio) == expected


@pytest.mark.parametrize(
    "scheme, ratio", [("rca", 0.5), ("rca", 0.25), ("ocar", 0.5), ("ocar", 0.3)]
)
def test_batches_hold_the_requested_real_synthetic_ratio(scheme, ratio):
    teacher, real = _teacher()
    spec = ReflowSpec(scheme, rounds=1, n_real=200, n_pairs=0 if scheme == "ocar" else 100,
                      real_ratio=ratio, pair_steps=4)  # fmt: skip
    g = torch.Generator().manual_seed(2)
    pairs = None if scheme == "ocar" else teacher.generate_pairs(100, g, 4)
    batches = PairBatches(spec, teacher, make_model(), real, pairs, g)
    n_real = round(ratio * 40)
    for _ in range(5):
        x0, x1 = batches(g)
        assert x0.shape == x1.shape == (40, 2)
        # the first n_real items are real data with their inverted noise ...
        is_real = (x1[:n_real, None] == real[None]).all(-1).any(-1)
        assert is_real.all()
        assert torch.allclose(x0[:n_real], teacher.invert(x1[:n_real], 4), atol=1e-5)
        # ... the rest are synthetic pairs: the teacher carries the noise to the data
        assert not (x1[n_real:, None] == real[None]).all(-1).any(-1).any()
        assert torch.allclose(teacher.generate(x0[n_real:], 4), x1[n_real:], atol=1e-5)
    assert batches.counts == {"real": 5 * n_real, "synthetic": 5 * (40 - n_real)}


def test_plain_reflow_batches_are_all_synthetic_and_rca_refreshes():
    teacher, real = _teacher()
    g = torch.Generator().manual_seed(3)
    pairs = teacher.generate_pairs(100, g, 4)
    plain = PairBatches(ReflowSpec("reflow", 1, 200, n_pairs=100), teacher, teacher, real, pairs, g)
    plain(g)
    assert plain.counts == {"real": 0, "synthetic": 40}
    student = make_model()  # differs from the teacher: a refresh must change the real pairs
    spec = ReflowSpec("rca", 1, 200, n_pairs=100, real_ratio=0.5, refresh=2, pair_steps=4)
    rca = PairBatches(spec, teacher, student, real, pairs, g)
    first = rca.inverted.clone()
    rca(g), rca(g)
    assert torch.equal(rca.inverted, first)
    rca(g)  # the third call refreshes with the student
    assert torch.allclose(rca.inverted, student.invert(real, 4), atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"scheme": "dance"}, "scheme"),
        ({"scheme": "reflow", "real_ratio": 0.5}, "real_ratio"),
        ({"scheme": "rca", "real_ratio": 0.0}, "real_ratio"),
        ({"scheme": "rca", "real_ratio": 1.5}, "real_ratio"),
        ({"scheme": "ocar", "real_ratio": 0.5, "n_pairs": 10}, "n_pairs"),
        ({"scheme": "reflow", "n_pairs": 0}, "n_pairs"),
        ({"scheme": "reflow", "n_real": 0}, "n_real"),
        ({"scheme": "reflow", "init": "warm"}, "init"),
        ({"scheme": "rca", "real_ratio": 0.5, "stochastic": 1}, "stochastic"),
    ],
)
def test_bad_specs_raise(kwargs, match):
    base = {"rounds": 2, "n_real": 100, "n_pairs": 50}
    with pytest.raises(ValueError, match=match):
        ReflowSpec(**{**base, **kwargs})


def test_runs_persist_share_round_zero_and_resume(tmp_path):
    specs = {
        "reflow": ReflowSpec("reflow", 2, n_real=200, n_pairs=100, train_steps=10, pair_steps=4,
                             n_eval=50),
        "rca": ReflowSpec("rca", 2, n_real=200, n_pairs=100, real_ratio=0.5, train_steps=10,
                          pair_steps=4, n_eval=50),
        "ocar": ReflowSpec("ocar", 1, n_real=200, real_ratio=0.5, train_steps=10, pair_steps=4,
                           n_eval=50, init="scratch"),
    }  # fmt: skip
    first = run_reflows(specs, make_model, SOURCE, evaluate, tmp_path, key={"t": 1}, progress=False)
    assert [len(r.rounds) for r in first.values()] == [3, 3, 2]
    assert len({r.dirs[0] for r in first.values()}) == 1  # round 0 trained once, shared
    assert first["reflow"].rounds[0].metrics == first["ocar"].rounds[0].metrics
    assert first["rca"].rounds[1].counts == {"real": 200, "synthetic": 200}  # 10 steps x 20 + 20
    rows = tidy(first)
    assert {r["run"] for r in rows} == set(specs)
    assert {r["metric"] for r in rows} == {"mean_norm", "round"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = run_reflows(specs, make_model, SOURCE, evaluate, tmp_path, key={"t": 1},
                            progress=False)  # fmt: skip
    assert all(r.resumed for res in again.values() for r in res.rounds)
    for name in specs:
        assert [r.metrics for r in again[name].rounds] == [r.metrics for r in first[name].rounds]
        assert torch.equal(again[name].rounds[-1].samples, first[name].rounds[-1].samples)
    model = again["rca"].model()
    assert model.sample(50, 1.0, torch.Generator().manual_seed(0))[0].shape == (50, 2)
    # a damaged round is recomputed, with a warning, and so is every later round
    damaged = first["rca"].dirs[1] / "samples.pt"
    damaged.write_bytes(damaged.read_bytes()[:10])
    with pytest.warns(LoopWarning) as caught:
        fixed = run_reflow(specs["rca"], make_model, SOURCE, evaluate, tmp_path, key={"t": 1},
                           progress=False)  # fmt: skip
    said = [str(w.message) for w in caught]
    assert "sha256" in said[0] and "round_02: an earlier round was recomputed" in said[1]
    assert [r.resumed for r in fixed.rounds] == [True, False, False]
    assert [r.metrics for r in fixed.rounds] == [r.metrics for r in first["rca"].rounds]
    # another key is another run directory
    other = run_reflow(specs["reflow"], make_model, SOURCE, evaluate, tmp_path, key={"t": 2},
                       progress=False)  # fmt: skip
    assert other.run_dir != first["reflow"].run_dir
    assert not any(r.resumed for r in other.rounds)


def test_run_reflow_rejects_bad_arguments(tmp_path):
    spec = ReflowSpec("reflow", 1, n_real=10, n_pairs=10)
    with pytest.raises(ValueError, match="spec"):
        run_reflow({"scheme": "reflow"}, make_model, SOURCE, evaluate, tmp_path)
    with pytest.raises(ValueError, match="evaluate"):
        run_reflow(spec, make_model, SOURCE, None, tmp_path)
    with pytest.raises(ValueError, match="source"):
        run_reflow(spec, make_model, object(), evaluate, tmp_path)


def test_point_evaluator_and_steps_sweep():
    teacher, real = _teacher()
    z = torch.randn(100, 2, generator=torch.Generator().manual_seed(4))
    found = PointEvaluator(real[:100], z, straight_steps=4)(real[100:200], teacher, 0)
    assert set(found) == {"w2", "precision", "recall", "straightness"}
    assert found["w2"] < 0.5 and found["recall"] > 0.5  # real vs real
    sweep = steps_sweep(teacher, z, lambda x: float(x.norm(dim=1).mean()), steps=(1, 4))
    assert list(sweep) == [1, 4]
    assert sweep[4] == pytest.approx(float(teacher.generate(z, 4).norm(dim=1).mean()))
