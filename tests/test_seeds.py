"""Named streams are reproducible, independent of each other, and insensitive to drawing order."""

import numpy as np
import pytest
import torch

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


def test_run_seeds_and_derived_streams():
    from mcollapse import profiles, seeds

    assert seeds.run_seeds(7, 3) == [7, 8, 9]
    assert [profiles.resolve("03", p)["n_seeds"] for p in ("ci", "cpu", "gpu")] == [2, 3, 5]
    a = seeds.torch_generator(7, "toy", "test")
    b = seeds.torch_generator(7, "toy", "test")
    assert torch.equal(torch.rand(3, generator=a), torch.rand(3, generator=b))
    assert seeds.derive(7, "x") != seeds.derive(8, "x") != seeds.derive(7, "y")
    with pytest.raises(ValueError, match="n must be an integer"):
        seeds.run_seeds(0, 0)
