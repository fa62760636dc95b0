"""The loop engine composes each generation's training set as specified, reproduces itself, resumes,
recomputes what is corrupt, refuses bad input, and shows collapse exactly where the literature does."""

import json
import os
import shutil
import subprocess
import sys
import warnings
from dataclasses import asdict

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits
from torch_fidelity.metric_prc import calculate_precision_recall_full

from mcollapse import data, engine
from mcollapse.engine import INITS
from mcollapse.engine import RunWarning as LoopWarning
from mcollapse.loops import KINDS, POOLS, LoopSpec, label_drift
from mcollapse.models import ClassGaussianMixture


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny problems: BLAS thread pools only add latency (tens of ms per call on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):  # numpy's BLAS, used by scikit-learn's EM
        yield
    torch.set_num_threads(threads)


class Blobs:
    """A 2-D toy with unlimited fresh samples: four Gaussian blobs, labelled by blob."""

    centres = torch.tensor([[-2.0, -2.0], [-2.0, 2.0], [2.0, -2.0], [2.0, 2.0]])

    def sample(self, n, generator):
        y = torch.randint(0, 4, (n,), generator=generator)
        return self.centres[y] + 0.5 * torch.randn(n, 2, generator=generator), y


class Pool:
    """A finite pool sampled without replacement; x = (0, id) marks an item as real with its id."""

    def sample(self, n, generator):
        ids = torch.randperm(10_000, generator=generator)[:n].float()
        return torch.stack([torch.zeros(n), ids], 1), torch.zeros(n, dtype=torch.int64)


class Recorder:
    """A fake model. fit records what it received and the tag it started from, then takes the tag
    k (the k-th fit of the run); sample makes items x = (tag, index), so provenance is readable."""

    finetunes = True

    def __init__(self, log):
        self.log, self.tag = log, 0

    def settings(self):
        return {"model": "Recorder"}

    def fit(self, x, y, generator):
        self.log.append({"x": x.clone(), "start": self.tag})
        self.tag = len(self.log)

    def sample(self, n, bias, generator):
        x = torch.stack([torch.full((n,), float(self.tag)), torch.arange(n).float()], 1)
        return x, torch.zeros(n, dtype=torch.int64)

    def state_dict(self):
        return {"tag": torch.tensor(self.tag)}

    def load_state_dict(self, state):
        self.tag = int(state["tag"])


def count_items(x, y, model, generation):
    return {"n": len(x), "tag_sum": float(x[:, 0].sum())}


def expected_provenance(kind, pool, t, n_initial=7, n_real=5, ns=3):
    if t == 1:
        return {"0": n_initial}
    by = {} if kind == "fully_synthetic" else {"0": n_real}
    if pool == "previous":
        by[str(t - 1)] = ns
    elif pool == "accumulate":
        by.update({str(s): ns for s in range(1, t)})
    return by


@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("pool", POOLS)
@pytest.mark.parametrize("kind", KINDS)
def test_composition_of_every_generation(kind, pool, init, tmp_path):
    n_real = 0 if kind == "fully_synthetic" else 5
    spec = LoopSpec(
        kind,
        generations=5,
        n_initial=7,
        n_real=n_real,
        n_synthetic=3,
        n_eval=6,
        synthetic_pool=pool,
        init=init,
    )
    log = []
    result = engine.run(spec, lambda: Recorder(log), Pool(), count_items, tmp_path, progress=False)
    assert len(log) == 5 and [g.generation for g in result.generations] == [1, 2, 3, 4, 5]
    first_real = log[0]["x"][:, 1]
    for t, (g, fit) in enumerate(zip(result.generations, log, strict=True), start=1):
        x, prov = fit["x"], g.provenance
        # the provenance tensor describes exactly the items fit received
        assert prov.dtype == torch.int16 and torch.equal(prov, x[:, 0].to(torch.int16))
        by = g.counts["by_provenance"]
        real = x[prov == 0, 1]
        synthetic = x[prov > 0]
        assert g.counts["real"] == len(real) and g.counts["synthetic"] == len(synthetic)
        if pool == "accumulate_subsample" and t > 1:
            assert len(synthetic) == 3 and set(map(int, by)) - {0} <= set(range(1, t))
            assert len({tuple(item) for item in synthetic.tolist()}) == 3  # without replacement
        else:
            assert by == expected_provenance(kind, pool, t)
        assert (
            synthetic[:, 1] < 3
        ).all()  # only the first n_synthetic of n_eval = 6 samples feed on
        assert fit["start"] == (t - 1 if init == "finetune" and t > 1 else 0)
        assert g.metrics == {"n": 6.0, "tag_sum": 6.0 * t}
        if t == 1:
            assert len(real) == 7
        elif kind == "synthetic_augmented":
            assert torch.equal(real, first_real[:5])  # the same fixed real set every generation
        elif kind == "fresh_data":
            previous = log[t - 2]["x"]
            assert len(real) == 5 and not torch.equal(real, previous[previous[:, 0] == 0, 1][:5])
            assert not set(real.tolist()) & set(first_real.tolist())  # really fresh
    rows = result.records()
    assert len(rows) == 10 and rows[-1]["n_train"] == len(log[-1]["x"]) and rows[-1]["n_eval"] == 6
    assert set(rows[0]) == {
        "run", "seed", "generation", "metric", "value", "kind", "bias", "synthetic_pool", "init",
        "n_initial", "n_real", "n_synthetic", "n_eval", "n_train", "n_train_real",
        "n_train_synthetic",
    }  # fmt: skip


