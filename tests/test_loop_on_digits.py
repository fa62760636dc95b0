"""Engine, data, feature network and metrics together: the reference model on real digits.

With image metrics (not 2-D toys), a fully synthetic loop must lose recall and gain FID while a
loop that draws fresh real digits each generation must not.
"""

import pytest

from mcollapse import data, engine, metrics
from mcollapse.claims import Claims, per_seed_change
from mcollapse.loops import LoopSpec
from mcollapse.models import ClassGaussianMixture


@pytest.fixture(scope="module")
def runs(tmp_path_factory, digits_net, digits_reference):
    def evaluate(x, y, model, generation):
        found = metrics.image_metrics(x, digits_reference)
        return {k: found[k] for k in ("fid", "precision", "recall", "n_reference")}

    def model():
        return ClassGaussianMixture(10, reg=1e-3, clip=(-1, 1))

    kinds = {"fully_synthetic": {}, "fresh_data": {"n_real": 500}}
    return {
        kind: engine.run(
            LoopSpec(kind, generations=8, n_initial=1000, n_synthetic=500, seed=0, **extra),
            model,
            data.source("digits"),
            evaluate,
            tmp_path_factory.mktemp(kind),
            progress=False,
        ).generations
        for kind, extra in kinds.items()
    }


def test_fully_synthetic_digits_lose_recall_and_gain_fid(runs):
    first, last = runs["fully_synthetic"][0].metrics, runs["fully_synthetic"][-1].metrics
    assert last["recall"] < 0.6 * first["recall"]
    assert last["fid"] > 3 * first["fid"]  # seeds 0-3: 4.1x to 4.5x
    assert first["n_reference"] == 500


def test_fresh_real_digits_keep_the_loop_near_generation_one(runs):
    fresh, synthetic = runs["fresh_data"], runs["fully_synthetic"]
    first = fresh[0].metrics
    assert all(g.metrics["recall"] > 0.85 * first["recall"] for g in fresh)
    assert all(g.metrics["fid"] < 2.2 * first["fid"] for g in fresh)  # seeds 0-3: at most 1.95x
    assert fresh[-1].metrics["fid"] < 0.5 * synthetic[-1].metrics["fid"]
    assert runs["fresh_data"][0].metrics == runs["fully_synthetic"][0].metrics  # same generation 1


def test_the_collapse_claim_holds_over_seeds_and_fails_on_a_null_run(tmp_path, digits_reference):
    """The notebooks' claim "FID rises over the generations" (judged over seeds) must hold for a
    fully synthetic loop and fail for the null run that retrains every generation on real data."""

    def evaluate(x, y, model, generation):
        return {"fid": metrics.image_metrics(x, digits_reference, metrics=("fid",))["fid"]}

    def model():
        return ClassGaussianMixture(10, reg=1e-3, clip=(-1, 1))

    common = dict(generations=4, n_initial=800, n_synthetic=800)
    specs = {
        "fully synthetic": LoopSpec("fully_synthetic", **common),
        "null: real data only": LoopSpec(
            "fresh_data", n_real=800, n_eval=800, **{**common, "n_synthetic": 0}
        ),
    }
    runs = engine.sweep(specs, [0, 1, 2], model, data.source("digits"), evaluate, tmp_path, n_jobs=1,
                        progress=False)  # fmt: skip
    records = engine.tidy(runs)
    claims = Claims()
    for name in specs:
        claims.over_seeds(
            f"{name}: FID rises", per_seed_change(records, "fid", 1, 4, log=True, run=name)
        )
    assert [text.split(": mean")[0] for text in claims.failed] == [
        "null: real data only: FID rises"
    ]
    with pytest.raises(ValueError, match="last=9: the records have generations"):
        per_seed_change(records, "fid", 1, 9, run="fully synthetic")
