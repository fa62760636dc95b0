"""Named streams are reproducible, independent of each other, and insensitive to drawing order."""

import numpy as np
import pytest

from mcollapse.seeds import stream


def test_same_name_same_numbers_other_name_other_numbers():
    a = stream(7, "mad", 0.9).standard_normal(5)
    np.testing.assert_array_equal(a, stream(7, "mad", 0.9).standard_normal(5))
    assert not np.allclose(a, stream(7, "mad", 0.8).standard_normal(5))
    assert not np.allclose(a, stream(8, "mad", 0.9).standard_normal(5))


def test_negative_or_missing_seed_is_rejected():
    with pytest.raises(ValueError, match="seed must be an integer in"):
        stream(-1, "x")
    with pytest.raises(ValueError, match="seed must be an integer"):
        stream(None, "x")