def test_hand_computed_counts(tmp_path):
    spec = LoopSpec(
        "synthetic_augmented",
        generations=4,
        n_initial=7,
        n_real=5,
        n_synthetic=3,
        synthetic_pool="accumulate",
    )
    g4 = engine.run(
        spec, lambda: Recorder([]), Pool(), count_items, tmp_path, progress=False
    ).generations[3]
    assert g4.counts == {
        "real": 5,
        "synthetic": 9,
        "by_provenance": {"0": 5, "1": 3, "2": 3, "3": 3},
    }
    assert g4.provenance.tolist() == [0] * 5 + [1] * 3 + [2] * 3 + [3] * 3


def test_subsample_draws_from_the_whole_pool(tmp_path):
    spec = LoopSpec(
        "fully_synthetic",
        generations=8,
        n_initial=7,
        n_synthetic=3,
        synthetic_pool="accumulate_subsample",
    )
    result = engine.run(spec, lambda: Recorder([]), Pool(), count_items, tmp_path, progress=False)
    older = [set(g.provenance.tolist()) - {g.generation - 1} for g in result.generations[2:]]
    assert any(older)  # some generation trains on items older than the previous generation's


# ---------------------------------------------------------------------------------------------
# the science: collapse without fresh data, none with it
# ---------------------------------------------------------------------------------------------

REFERENCE = Blobs().sample(1000, torch.Generator().manual_seed(12345))[0]


