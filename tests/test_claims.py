"""The claims helper passes what holds, fails what does not, and never passes an empty list."""

import numpy as np
import pytest

from mcollapse.claims import Claims


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
