"""The claims helper passes what holds, fails what does not, and never passes an empty list."""

import numpy as np
import pytest

from mcollapse.claims import Claims, verdict


def test_a_failed_claim_fails_the_cell_and_is_named(capsys):
    claims = Claims()
    assert claims.check("two is more than one", 2 > 1)
    assert not claims.check("one is more than two", 1 > 2)
    with pytest.raises(AssertionError, match="one is more than two"):
        claims.assert_all()
    out = capsys.readouterr().out
    assert "PASS  two is more than one" in out and "FAIL  one is more than two" in out
    assert "1 / 2 claims hold" in out


def test_mean_matches_uses_the_standard_error():
    samples = np.random.default_rng(0).normal(1.0, 1.0, 10_000)  # SE = 0.01
    claims = Claims()
    assert claims.mean_matches("mean is 1", samples, 1.0)
    assert not claims.mean_matches("mean is 1.1 (10 SE away)", samples, 1.1)
    assert claims.failed == [claims.results[1][0]]


def test_no_claims_is_not_a_pass():
    with pytest.raises(AssertionError, match="no claims"):
        Claims().assert_all()


def test_compare_prints_value_threshold_and_margin(capsys):
    claims = Claims()
    assert claims.compare("ratio rises", 2.5, ">", 2.0, "closed form")
    assert not claims.compare("error stays small", 0.3, "<", 0.2)
    out = capsys.readouterr().out
    assert "PASS  ratio rises: 2.5 > 2 (margin +0.5; closed form)" in out
    assert "FAIL  error stays small: 0.3 < 0.2 (margin -0.1)" in out
    with pytest.raises(ValueError, match="op='=>'"):
        claims.compare("bad", 1, "=>", 0)


def test_an_effect_over_seeds_needs_two_standard_errors_or_every_seed():
    claims = Claims()
    assert claims.over_seeds("clear effect", [0.9, 1.1, 1.0])
    assert claims.over_seeds("every seed, noisy", [0.1, 3.0, 0.05])
    assert not claims.over_seeds("one seed against", [2.0, 2.5, -0.1])
    with pytest.raises(ValueError, match="effects: need at least 2 seeds"):
        claims.over_seeds("one seed", [1.0])


def test_a_null_effect_is_not_claimed_and_unexpected_effects_are_only_reported(capsys):
    null = np.random.default_rng(1).normal(0.0, 1.0, size=(200, 3))
    claims = Claims()
    shown = [claims.over_seeds("null", e, expected=False) for e in null]
    # with no effect, 2 SE or all three seeds positive happens rarely (about 1/8 + a few %)
    assert np.mean(shown) < 0.25
    assert not claims.failed and len(claims.not_reproduced) == len(null) - sum(shown)
    assert "NOT REPRODUCED AT THIS SCALE  null" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="no claims"):
        claims.assert_all()


@pytest.mark.parametrize(
    "baseline, remedy, expected",
    [
        ([0.1, -0.2, 0.05], [0.0, 0.0, 0.0], "no degradation to prevent"),
        ([0.5, 0.6, 0.55], [0.01, -0.02, 0.0], "prevents"),
        ([0.5, 0.6, 0.55], [0.2, 0.25, 0.3], "slows"),
        ([0.5, 0.6, 0.55], [0.6, 0.5, 0.58], "does not change"),
        ([0.5, 0.6, 0.55], [0.5, -0.45, 0.6], "inconclusive"),
    ],
)
def test_remedy_verdicts_follow_the_seeds(baseline, remedy, expected, capsys):
    assert verdict(baseline, remedy) == expected
    assert Claims().verdict("a remedy", baseline, remedy) == expected
    assert expected.upper() in capsys.readouterr().out


def test_verdict_needs_paired_seeds():
    with pytest.raises(ValueError, match="one value per seed"):
        verdict([0.1, 0.2, 0.3], [0.1, 0.2])