def spread_and_recall(x, y, model, generation):
    precision, recall = calculate_precision_recall_full(x, REFERENCE, neighborhood=5)
    return {
        "logdet": torch.logdet(torch.cov(x.T.double())).item(),
        "precision": precision,
        "recall": recall,
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fully_synthetic_collapses_and_fresh_data_does_not(seed, tmp_path):
    def run(**kw):
        spec = LoopSpec(generations=30, n_initial=500, n_synthetic=20, n_eval=500, seed=seed, **kw)
        result = engine.run(
            spec,
            lambda: ClassGaussianMixture(4),
            Blobs(),
            spread_and_recall,
            tmp_path,
            progress=False,
        )
        return result.generations[0].metrics, result.generations[-1].metrics

    first, last = run(kind="fully_synthetic")
    assert first["recall"] > 0.9 and first["logdet"] > 2.5
    assert last["logdet"] < first["logdet"] - 3  # the sample covariance lost over 95% of its volume
    assert last["recall"] < 0.2  # and most of the real distribution is no longer covered
    first, last = run(kind="fresh_data", n_real=500)
    assert abs(last["logdet"] - first["logdet"]) < 0.3
    assert last["recall"] > 0.9


# ---------------------------------------------------------------------------------------------
# determinism, resume, corruption
# ---------------------------------------------------------------------------------------------


class CountingModel(ClassGaussianMixture):
    """The reference model, counting fits in ``calls`` and raising at the fit numbered ``fail``.
    It claims to fine-tune so that the engine's bookkeeping of ``init="finetune"`` is tested."""

    finetunes = True

    def __init__(self, calls, fail=None):
        super().__init__(4, components=2)
        self.calls, self.fail = calls, fail

    def settings(self):
        return {"model": "CountingModel"}

    def fit(self, x, y, generator):
        self.calls.append(len(x))
        if len(self.calls) == self.fail:
            raise RuntimeError("interrupted in fit")
        super().fit(x, y, generator)


SPEC = LoopSpec("synthetic_augmented", generations=5, n_initial=60, n_real=40, n_synthetic=30, n_eval=50, bias=0.8,
                synthetic_pool="accumulate_subsample", init="finetune", seed=3)  # fmt: skip


def run(run_dir, spec=SPEC, calls=None, fail=None, evaluate=spread_and_recall):
    calls = [] if calls is None else calls
    return engine.run(
        spec, lambda: CountingModel(calls, fail), Blobs(), evaluate, run_dir, progress=False
    )


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return run(tmp_path_factory.mktemp("uninterrupted"))


def test_same_spec_same_numbers_other_seed_other_numbers(uninterrupted, tmp_path):
    again = engine.run(
        SPEC, lambda: CountingModel([]), Blobs(), spread_and_recall, tmp_path, progress=True
    )
    assert again.records() == uninterrupted.records()
    for a, b in zip(again.generations, uninterrupted.generations, strict=True):
        assert torch.equal(a.samples[0], b.samples[0]) and torch.equal(a.samples[1], b.samples[1])
        assert a.seeds == b.seeds and not a.resumed
    other = run(tmp_path, LoopSpec(**{**asdict(SPEC), "seed": 4}))
    assert other.root != again.root
    assert [r["value"] for r in other.records()] != [r["value"] for r in again.records()]


def test_final_model_samples_the_last_generation_again(uninterrupted):
    last = uninterrupted.generations[-1]
    x, y = uninterrupted.model().sample(
        50, SPEC.bias, torch.Generator().manual_seed(last.seeds["sample"])
    )
    assert torch.equal(x, last.samples[0]) and torch.equal(y, last.samples[1])


def test_a_finished_run_is_loaded_not_recomputed(uninterrupted):
    calls = []
    again = run(uninterrupted.root.parent, calls=calls)
    assert calls == [] and all(g.resumed for g in again.generations)
    assert again.records() == uninterrupted.records()
    assert torch.equal(again.generations[2].provenance, uninterrupted.generations[2].provenance)


class FailingEvaluate:
    def __init__(self, generation):
        self.generation = generation

    def __call__(self, x, y, model, generation):
        if generation == self.generation:
            raise RuntimeError("interrupted in evaluate")
        return spread_and_recall(x, y, model, generation)


@pytest.mark.parametrize("where", ["fit", "evaluate"])
def test_resume_after_an_interruption_in_generation_3(where, uninterrupted, tmp_path):
    calls = []
    with pytest.raises(RuntimeError, match=f"interrupted in {where}"):
        if where == "fit":
            run(tmp_path, calls=calls, fail=3)
        else:
            run(tmp_path, calls=calls, evaluate=FailingEvaluate(3))
    assert len(calls) == 3
    calls.clear()
    with pytest.warns(LoopWarning, match="gen_03.manifest.json: missing"):
        resumed = run(tmp_path, calls=calls)
    # generations 1-2 are loaded; 3 is refitted only if it had not finished training
    assert len(calls) == (3 if where == "fit" else 2)
    assert [g.resumed for g in resumed.generations] == [True, True, False, False, False]
    assert resumed.records() == uninterrupted.records()


def test_an_altered_model_of_an_interrupted_generation_is_refitted(uninterrupted, tmp_path):
    with pytest.raises(RuntimeError):
        run(tmp_path, evaluate=FailingEvaluate(3))
    model_pt = next(tmp_path.glob("*/gen_03/model.pt"))
    flip_a_byte(model_pt)
    calls = []
    with pytest.warns(LoopWarning, match="gen_03"):
        resumed = run(tmp_path, calls=calls)
    assert len(calls) == 3 and resumed.records() == uninterrupted.records()


def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def edit_spec(path):
    manifest = json.loads(path.read_text())
    manifest["spec"]["bias"] = 0.5
    path.write_text(json.dumps(manifest))


def edit_counts(path):
    manifest = json.loads(path.read_text())
    manifest["counts"]["real"] += 1
    path.write_text(json.dumps(manifest))


CORRUPTIONS = {
    "model.pt": truncate,
    "samples.pt": truncate,
    "metrics.json": flip_a_byte,
    "manifest.json": edit_spec,
}


@pytest.mark.parametrize(
    "name", [*CORRUPTIONS, "samples.pt-flipped", "metrics.json-deleted", "counts-edited", "foreign"]
)
def test_a_corrupt_generation_is_recomputed_with_the_later_ones(name, uninterrupted, tmp_path):
    shutil.copytree(uninterrupted.root, tmp_path / uninterrupted.root.name)
    gen3 = tmp_path / uninterrupted.root.name / "gen_03"
    if name == "samples.pt-flipped":
        name = "samples.pt"
        flip_a_byte(gen3 / name)
    elif name == "metrics.json-deleted":
        name = "metrics.json"
        (gen3 / name).unlink()
    elif name == "counts-edited":  # caught by the manifest's own sha256
        name = "manifest.json"
        edit_counts(gen3 / name)
    elif name == "foreign":  # a sound generation, but of another spec
        name = "manifest.json"
        foreign = run(tmp_path / "other", LoopSpec(**{**asdict(SPEC), "seed": SPEC.seed + 1}))
        shutil.rmtree(gen3)
        shutil.copytree(foreign.root / "gen_03", gen3)
    else:
        CORRUPTIONS[name](gen3 / name)
    calls = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = run(tmp_path, calls=calls)
    messages = [str(w.message) for w in caught if issubclass(w.category, LoopWarning)]
    assert len(messages) == 3 and f"gen_03/{name}" in messages[0]
    assert "gen_04" in messages[1] and "gen_05" in messages[2]
    assert len(calls) == 3  # generations 3, 4 and 5 are refitted
    assert [g.resumed for g in again.generations] == [True, True, False, False, False]
    assert again.records() == uninterrupted.records()
    # and the directory is sound again: a third run loads everything
    calls.clear()
    run(tmp_path, calls=calls)
    assert calls == []


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------

VALID = {
    "kind": "synthetic_augmented",
    "generations": 3,
    "n_initial": 10,
    "n_real": 10,
    "n_synthetic": 10,
}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"n_initial": -1}, "n_initial"),
        ({"n_initial": 0}, "n_initial"),
        ({"n_real": -1}, "n_real"),
        ({"n_synthetic": -5}, "n_synthetic"),
        ({"n_synthetic": 0}, "n_synthetic"),
        ({"n_eval": -1}, "n_eval"),
        ({"seed": -1}, "seed"),
        ({"bias": 0}, "bias"),
        ({"bias": 1.5}, "bias"),
        ({"bias": "x"}, "bias"),
        ({"kind": "mixed"}, "kind"),
        ({"synthetic_pool": "all"}, "synthetic_pool"),
        ({"init": "warm"}, "init"),
        ({"kind": "fresh_data", "n_real": 0}, "n_real"),
        ({"kind": "fully_synthetic", "n_real": 100}, "n_real"),
        ({"kind": "fresh_data", "n_synthetic": 0}, "n_eval"),
        ({"generations": 0}, "generations"),
        ({"generations": 2.5}, "generations"),
    ],
)
def test_bad_spec_is_rejected_naming_the_field(change, field):
    with pytest.raises(ValueError, match=f"^{field} must"):
        LoopSpec(**{**VALID, **change})


