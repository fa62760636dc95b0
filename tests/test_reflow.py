"""Reflow schemes: batch composition (the requested real / synthetic ratio), where each kind of pair
comes from, spec validation, generation 1 shared between schemes, and the pairs each scheme counts."""

import pytest
import torch

from mcollapse import data, engine
from mcollapse.evaluation import PointEvaluator
from mcollapse.models.rectified_flow import RectifiedFlow
from mcollapse.reflow import (
    PairBatches,
    ReflowSpec,
    compose_batch,
    converged_solver,
    solver_sweep,
    steps_sweep,
)


def make_model():
    return RectifiedFlow((2,), hidden=16, layers=2, steps=30, batch_size=40, lr=3e-3,
                         sample_steps=4, progress=False, device="cpu")  # fmt: skip


def evaluate(x, y, model, t):
    return {"mean_norm": float(x.norm(dim=1).mean()), "generation": t}


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
    spec = ReflowSpec(scheme, generations=2, n_real=200, n_pairs=0 if scheme == "ocar" else 100,
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
    plain = PairBatches(
        ReflowSpec("reflow", 200, n_pairs=100, generations=2), teacher, teacher, real, pairs, g
    )
    plain(g)
    assert plain.counts == {"real": 0, "synthetic": 40}
    student = make_model()  # differs from the teacher: a refresh must change the real pairs
    spec = ReflowSpec(
        "rca", 200, n_pairs=100, real_ratio=0.5, refresh=2, pair_steps=4, generations=2
    )
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
    base = {"generations": 3, "n_real": 100, "n_pairs": 50}
    with pytest.raises(ValueError, match=match):
        ReflowSpec(**{**base, **kwargs})


def test_runs_share_generation_one_and_count_their_pairs(tmp_path):
    specs = {
        "reflow": ReflowSpec("reflow", 200, n_pairs=100, train_steps=10, pair_steps=4, n_eval=50,
                             generations=3),
        "rca": ReflowSpec("rca", 200, n_pairs=100, real_ratio=0.5, train_steps=10, pair_steps=4,
                          n_eval=50, generations=3),
        "ocar": ReflowSpec("ocar", 200, real_ratio=0.5, train_steps=10, pair_steps=4, n_eval=50,
                           init="scratch", generations=2),
    }  # fmt: skip
    first = engine.sweep(specs, [0], make_model, SOURCE, evaluate, tmp_path, n_jobs=1,
                         progress=False)  # fmt: skip
    runs = {name: rs[0] for name, rs in first.items()}
    assert [len(r.generations) for r in runs.values()] == [3, 3, 2]
    assert len(list((tmp_path / "first").glob("*/model.pt"))) == 1  # 1-RF trained once, shared
    assert runs["reflow"].generations[0].metrics == runs["ocar"].generations[0].metrics
    assert runs["rca"].generations[1].counts == {"real": 200, "synthetic": 200}  # 10 x (20 + 20)
    assert runs["reflow"].generations[2].counts == {"real": 0, "synthetic": 400}
    rows = engine.tidy(first)
    assert {r["run"] for r in rows} == set(specs) and {r["scheme"] for r in rows} == set(specs)
    assert {r["metric"] for r in rows} == {"mean_norm", "generation"}
    model = runs["rca"].model()
    assert model.sample(50, 1.0, torch.Generator().manual_seed(0))[0].shape == (50, 2)
    # another spec is another run directory
    other = engine.run(replace_steps(specs["reflow"]), make_model, SOURCE, evaluate, tmp_path,
                       progress=False)  # fmt: skip
    assert other.root != runs["reflow"].root
    assert [g.resumed for g in other.generations] == [False, False, False]


def replace_steps(spec):
    from dataclasses import replace

    return replace(spec, train_steps=11)


def test_scratch_init_is_refused_for_a_model_that_cannot_finetune(tmp_path):
    from mcollapse.loops import LoopSpec
    from mcollapse.models import ClassGaussianMixture

    spec = LoopSpec("fully_synthetic", 10, n_synthetic=10, generations=2, init="finetune")
    with pytest.raises(
        ValueError, match="init='finetune' is not supported by ClassGaussianMixture"
    ):
        engine.run(spec, lambda: ClassGaussianMixture(2), SOURCE, evaluate, tmp_path)


def test_point_evaluator_and_steps_sweep():
    teacher, real = _teacher()
    z = torch.randn(100, 2, generator=torch.Generator().manual_seed(4))
    evaluator = PointEvaluator(real[:100], straightness_z=z, straight_steps=4)
    found = evaluator(real[100:200], None, teacher, 1)
    assert set(found) == {"w2", "precision", "recall", "straightness", "n_generated", "n_reference"}
    assert found["w2"] < 0.5 and found["recall"] > 0.5  # real vs real
    sweep = steps_sweep(teacher, z, lambda x: float(x.norm(dim=1).mean()), steps=(1, 4))
    assert list(sweep) == [1, 4]
    assert sweep[4] == pytest.approx(float(teacher.generate(z, 4).norm(dim=1).mean()))


def test_the_independent_null_pairs_fresh_noise_with_real_items_and_oras_inverts_noisily():
    teacher, real = _teacher()
    g = torch.Generator().manual_seed(4)
    null = PairBatches(ReflowSpec("independent", 200, generations=2), teacher, make_model(), real,
                       None, g)  # fmt: skip
    x0, x1 = null(g)
    assert (x1[:, None] == real[None]).all(-1).any(-1).all()
    assert not torch.allclose(x0, teacher.invert(x1, 4), atol=0.1)  # not the teacher's noise
    assert abs(x0.std().item() - 1) < 0.3 and null.counts == {"real": 40, "synthetic": 0}
    spec = ReflowSpec("ocar", 200, real_ratio=0.5, pair_steps=4, stochastic=True, generations=2)
    oras = PairBatches(spec, teacher, make_model(), real, None, g, chunk=3)
    for _ in range(4):  # crosses a refill of the queue
        x0, x1 = oras(g)
        exact = teacher.invert(x1[:20], 4)
        gap = (x0[:20] - exact).abs().max().item()
        assert 0 < gap < 0.2  # near the deterministic inversion, but not on it
        assert torch.allclose(teacher.generate(x0[20:], 4), x1[20:], atol=1e-5)


def test_ocar_makes_no_more_teacher_pairs_than_the_round_trains_on():
    teacher, real = _teacher()
    made = []
    generate = teacher.generate
    teacher.generate = lambda z, *a, **k: made.append(len(z)) or generate(z, *a, **k)
    spec = ReflowSpec("ocar", 200, real_ratio=0.5, pair_steps=4, train_steps=7, generations=2)
    g = torch.Generator().manual_seed(5)
    batches = PairBatches(spec, teacher, make_model(), real, None, g, chunk=3)
    for _ in range(7):
        batches(g)
    assert made == [3 * 20, 3 * 20, 1 * 20]  # chunks of 3 mini-batches, the last one cut to 1


def test_solver_sweep_scores_each_solver_and_names_the_converged_one():
    teacher, _ = _teacher()
    z = torch.randn(50, 2, generator=torch.Generator().manual_seed(6))
    exact = teacher.generate(z, 64, "heun")
    grid = {"euler": [1, 16], "heun": [2, 64]}
    gaps = solver_sweep(teacher, z, lambda x: float((x - exact).abs().max()), grid)
    assert list(gaps) == [("euler", 1), ("euler", 16), ("heun", 2), ("heun", 64)]
    assert gaps[("heun", 64)] == 0 and gaps[("euler", 1)] > gaps[("euler", 16)] > 0
    assert converged_solver(grid) == ("heun", 64)
    assert converged_solver({"euler": [3, 9]}) == ("euler", 9)
    with pytest.raises(ValueError, match="method must be one of"):
        solver_sweep(teacher, z, float, {"rk4": [2]})