def test_messages_say_what_is_allowed():
    with pytest.raises(ValueError, match="n_real must be 0 for kind='fully_synthetic', got 100"):
        LoopSpec(**{**VALID, "kind": "fully_synthetic", "n_real": 100})
    with pytest.raises(ValueError, match=r"n_real must be >= 1 for kind='fresh_data', got 0"):
        LoopSpec(**{**VALID, "kind": "fresh_data", "n_real": 0})
    assert LoopSpec(**{**VALID, "kind": "fresh_data", "n_synthetic": 0, "n_eval": 5}).n_draw == 5


def test_hash_is_stable_and_covers_fields_and_key():
    spec = LoopSpec(**VALID)
    other_session = subprocess.run(
        [sys.executable, "-c", f"from mcollapse.loops import LoopSpec; print(LoopSpec(**{VALID!r}).hash())"],
        env={**os.environ, "PYTHONHASHSEED": "123"}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert other_session.stdout.strip() == spec.hash()  # stable across sessions
    assert spec.hash() == LoopSpec(**{**VALID, "generations": VALID["generations"] + 7}).hash()
    assert spec.hash() == LoopSpec(**VALID, bias=1).hash()
    assert spec.hash() != LoopSpec(**VALID, seed=1).hash()
    assert (
        spec.hash({"a": 1, "b": [2]})
        == spec.hash({"b": [2], "a": 1})
        != spec.hash({"a": 2, "b": [2]})
    )


def forced(**change):
    spec = LoopSpec(**VALID)
    for name, value in change.items():
        object.__setattr__(spec, name, value)
    return spec


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"spec": asdict(LoopSpec(**VALID))}, "spec"),
        ({"spec": forced(bias=0.0)}, "bias"),
        ({"spec": forced(kind="fresh_data", n_real=0)}, "n_real"),
        ({"evaluate": None}, "evaluate"),
        ({"source": object()}, "source"),
        ({"key": {"model": object()}}, "key"),
        ({"key": ["not", "a", "mapping"]}, "key"),
        ({"run_dir": None}, "run_dir"),
        ({"run_dir": "FILE"}, "run_dir"),
    ],
)
def test_run_loop_validates_before_making_any_model(args, field, tmp_path):
    made = []
    (tmp_path / "file").write_text("")
    kwargs = {
        "spec": LoopSpec(**VALID),
        "source": Blobs(),
        "evaluate": spread_and_recall,
        "run_dir": tmp_path / "runs",
    }
    kwargs.update(args)
    if kwargs["run_dir"] == "FILE":
        kwargs["run_dir"] = tmp_path / "file"
    with pytest.raises(ValueError, match=f"^{field} must"):
        engine.run(make_model=lambda: made.append(1), progress=False, **kwargs)
    assert made == [] and not (tmp_path / "runs").exists()


def test_a_longer_run_reuses_the_generations_of_a_shorter_one(tmp_path, uninterrupted):
    short = LoopSpec(**{**asdict(SPEC), "generations": 3})
    run(tmp_path, short)
    calls = []
    longer = run(tmp_path, calls=calls)
    assert len(calls) == 2  # only generations 4 and 5 are fitted
    assert [g.resumed for g in longer.generations] == [True, True, True, False, False]
    assert longer.records() == uninterrupted.records()


# -- generation 1 is trained once per (seed, real draw, key) and shared by the loops that start there


def shared_spec(**change):
    base = dict(kind="fully_synthetic", generations=2, n_initial=60, n_synthetic=30, seed=5)
    return LoopSpec(**{**base, **change})


def test_loops_starting_from_the_same_model_train_generation_one_once(tmp_path):
    calls = []
    make = lambda: CountingModel(calls)  # noqa: E731
    first = engine.run(shared_spec(), make, Blobs(), spread_and_recall, tmp_path, progress=False)
    assert len(calls) == 2
    other = shared_spec(
        kind="synthetic_augmented", n_real=60, bias=0.5, synthetic_pool="accumulate"
    )
    second = engine.run(other, make, Blobs(), spread_and_recall, tmp_path, progress=False)
    assert len(calls) == 3  # only its generation 2 was fitted
    states = [_model_state(r.root) for r in (first, second)]
    assert all(torch.equal(a, b) for a, b in zip(*(s.values() for s in states), strict=True))
    assert first.generations[0].metrics != second.generations[0].metrics  # sampled with its bias
    # the same loop without sharing fits generation 1 itself, to the same model
    alone = engine.run(other, make, Blobs(), spread_and_recall, tmp_path / "alone", progress=False,
                     share_first=False)  # fmt: skip
    assert len(calls) == 5
    assert alone.records() == second.records()


def test_generation_one_is_sampled_and_scored_once_per_bias_and_evaluator(tmp_path):
    scored = []

    def evaluate(x, y, model, t):
        scored.append(t)
        return spread_and_recall(x, y, model, t)

    make = lambda: CountingModel([])  # noqa: E731
    other = shared_spec(kind="synthetic_augmented", n_real=60, synthetic_pool="accumulate")
    runs = [engine.run(s, make, Blobs(), evaluate, tmp_path, progress=False)
            for s in (shared_spec(), other, shared_spec(bias=0.5))]  # fmt: skip
    assert scored == [1, 2, 2, 1, 2]  # the second loop reuses generation 1's scores; bias 0.5 not
    first, second, biased = (r.generations[0] for r in runs)
    assert first.metrics == second.metrics != biased.metrics
    assert torch.equal(first.samples[0], second.samples[0])
    alone = engine.run(other, make, Blobs(), evaluate, tmp_path / "alone", progress=False,
                       share_first=False)  # fmt: skip
    assert alone.records() == runs[1].records()  # the very numbers it would have computed itself


@pytest.mark.parametrize(
    "change", [{"seed": 6}, {"n_initial": 50}, {"kind": "fresh_data", "n_real": 80}]
)
def test_generation_one_is_not_shared_across_seeds_or_real_draws(change, tmp_path):
    calls = []
    make = lambda: CountingModel(calls)  # noqa: E731
    engine.run(shared_spec(), make, Blobs(), spread_and_recall, tmp_path, progress=False)
    engine.run(shared_spec(**change), make, Blobs(), spread_and_recall, tmp_path, progress=False)
    assert len(calls) == 4
    engine.run(shared_spec(), make, Blobs(), spread_and_recall, tmp_path, key={"width": 2},
             progress=False)  # fmt: skip
    assert len(calls) == 6  # another key: another model


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_damaged_shared_generation_one_is_retrained_with_a_warning(damage, tmp_path):
    calls = []
    make = lambda: CountingModel(calls)  # noqa: E731
    before = engine.run(shared_spec(), make, Blobs(), spread_and_recall, tmp_path, progress=False)
    model_pt = next((tmp_path / "first").glob("*/model.pt"))
    truncate(model_pt) if damage == "truncate" else flip_a_byte(model_pt)
    other = shared_spec(bias=0.7)
    with pytest.warns(LoopWarning, match="shared generation-1 model unusable"):
        after = engine.run(other, make, Blobs(), spread_and_recall, tmp_path, progress=False)
    assert len(calls) == 4
    states = [_model_state(r.root) for r in (before, after)]
    assert all(torch.equal(a, b) for a, b in zip(*(s.values() for s in states), strict=True))
    assert torch.load(model_pt, weights_only=True)  # repaired for the next loop


def _model_state(root):
    return torch.load(root / "gen_01" / "model.pt", weights_only=True)


def test_label_drift_of_a_fully_synthetic_loop_is_wright_fisher():
    # two equal classes: (1/2 - rarest share)^2 = (p_t - 1/2)^2, whose mean is exactly
    # 1/4 (1 - (1 - 1/n)^t) when each generation draws n labels from the previous n
    n, gens = 50, 30
    spec = LoopSpec("fully_synthetic", generations=gens, n_initial=n, n_synthetic=n)
    labels = np.repeat([0, 1], n // 2)
    shares = label_drift(spec, labels, num_classes=2, chains=20_000, seed=1)
    t = np.arange(1, gens + 1)
    expected = 0.25 * (1 - (1 - 1 / n) ** t)
    measured = ((0.5 - shares) ** 2).mean(0)
    se = ((0.5 - shares) ** 2).std(0) / np.sqrt(len(shares))
    assert np.all(np.abs(measured - expected) < 4 * se + 1e-9)


def test_a_fixed_real_set_bounds_the_label_drift_and_labels_are_checked():
    n = 100
    labels = np.repeat(np.arange(4), n // 4)
    common = dict(generations=40, n_initial=n, n_synthetic=n)
    full = label_drift(LoopSpec("fully_synthetic", **common), labels, 4, chains=2000)
    aug = label_drift(LoopSpec("synthetic_augmented", n_real=n, **common), labels, 4, chains=2000)
    acc = LoopSpec("synthetic_augmented", n_real=n, synthetic_pool="accumulate", **common)
    acc = label_drift(acc, labels, 4, chains=2000)
    # fully synthetic: the rarest class keeps shrinking; with the real set it settles near balance
    assert full[:, -1].mean() < aug[:, -1].mean() - 0.05
    assert abs(aug[:, -1].mean() - aug[:, 10].mean()) < 0.01
    assert acc[:, -1].mean() >= aug[:, -1].mean() - 0.01
    with pytest.raises(ValueError, match="real_labels must lie in"):
        label_drift(LoopSpec("fully_synthetic", **common), labels + 1, 4, chains=2)


def test_fresh_draws_from_a_finite_pool_are_disjoint_until_it_runs_out(tmp_path):
    """Pool of 50 numbered items, 10 fresh per generation: generations 2-6 use all 50 once each,
    generation 7 starts a new permutation (so it overlaps earlier blocks)."""
    ids = torch.arange(50).float()
    pool = data.Pool(torch.stack([torch.zeros(50), ids], 1), torch.zeros(50, dtype=torch.int64), 1)
    log = []
    spec = LoopSpec("fresh_data", generations=7, n_initial=5, n_real=10, n_synthetic=2, n_eval=2)
    engine.run(spec, lambda: Recorder(log), pool, count_items, tmp_path, progress=False)
    real = [set(entry["x"][entry["x"][:, 0] == 0, 1].tolist()) for entry in log[1:]]
    assert [len(r) for r in real] == [10] * 6
    assert set().union(*real[:5]) == set(range(50))  # five disjoint blocks cover the pool
    assert real[5] & set().union(*real[:5])  # the sixth block comes from a new pass
